"""FastAGI consent server on the daemon's asyncio loop: no threads, one coroutine per session.

Why not a thread per session (the server this one replaced, since removed): every consent
request had to hop from a worker thread into the loop and back (``run_coroutine_threadsafe``),
and the MixMonitor then went out as an AMI action; on a loaded 2-core host that put hundreds of
ms between the answer and the start of the recording, and a burst of 300 calls held 300 blocked
threads.  Here a session is a coroutine that calls the core directly, and the recording of
a call whose decision is known is started *in band*: ``EXEC MixMonitor`` on the AGI socket,
run by the channel's own thread at once (the same as MixMonitor in the dialplan), with the
file name and ``i()`` variable the core chose; the core adopts it (``RecordingStarted`` with
the MixMonitorID read back by ``GET VARIABLE``).

Parsing is sans-IO (consent/agi_protocol.py); this module only moves bytes.  The first bytes
it sends are the parser's resync command (``GET FULL VARIABLE <nonce>``): the environment ends
at its reply, not at a blank line a caller can inject (consent/agi_environment.py).

Hang-up vs failure: ``200 result=-1`` means "hung up" *or* "failed" (a prompt that could not
be streamed, ...).  Only a ``HANGUP`` line, ``511``, EOF, or a ``CHANNEL STATUS`` that fails
after the -1 count as the caller's hang-up (:class:`ChannelGone`); anything else is
:class:`AgiCommandFailed`, and the session ends as ``failed`` (the snippet's fail direction;
the catalog says so), never as the caller's ``hangup``.

Replies after a timeout: Asterisk runs a socket's commands in order, also those whose reply the
recorder gave up on, so a late reply is never the next command's.  The connection counts the
replies still owed (:attr:`AsyncAgiConnection.owed`) and skips them; a session that fails with
replies owed ends with ``SET VARIABLE PBXREC_RESULT ""`` (consent/async_session.py).

Capacity: above ``max_sessions`` a consent session is refused *cleanly*: the core is told
(``ConsentUnavailable(reason="capacity")``: the catalog says "not recorded: capacity"),
``PBXREC_UNAVAILABLE=capacity`` is set in band, and the socket is closed without setting
``PBXREC_RESULT``, so the snippet takes its fail direction and reports it with
``UserEvent(PbxrecUnavailable)`` -- which reaches the catalog even when the environment could not
be read in time.  Quick decisions (``.../decide``, before answer) play nothing: they do not take
consent-session slots; they have their own small bound (``max_decisions``) and a short reply
bound, and one not served sets nothing (the snippet goes on to the consent session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from consent.agi_dialplan import DECIDE_SCRIPT as DECIDE
from consent.agi_protocol import (
    AgiEnvironment,
    AgiHangup,
    AgiItem,
    AgiParser,
    AgiProtocolError,
    AgiReply,
    format_command,
)
from consent.dialogue_runner import ChannelGone
from pbx_recorder.core.masking import mask_number, sanitize
from pbx_recorder.errors import PbxError

log = logging.getLogger(__name__)

ENV_TIMEOUT_S = 20.0  # Asterisk writes the environment on connect: a slow read is our backlog, not theirs
REFUSAL_ENV_TIMEOUT_S = 1.0
UNAVAILABLE_VAR = "PBXREC_UNAVAILABLE"  # why a session was refused, for the snippet's UserEvent
MAX_DECISIONS = 100  # quick decisions at once (a few SET VARIABLEs each; one skipped costs a second AGI call)
# Per reply of a quick decision (the consent session's is 120 s).  Not shorter: a decision cut
# after the core was told (its recording handed to the dialplan) but before PBXREC_RESULT is set
# leaves that recording waiting for a start the snippet never makes; 30 s is far above the
# replies seen on a starved PBX (none ran out in the 500-call runs).
DECISION_TIMEOUT_S = 30.0


def script_of(env: dict[str, str]) -> str:
    return env.get("agi_network_script", "").split("?", 1)[0].strip("/")


class AgiCommandFailed(PbxError):
    """An AGI command failed while the channel is still up (not the caller's hang-up)."""


class AsyncAgiConnection:
    """One FastAGI socket: read the environment, run commands, classify hang-ups."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 reply_timeout_s: float = 120.0) -> None:
        self.reader, self.writer = reader, writer
        self.reply_timeout_s = reply_timeout_s
        self.parser = AgiParser()
        self.env: dict[str, str] = {}
        self.env_tampered = False  # the environment held lines Asterisk did not write as such
        self.hung_up = False
        self.owed = 0  # replies still due to commands that timed out (Asterisk may yet run them)
        self._items: deque[AgiItem] = deque()

    async def _next(self, timeout: float) -> AgiItem:
        while not self._items:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
            except TimeoutError:
                raise  # no reply in time is not a hang-up (TimeoutError is an OSError: keep it first)
            except (ConnectionError, OSError) as exc:
                raise ChannelGone(f"AGI read failed: {exc}") from exc
            if not data:
                raise ChannelGone("AGI connection closed")
            self._items.extend(self.parser.feed(data))
        return self._items.popleft()

    async def read_env(self, timeout: float = ENV_TIMEOUT_S) -> dict[str, str]:
        """The environment, ended by the reply to the parser's resync command (sent first: Asterisk
        answers it right after the environment, so it costs no extra round trip).  One tampered
        with by the caller is logged once (no values) and kept in :attr:`env_tampered`."""
        try:
            self.writer.write(self.parser.sync_command())
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ChannelGone(f"AGI write failed: {exc}") from exc
        item = await self._next(timeout)
        if not isinstance(item, AgiEnvironment):
            raise AgiProtocolError("AGI peer sent something before its environment")
        self.env, self.env_tampered = item.env, item.tampered
        if item.tampered:
            log.warning("AGI environment tampered with (channel id %s, caller %s): %s; the genuine "
                        "lines are used", sanitize(self.env.get("agi_uniqueid", "?"), 64),
                        mask_number(self.env.get("agi_callerid", "")), ", ".join(item.anomalies[:8]))
        return self.env

    async def execute(self, command: str, *args: object, timeout: float | None = None) -> AgiReply:
        """Run one command; ChannelGone on hang-up, AgiCommandFailed on a failure of a live channel."""
        reply = await self._roundtrip(command, *args, timeout=timeout)
        if reply.failed or reply.data == "hangup":
            await self._hung_up_or_failed(command, reply)
        return reply

    async def _roundtrip(self, command: str, *args: object, timeout: float | None = None) -> AgiReply:
        if self.hung_up:
            raise ChannelGone("HANGUP from Asterisk")
        wire = format_command(command, *args)
        try:
            self.writer.write(wire)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ChannelGone(f"AGI write failed: {exc}") from exc
        bound = timeout or self.reply_timeout_s
        try:
            item = await asyncio.wait_for(self._reply(command, bound), bound)
        except TimeoutError as exc:
            self.owed += 1  # its reply, if it ever comes, is not the next command's
            raise AgiCommandFailed(f"AGI {command}: no reply within {bound:.0f}s") from exc
        if isinstance(item, AgiHangup):
            self.hung_up = True
            raise ChannelGone("HANGUP from Asterisk")
        if not isinstance(item, AgiReply):
            raise AgiProtocolError(f"AGI {command}: unexpected {type(item).__name__}")
        if item.code == 511:
            self.hung_up = True
            raise ChannelGone("511: dead channel")
        if item.code != 200:
            raise AgiCommandFailed(f"AGI {command} answered {item.text[:120]!r}")
        return item

    async def _reply(self, command: str, bound: float) -> AgiItem:
        """The next item that answers ``command``: Asterisk runs a socket's commands in order, so
        the late replies of commands that timed out come first and are skipped (never taken as
        this command's).  A ``511`` among them: the channel is dead."""
        while True:
            item = await self._next(bound)  # the caller bounds the whole wait
            if not isinstance(item, AgiReply) or self.owed == 0:
                return item
            self.owed -= 1
            log.info("AGI late reply skipped before %s's: %r", command, item.text[:80])
            if item.code == 511:
                return item

    async def _hung_up_or_failed(self, command: str, reply: AgiReply) -> None:
        """``result=-1``: ask Asterisk whether the channel is still there before blaming the caller."""
        try:
            status = await self._roundtrip("CHANNEL STATUS", timeout=10.0)
        except AgiCommandFailed:
            status = None
        if status is None or status.failed:
            self.hung_up = True
            raise ChannelGone(f"{command}: result=-1 and the channel is gone")
        raise AgiCommandFailed(f"AGI {command} failed on a live channel (state {status.result}): "
                               f"{reply.text[:120]!r}")

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)


