"""The outbound-socket consent server (asyncio): FreeSWITCH's ``socket`` app connects here.

The FastAGI server's counterpart, with the interface the daemon already drives
(``start`` / ``stop_accepting`` / ``wait_idle`` / ``close`` / ``server_address``); ``wait_idle``
and ``close`` may be called from a worker thread (the daemon does), so they only read a
counter or hand the close to the loop.

The listening socket is bound when the server is built: a port clash fails at start-up.
Sessions are bounded (``max_sessions``) and timed (``session_timeout_s``); a session refused
(too many, stopping) or failing marks ``PBXREC_SOCKET=failed:<reason>`` when it can and closes:
the dialplan takes its fail direction and the call is not recorded (fail closed).  A session
that failed or timed out after the core was asked is resolved as ``failed``
(``EslConsentSession.fail``): the core stops the recording it started for the dialogue and
discards it with that evidence, as on Asterisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from consent.dialogue_runner import ChannelGone
from esl.consent_session import EslConsentSession
from esl.outbound_channel import OutboundChannel, OutboundProtocol
from pbx_recorder.errors import EslError

log = logging.getLogger(__name__)


class OutboundServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        session: Callable[[OutboundChannel], EslConsentSession],
        max_sessions: int = 200,
        session_timeout_s: float = 120.0,
    ) -> None:
        self.make_session = session
        self.max_sessions = max_sessions
        self.session_timeout_s = session_timeout_s
        self._sock = socket.create_server((host, port), reuse_port=False, backlog=128)
        self._sock.setblocking(False)
        self.accepting = True
        self._active = 0
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()
        self.served = 0
        self.failed = 0

    @property
    def server_address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def active(self) -> int:
        return self._active

    def start(self) -> None:
        """Serve on the running loop (call from inside it)."""
        self._loop = asyncio.get_running_loop()
        task = self._loop.create_task(self._serve(), name="esl-outbound-server")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: OutboundProtocol(self._accepted), sock=self._sock)
        log.info("ESL outbound consent server on %s:%s", *self.server_address)

    def stop_accepting(self) -> None:
        self.accepting = False

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._active and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._active == 0

    def close(self) -> None:
        self.accepting = False
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            if _in_loop(loop):
                server.close()
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(server.close)
        else:
            self._sock.close()

    async def aclose(self) -> None:
        self.close()
        if self._server is not None:
            await self._server.wait_closed()

    def _accepted(self, channel: OutboundChannel) -> None:
        channel.start()  # "connect" goes out now, the session task reads its reply
        task = asyncio.get_running_loop().create_task(self._handle(channel), name="esl-outbound-session")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, channel: OutboundChannel) -> None:
        if not self.accepting or self._active >= self.max_sessions:
            why = "stopping" if not self.accepting else "busy"
            log.warning("outbound consent session refused (%s): the dialplan takes its fail direction", why)
            await self._fail(channel, why, connect=True)
            await channel.close()
            return
        self._active += 1
        session = self.make_session(channel)
        try:
            await asyncio.wait_for(session.run(), self.session_timeout_s)
            self.served += 1
        except ChannelGone as exc:
            self.failed += 1
            log.info("outbound consent session ended: caller gone call=%s (%s)", session.call_id or "-", exc)
        except TimeoutError:
            self.failed += 1
            log.error("outbound consent session timed out call=%s", session.call_id or "-")
            await session.fail("the consent session's time limit passed")  # cancelled: the core is told here
            await self._fail(channel, "timeout")
        except Exception as exc:  # fail closed: PBXREC_RESULT stays unset, the call is not recorded
            # (the session resolved it as ``failed`` already: the core stops the dialogue's recording)
            self.failed += 1
            log.exception("outbound consent session failed call=%s", session.call_id or "-")
            await self._fail(channel, "error" if not isinstance(exc, EslError) else "esl_error")
        finally:
            self._active -= 1
            await channel.close()

    @staticmethod
    async def _fail(channel: OutboundChannel, reason: str, *, connect: bool = False) -> None:
        """Best effort: say why on the channel before closing (the dialplan reads PBXREC_SOCKET);
        once a reply timed out in the failure, its waits take only answers already there."""
        channel.wind_down()
        with contextlib.suppress(Exception):
            if connect:
                await channel.connect()
                await channel.ok("resume")
            if not channel.gone:
                await channel.set_var("PBXREC_SOCKET", f"failed:{reason}")


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
