"""One call on the outbound socket (``socket <host>:<port> async full``), asyncio.

Replies and events interleave on this socket (freeswitch-facts), so frames are told apart by
Content-Type: ``command/reply`` answers the oldest command waiting (FIFO), events are read
for the applications we executed (``CHANNEL_EXECUTE_COMPLETE`` whose ``Application-UUID``
is the ``Event-UUID`` we sent) and for the caller leaving (``CHANNEL_HANGUP``,
``text/disconnect-notice``), which fails every wait with :class:`ChannelGone`.

Implements the dialogue runner's prompt channel (``play`` / ``ask``) over ``playback`` and
``play_and_get_digits``.  ``myevents`` also brings the channel's ``DTMF`` events (fired when a
digit is taken off the channel's queue: by the application that reads it, by ``playback``, or
by the park between two applications) and the ``CHANNEL_EXECUTE`` of each application we run:
``ask`` times the digit it got against the start of its question from these two FreeSWITCH
timestamps (events stamped before the question started are someone else's and dropped), so a
digit pressed before the question (queued, then read at once by ``play_and_get_digits``, stamped
just after its start) is told from an answer by the early-digit rule.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuidlib
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from consent.dialogue_runner import ChannelGone, DigitAnswer
from esl import commands as esc
from esl.frames import API_RESPONSE, COMMAND_REPLY, DISCONNECT_NOTICE, EslFrame, EslParser
from pbx_recorder.errors import EslError

log = logging.getLogger(__name__)

GONE_EVENTS = ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE")
DIGITS_REGEX = "[0-9*#]"


class Writer(Protocol):
    """What the channel writes to: the asyncio transport of the connection."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def close(self) -> None: ...