SessionHandler = Callable[[AsyncAgiConnection], Awaitable[None]]
RefusalHandler = Callable[[dict[str, str], str], Awaitable[None]]


class AsyncAgiServer:
    """``asyncio.start_server`` with a session bound; ``accepting`` False refuses new sessions."""

    def __init__(self, host: str, port: int, *, session: SessionHandler, refused: RefusalHandler,
                 max_sessions: int = 200, session_timeout_s: float = 120.0,
                 max_decisions: int = MAX_DECISIONS, decision_timeout_s: float = DECISION_TIMEOUT_S,
                 env_timeout_s: float = ENV_TIMEOUT_S) -> None:
        self.host, self._port = host, port
        self.env_timeout_s = env_timeout_s  # a peer silent for longer before its environment: closed
        self.session, self.refused = session, refused
        self.max_sessions = max_sessions
        self.max_decisions, self.decision_timeout_s = max_decisions, decision_timeout_s
        self.decisions_active = 0
        self.decisions_skipped = 0
        self.session_timeout_s = session_timeout_s
        self.accepting = True
        self.active = 0
        self.served = 0
        self.failed = 0
        self.refused_count = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def server_address(self) -> tuple[str, int]:
        return self.host, self.port

    async def start(self) -> None:
        """Bind and listen (OSError on a port clash: the caller names the config key)."""
        self._server = await asyncio.start_server(self._accept, self.host, self._port, backlog=1024,
                                                  reuse_address=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = AsyncAgiConnection(reader, writer, self.session_timeout_s)
        try:
            if not self.accepting:
                await self._refuse(conn, "stopping", read_env=True)
                return
            try:  # which script (a quick decision has its own bound): the environment first
                await conn.read_env(self.env_timeout_s)
            except (ChannelGone, TimeoutError, AgiProtocolError) as exc:
                self.failed += 1
                log.warning("AGI connection without an environment (%s): closed; the snippet's fail "
                            "direction reports it", exc or type(exc).__name__)
                return
            if script_of(conn.env) == DECIDE:
                await self._quick_decision(conn)
            elif not self.accepting or self.active >= self.max_sessions:
                await self._refuse(conn, "stopping" if not self.accepting else "capacity", read_env=False)
            else:
                await self._session(conn)
        finally:
            await conn.close()
            if task is not None:
                self._tasks.discard(task)

    async def _session(self, conn: AsyncAgiConnection) -> None:
        self.active += 1
        self._idle.clear()
        try:
            await self.session(conn)
            self.served += 1
        except ChannelGone as exc:
            self.failed += 1
            log.info("AGI session ended: caller gone (%s)", exc)
        except Exception:  # fail closed: PBXREC_RESULT stays unset, the call is not recorded
            self.failed += 1
            log.exception("AGI consent session failed")
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()

    async def _quick_decision(self, conn: AsyncAgiConnection) -> None:
        """A quick decision plays nothing and takes no consent-session slot: its own small bound
        (``max_decisions``) and a short reply bound.  Not served = nothing set: the snippet answers
        and runs the consent session, whose own bound then applies."""
        if self.decisions_active >= self.max_decisions:
            self.decisions_skipped += 1
            log.info("AGI quick decision not served (%d running, max %d): the snippet goes on to the "
                     "consent session", self.decisions_active, self.max_decisions)
            return
        conn.reply_timeout_s = self.decision_timeout_s
        self.decisions_active += 1
        try:
            await self.session(conn)
        except ChannelGone as exc:
            log.info("AGI quick decision ended: caller gone (%s)", exc)
        except Exception:  # nothing (more) is set: the snippet goes on to the consent session
            log.exception("AGI quick decision failed")
        finally:
            self.decisions_active -= 1

    async def _refuse(self, conn: AsyncAgiConnection, reason: str, *, read_env: bool) -> None:
        """Refused: ``PBXREC_UNAVAILABLE=<reason>`` in band (best effort, bounded) for the snippet's
        ``UserEvent(PbxrecUnavailable)``, and the core told when the environment is known."""
        self.refused_count += 1
        log.warning("AGI session refused (%s; %d active, max %d): the snippet takes its fail direction",
                    "stopping" if reason == "stopping" else "too many sessions", self.active,
                    self.max_sessions)
        if read_env:
            with contextlib.suppress(ChannelGone, TimeoutError, AgiProtocolError):
                await conn.read_env(REFUSAL_ENV_TIMEOUT_S)
        if conn.env and script_of(conn.env) == DECIDE:
            return  # not a consent session: the snippet goes on to it (and is told there)
        with contextlib.suppress(ChannelGone, AgiCommandFailed, AgiProtocolError):
            await conn.execute("SET VARIABLE", UNAVAILABLE_VAR, reason, timeout=REFUSAL_ENV_TIMEOUT_S)
        if not conn.env:
            return  # the dialplan's report carries the reason to the catalog
        try:
            await self.refused(conn.env, reason)
        except Exception:  # telling the core must not break the refusal
            log.exception("could not record the refused AGI session")

    def stop_accepting(self) -> None:
        self.accepting = False

    async def wait_idle(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._idle.is_set()

    async def close(self) -> None:
        self.accepting = False
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
