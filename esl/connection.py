"""The inbound ESL connection: asyncio transport around the sans-IO :class:`EslParser`.

Why not greenswitch here: greenswitch runs on gevent (monkey-patched sockets, greenlets) and
cannot share the daemon's asyncio loop; running it in a second process would add a second
IPC protocol to get events in and commands out.  The wire is simple (see esl/frames.py), so
the parser is ours (sans-IO, tested at every byte boundary) and this module only moves bytes.
greenswitch stays the baseline of bench/bench_esl_pipeline.py.

What it does (the recorder's side, PBX commands, recordings and resync, is esl/client.py):

* ``auth``, then ``event plain <CONTRACT events>``; replies are matched in order (ESL answers
  every command with exactly one command/reply or api/response, in order), so a reply that
  does not come within ``api_timeout`` drops the connection: a late reply would otherwise be
  taken for the next command's;
* ``bgapi``: the Job-UUID is ours, the result is matched to its BACKGROUND_JOB event;
* on disconnect every pending request fails with :class:`PbxDisconnected` (never re-sent:
  re-sending ``uuid_record start`` could record twice);
* reconnect with exponential back-off and jitter (``pbx_recorder.reconnect``, shared with the
  AMI client), ``api uptime`` as a ping;
* every other event goes to :meth:`EslConnection._on_event`, and :meth:`_on_connected` runs
  after each (re)connect: the hooks esl/client.py fills in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid as uuidlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from esl import commands as esc
from esl.frames import (
    API_RESPONSE,
    AUTH_REQUEST,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    EslEvent,
    EslFrame,
    EslParser,
)
from pbx_recorder.errors import EslError, PbxDisconnected
from pbx_recorder.reconnect import keep_connected

log = logging.getLogger(__name__)
#: a session that ends with one of these is logged and tried again (pbx_recorder.reconnect)
_SESSION_ERRORS = (OSError, TimeoutError, EslError, PbxDisconnected)


class EslAuthFailed(EslError):
    pass


class EslConnection:
    """One inbound ESL connection, kept up: requests matched to replies, events in :meth:`events`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        password: str,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        api_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        ping_interval: float = 20.0,
        events: Iterable[str] = esc.EVENTS,
        background: bool = True,
        clock: Callable[[], float] = time.time,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        self.host, self.port = host, port
        self._password = password
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.api_timeout, self.connect_timeout, self.ping_interval = (
            api_timeout,
            connect_timeout,
            ping_interval,
        )
        self.subscribed = tuple(events)  # () = no events (a CLI's short connection)
        # PBX commands as bgapi (see run_line); needs the BACKGROUND_JOB subscription for the results
        self.background = background and "BACKGROUND_JOB" in self.subscribed
        self.clock, self.rnd = clock, rnd
        self.connects = 0
        self.version: str | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies: deque[asyncio.Future[EslFrame]] = deque()
        self._jobs: dict[str, asyncio.Future[str]] = {}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._closing = False
        self._lost: asyncio.Future[None] | None = None
        self._early: list[EslFrame] = []  # frames that came with auth/request

    # -- public API ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    async def events(self) -> AsyncIterator[Any]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    async def run(self) -> None:
        await keep_connected(self._session, self._drop, lambda: self._closing, protocol="ESL",
                             endpoint=f"{self.host}:{self.port}", errors=_SESSION_ERRORS, log=log,
                             backoff_min=self.backoff_min, backoff_max=self.backoff_max, rnd=self.rnd)
        self._queue.put_nowait(None)

    async def close(self) -> None:
        self._closing = True
        self._drop("client closing")

    async def api(self, line: str, *, call_id: str = "", check: bool = True) -> str:
        """``api ...`` (a line from esl.commands) -> the response body; ``-ERR`` raises EslError."""
        frame = await self.send(line, call_id=call_id)
        body = frame.text().strip()
        if check and body.startswith("-ERR"):
            raise EslError(
                f"{line.split(' ', 2)[1]} refused by FreeSWITCH: {body[:200]}", call_id=call_id or None
            )
        return body

    async def bgapi(self, command: str, *args: str, call_id: str = "", timeout: float | None = None) -> str:
        """``bgapi``: the reply carries our Job-UUID; the result comes with BACKGROUND_JOB."""
        job = str(uuidlib.uuid4())
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._jobs[job] = future
        try:
            reply = await self.send(esc.bgapi(command, *args, job_uuid=job, call_id=call_id), call_id=call_id)
            if not reply.reply_text.startswith("+OK"):
                raise EslError(f"bgapi {command} refused: {reply.reply_text[:200]}", call_id=call_id or None)
            try:
                return await asyncio.wait_for(asyncio.shield(future), timeout or self.api_timeout * 2)
            except TimeoutError as exc:  # the reply order is intact: the connection stays
                raise EslError(
                    f"bgapi {command}: no BACKGROUND_JOB within {timeout or self.api_timeout * 2}s",
                    call_id=call_id or None,
                ) from exc
        finally:
            self._jobs.pop(job, None)

    async def run_line(self, line: str, *, call_id: str = "") -> str:
        """A command line from esl.commands (``api ...``), run as ``bgapi`` when ``self.background``:
        FreeSWITCH serves one inbound connection's ``api`` commands one after the other in its
        listener thread, so at 50 concurrent calls the ``uuid_record start`` of the last call waited
        behind everyone else's (the lag grew with concurrency); each ``bgapi`` runs in a thread of
        its own and its reply comes at once.  ``-ERR`` raises EslError either way."""
        if not self.background or not line.startswith("api "):
            return await self.api(line, call_id=call_id)
        command, _, rest = line[4:].partition(" ")
        body = (
            await self.bgapi(command, rest, call_id=call_id)
            if rest
            else await self.bgapi(command, call_id=call_id)
        ).strip()
        if body.startswith("-ERR"):
            raise EslError(f"{command} refused by FreeSWITCH: {body[:200]}", call_id=call_id or None)
        return body

    async def send(self, line: str, *, call_id: str = "") -> EslFrame:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise PbxDisconnected(
                f"ESL not connected: {line.split(' ', 1)[0]} not sent", call_id=call_id or None
            )
        future: asyncio.Future[EslFrame] = asyncio.get_running_loop().create_future()
        self._replies.append(future)  # appended and written without an await between: order kept
        writer.write(esc.wire(line))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.api_timeout)
        except TimeoutError as exc:
            self._drop("reply timeout")  # the reply order is lost: only a new connection is safe
            raise EslError(f"no ESL reply within {self.api_timeout}s", call_id=call_id or None) from exc

    # -- connection ---------------------------------------------------------------
    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.connect_timeout
        )
        parser = EslParser()
        first = await self._first_frame(reader, parser)
        if first.content_type != AUTH_REQUEST:
            writer.close()
            raise EslError(f"ESL server sent {first.content_type[:40]!r} instead of auth/request")
        self._writer = writer
        pump = loop.create_task(self._read(reader, parser), name="esl-read")
        try:
            reply = await self.send(esc.auth(self._password))
            if not reply.reply_text.startswith("+OK"):
                raise EslAuthFailed(f"ESL auth refused: {reply.reply_text[:80]}")
            if self.subscribed:
                reply = await self.send(esc.event_plain(self.subscribed))
                if not reply.reply_text.startswith("+OK"):
                    raise EslError(f"ESL event subscription refused: {reply.reply_text[:80]}")
            self.connects += 1
            self._ready.set()
            log.info("ESL connected to %s:%s (connect #%d)", self.host, self.port, self.connects)
            await self._on_connected()
            while not self._lost.done():
                done, _ = await asyncio.wait({self._lost}, timeout=self.ping_interval)
                if not done:
                    await self.api("api uptime")
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    async def _first_frame(self, reader: asyncio.StreamReader, parser: EslParser) -> EslFrame:
        async def first() -> EslFrame:
            while True:
                data = await reader.read(65536)
                if not data:
                    raise PbxDisconnected("ESL server closed the connection before auth/request")
                frames = parser.feed(data)
                if frames:
                    self._early = frames[1:]  # dispatched first by _read
                    return frames[0]

        self._early = []
        return await asyncio.wait_for(first(), self.connect_timeout)

    async def _read(self, reader: asyncio.StreamReader, parser: EslParser) -> None:
        try:
            for frame in self._early:
                self._dispatch(frame)
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for frame in parser.feed(data):
                    self._dispatch(frame)
        except (OSError, EslError) as exc:
            log.warning("ESL read failed: %s", exc)
        finally:
            self._lost_now("ESL connection lost")

    def _dispatch(self, frame: EslFrame) -> None:
        kind = frame.content_type
        if kind in (COMMAND_REPLY, API_RESPONSE):
            while self._replies:
                future = self._replies.popleft()
                if not future.done():
                    future.set_result(frame)
                    return
            log.warning("ESL reply with no command waiting (%s) dropped", kind)
            return
        if kind == DISCONNECT_NOTICE:
            log.warning("ESL disconnect notice: %s", frame.text().strip()[:120])
            return
        try:
            event = frame.event()
        except EslError as exc:
            log.warning("ESL event dropped: %s", exc)
            return
        if event is None:
            log.debug("ESL frame %s ignored", kind[:40])
            return
        if event.name == "BACKGROUND_JOB":
            job = self._jobs.get(event.get("Job-UUID"))
            if job is not None and not job.done():
                job.set_result(event.body)
            return
        self._on_event(event)

    # -- hooks (esl/client.py) -------------------------------------------------------
    async def _on_connected(self) -> None:
        """Runs after each (re)connect, once authenticated and subscribed."""

    def _on_event(self, event: EslEvent) -> None:
        """Every event but BACKGROUND_JOB (whose result goes to its ``bgapi``)."""
        self._queue.put_nowait(event)

    # -- teardown ----------------------------------------------------------------
    def _lost_now(self, why: str) -> None:
        self._ready.clear()
        self._fail_pending(why)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _fail_pending(self, why: str) -> None:
        replies, self._replies = list(self._replies), deque()
        futures: list[asyncio.Future[Any]] = [*replies, *self._jobs.values()]
        for future in futures:
            if not future.done():
                future.set_exception(PbxDisconnected(f"{why}: no ESL reply"))
                future.exception()  # retrieved: the waiter gets it through its shield

    def _drop(self, why: str) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and not writer.is_closing():
            writer.close()
        self._lost_now(why)