class OutboundChannel:
    """Fed by :class:`OutboundProtocol` (bytes in, frames dispatched right where they arrive: a
    reply wakes its waiter directly, no reader task in between)."""

    def __init__(self, writer: Writer, *, reply_timeout: float = 5.0, app_timeout: float = 120.0) -> None:
        self.writer = writer
        self.reply_timeout, self.app_timeout = reply_timeout, app_timeout
        self.call_id = ""
        self.gone = False
        self._replies: deque[asyncio.Future[EslFrame]] = deque()
        self._apps: dict[str, asyncio.Future[Mapping[str, str]]] = {}
        self._parser = EslParser()
        self._connect: asyncio.Future[EslFrame] | None = None
        self._attempt = 0
        self._started: dict[str, float] = {}  # Application-UUID -> CHANNEL_EXECUTE timestamp (s)
        self._dtmf: deque[tuple[str, float]] = deque(maxlen=64)  # (digit, DTMF timestamp s), unread
        self._winding_down = False  # see :meth:`wind_down`
        self._stuck = False  # a reply timed out while winding down: no more waits

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Send ``connect`` as soon as FreeSWITCH's connection is accepted (before the session's
        task even runs: one loop turn less on the way to the recording start)."""
        if self._connect is None:
            self._connect = self.submit("connect")

    async def connect(self) -> dict[str, str]:
        """``connect``: the reply's headers are the channel's data (percent-decoded)."""
        self.start()
        assert self._connect is not None
        reply = await self.reply("connect", self._connect)
        return dict(reply.headers)

    def wind_down(self) -> None:
        """The session is failing: from now on, once one wait for a reply on this socket has timed
        out (the socket is stuck), no later wait waits any more: the failure's last commands -- the
        one more try, the result withdrawn, ``PBXREC_SOCKET`` -- are still written, in order, but
        their answers are taken only if already there.  A stuck socket used to hold the call in the
        snippet a reply timeout per command, three or four of them, before the socket closed; a
        socket that answers is waited for as before (a slow core does not cut its replies short)."""
        self._winding_down = True

    def _wait_limit(self) -> float:
        return 0.0 if self._stuck else self.reply_timeout

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    def submit(self, line: str) -> asyncio.Future[EslFrame]:
        """Write one command NOW (so commands go out in the order submitted) and return the
        future of its reply; ``await self.reply(line, future)`` to wait for it."""
        if self.gone:
            raise ChannelGone("the channel is gone")
        future: asyncio.Future[EslFrame] = asyncio.get_running_loop().create_future()
        self._replies.append(future)
        self.writer.write(esc.wire(line))
        return future

    async def reply(self, line: str, future: asyncio.Future[EslFrame]) -> EslFrame:
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._wait_limit())
        except TimeoutError as exc:
            if self._winding_down:
                self._stuck = True
            raise EslError(
                f"no reply to {line.split(chr(10), 1)[0][:40]!r} on the outbound socket",
                call_id=self.call_id or None,
            ) from exc

    async def command(self, line: str) -> EslFrame:
        return await self.reply(line, self.submit(line))

    def submit_all(self, lines: list[str]) -> list[tuple[str, asyncio.Future[EslFrame]]]:
        """Commands written at once, in order (one round trip for all); ``settle`` checks them."""
        return [(line, self.submit(line)) for line in lines]

    async def settle(self, pending: list[tuple[str, asyncio.Future[EslFrame]]]) -> None:
        """Wait for the replies of :meth:`submit_all`; every one must be ``+OK``."""
        for line, future in pending:
            reply = await self.reply(line, future)
            if reply.reply_text.startswith("-ERR"):
                raise EslError(
                    f"outbound command refused: {reply.reply_text[:120]}", call_id=self.call_id or None
                )

    async def ok(self, line: str) -> EslFrame:
        reply = await self.command(line)
        if reply.reply_text.startswith("-ERR"):
            raise EslError(
                f"outbound command refused: {reply.reply_text[:120]}", call_id=self.call_id or None
            )
        return reply

    async def execute(self, app: str, arg: str = "", *, event_uuid: str = "") -> Mapping[str, str]:
        """Run one application and wait until it completes; its CHANNEL_EXECUTE_COMPLETE headers."""
        event_uuid = event_uuid or str(uuidlib.uuid4())
        done: asyncio.Future[Mapping[str, str]] = asyncio.get_running_loop().create_future()
        self._apps[event_uuid] = done
        try:
            await self.ok(esc.sendmsg_execute(app, arg, event_uuid=event_uuid, call_id=self.call_id))
            return await asyncio.wait_for(asyncio.shield(done), self.app_timeout)
        finally:
            self._apps.pop(event_uuid, None)

    async def api(self, line: str) -> str:
        """An ``api ...`` line (from esl.commands) on this call's own socket: FreeSWITCH runs it in
        this session's listener thread, so it neither waits behind other calls' commands nor
        behind the event stream of the inbound connection.  ``-ERR`` raises EslError."""
        body = (await self.command(line)).text().strip()
        if body.startswith("-ERR"):
            raise EslError(
                f"{line.split(' ', 2)[1]} refused by FreeSWITCH: {body[:200]}", call_id=self.call_id or None
            )
        return body

    async def set_var(self, name: str, value: str) -> None:
        """``set`` queued on the channel (no wait for completion: applications run in order)."""
        await self.ok(esc.sendmsg_set(name, value, call_id=self.call_id))

    async def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        await self.ok(esc.sendmsg_hangup(cause, call_id=self.call_id))

    # -- prompt channel (consent.dialogue_runner's PromptChannel, async) ----------------
    async def play(self, path: str) -> None:
        done = await self.execute("playback", path)
        self._forget_dtmf_until(_timestamp(done.get("Event-Date-Timestamp", "")))

    def _forget_dtmf_until(self, ended: float | None) -> None:
        """``playback`` takes the digits pressed while it plays off the channel's queue (its own
        DTMF callback), so their events name no digit a later question reads: forgotten (all of
        them when the end's timestamp is missing).  Kept, a "1" pressed during the retry prompt
        was taken as the next question's answer, pressed before it, and so was every later "1"."""
        kept = [(digit, at) for digit, at in self._dtmf if ended is not None and at > ended]
        self._dtmf.clear()
        self._dtmf.extend(kept)

    async def ask(self, path: str, timeout_ms: int) -> DigitAnswer:
        """One attempt: the prompt, then up to ``timeout_ms`` for one digit ("" on timeout), with
        ``prompt_offset_s``: how long after the question started (FreeSWITCH's clock) the digit
        arrived; negative for a digit that was waiting in the channel's queue before it."""
        self._attempt += 1
        var = f"pbxrec_digit_{self._attempt}"  # a fresh variable: a stale digit is never re-read
        arg = f"1 1 1 {int(timeout_ms)} # {path} silence_stream://250 {var} {DIGITS_REGEX}"
        event_uuid = str(uuidlib.uuid4())
        try:
            done = await self.execute("play_and_get_digits", arg, event_uuid=event_uuid)
            digits = done.get(f"variable_{var}", "")
            digit = digits[:1] if digits[:1] and digits[:1] in "0123456789*#" else ""
            started = self._started.get(event_uuid)
        finally:
            self._started.pop(event_uuid, None)
        if not digit:
            return DigitAnswer("")
        if started is not None:
            # FreeSWITCH fires DTMF when a digit leaves the channel's queue: one stamped before this
            # question started was taken by something else (a playback, the park between two
            # applications), never by this question; a digit queued before it and read by it at
            # once is stamped just after its start (the early-digit rule's first 0.5 s)
            self._forget_dtmf_until(started - 1e-6)
        at = self._take_dtmf(digit)
        offset = round(at - started, 3) if at is not None and started is not None else None
        return DigitAnswer(digit, prompt_offset_s=offset)

    def _take_dtmf(self, digit: str) -> float | None:
        """The oldest unread DTMF event of ``digit`` (older ones of other digits were read by
        nobody: dropped); its timestamp."""
        while self._dtmf:
            seen, at = self._dtmf.popleft()
            if seen == digit:
                return at
        return None

    # -- reading -----------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        try:
            for frame in self._parser.feed(data):
                self._dispatch(frame)
        except EslError as exc:
            log.info("outbound socket unreadable call=%s: %s", self.call_id or "-", exc)
            self.writer.close()
            self._gone("unreadable")

    def lost(self) -> None:
        self._gone("socket closed")

    def _dispatch(self, frame: EslFrame) -> None:
        if frame.content_type in (COMMAND_REPLY, API_RESPONSE):
            while self._replies:
                future = self._replies.popleft()
                if not future.done():
                    future.set_result(frame)
                    return
            return
        if frame.content_type == DISCONNECT_NOTICE:
            self._gone("disconnect notice")
            return
        event = frame.event()
        if event is None:
            return
        if event.name == "CHANNEL_EXECUTE_COMPLETE":
            waiter = self._apps.get(event.get("Application-UUID"))
            if waiter is not None and not waiter.done():
                waiter.set_result(event.headers)  # read lazily: only the digit variable is needed
        elif event.name == "CHANNEL_EXECUTE":
            app_uuid = event.get("Application-UUID")
            at = _timestamp(event.get("Event-Date-Timestamp"))
            if app_uuid in self._apps and at is not None:
                self._started[app_uuid] = at
        elif event.name == "DTMF":
            digit, at = event.get("DTMF-Digit")[:1], _timestamp(event.get("Event-Date-Timestamp"))
            if digit and digit in "0123456789*#" and at is not None:
                self._dtmf.append((digit, at))
        elif event.name in GONE_EVENTS:
            self._gone(event.name)

    def _gone(self, why: str) -> None:
        self.gone = True
        futures: list[asyncio.Future[Any]] = [*self._replies, *self._apps.values()]
        self._replies.clear()
        for future in futures:
            if not future.done():
                future.set_exception(ChannelGone(why))
                future.exception()


def _timestamp(micros: str) -> float | None:
    """``Event-Date-Timestamp`` (microseconds since the epoch) in seconds; None if not a number."""
    return int(micros) / 1_000_000 if micros.isdigit() and len(micros) <= 19 else None


class OutboundProtocol(asyncio.Protocol):
    """One accepted ``socket`` connection: ``connect`` goes out in ``connection_made`` and the
    session (``on_channel``) is started as a task."""

    def __init__(self, on_channel: Callable[[OutboundChannel], None]) -> None:
        self.on_channel = on_channel
        self.channel: OutboundChannel | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.channel = OutboundChannel(transport)
        self.on_channel(self.channel)

    def data_received(self, data: bytes) -> None:
        if self.channel is not None:
            self.channel.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.channel is not None:
            self.channel.lost()
