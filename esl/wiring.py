"""The FreeSWITCH edge as the composition root (pbx_recorder/app.py) builds it.

The daemon drives one PBX connection (``app.ami``: ``run``/``events``/``execute``/``close``) and
one consent server (``app.start_consent_server``: ``server_address``/``stop_accepting``/async
``wait_idle``/async ``close``, as consent/agi_async.AsyncAgiServer); for ``pbx.type: freeswitch``
they are the :class:`EslClient` and the :class:`OutboundServer` (in :class:`LoopOutboundServer`).
The consent backend of the outbound server is async (its sessions run on the daemon's loop), so
it awaits the daemon directly instead of the AGI threads' ``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from consent.session_contract import ConsentTicket
from esl.client import EslClient
from esl.consent_session import EslConsentSession
from esl.normalize import EslNormalizer
from esl.outbound_channel import OutboundChannel
from esl.outbound_server import OutboundServer
from pbx_recorder.core import events as ev
from pbx_recorder.core.rules import RuleDecision
from pbx_recorder.errors import ConfigError


def build_esl_client(config: Any) -> tuple[EslNormalizer, EslClient]:
    esl = config.pbx.esl
    if esl.password is None:
        raise ConfigError("FreeSWITCH needs the event socket password", key="pbx.esl.password")
    normalizer = EslNormalizer(config.node)
    client = EslClient(
        host=esl.host,
        port=esl.port,
        password=esl.password.reveal(),
        normalizer=normalizer,
        monitor_dir=str(config.pbx.monitor_dir),
        backoff_min=esl.reconnect_min_s,
        backoff_max=esl.reconnect_max_s,
        api_timeout=esl.api_timeout_s,
        connect_timeout=esl.connect_timeout,
    )
    return normalizer, client


class DaemonConsentBackend:
    """Async consent backend: the daemon's own coroutines, awaited on its loop."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon

    async def request(self, event: ev.ConsentRequested, inband: Any = None) -> ConsentTicket:
        """``inband``: esl/early_start.EarlyStarter, the runner of the session's own channel when
        FreeSWITCH is to start the recording itself at answer."""
        ticket: ConsentTicket = await self.daemon.consent_requested(event, inband)
        return ticket

    async def decide(self, event: ev.ConsentRequested) -> RuleDecision | None:
        """The decision when it is final before answer (pbx_recorder/core/early_start.py), else None."""
        decision: RuleDecision | None = self.daemon.app.callbook.decision_at_entry(event)
        return decision

    async def resolve(self, event: ev.ConsentResolved) -> bool:
        """False when a recording the decision needs could not start (the session then leaves
        the dialplan to its fail direction, as on Asterisk)."""
        started: bool = await self.daemon.consent_resolved(event)
        return started

    def existing_result(self, call_id: str) -> str:
        """A call back in the consent socket after the core settled it: the PBXREC_RESULT it keeps
        (pbx_recorder/core/call_book_consent.settled_result, as on Asterisk), else "".  A second
        leg of a call whose dialogue is pending gets "" here and "norecord" from the request
        (Daemon.consent_requested: the core's ``owns_consent``), with no dialogue."""
        result: str = self.daemon.app.callbook.settled_result(call_id)
        return result


def make_outbound_server(app: Any, backend: Any) -> OutboundServer:
    """``backend``: the daemon's LoopConsentBackend (its ``daemon`` is what we await)."""
    out = app.config.pbx.esl.outbound
    async_backend = DaemonConsentBackend(backend.daemon)

    def session(channel: OutboundChannel) -> EslConsentSession:
        return EslConsentSession(
            channel,
            normalizer=app.normalizer,
            backend=async_backend,
            prompts=app.prompts,
            vip=app.vip,
            settings=app.settings,
            routes=app.ami,  # the EslClient: the call's uuid_record on this session's socket
        )

    try:
        return OutboundServer(
            out.host,
            out.port,
            session=session,
            max_sessions=out.max_sessions,
            session_timeout_s=out.session_timeout_s,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {out.host}:{out.port}: {exc.strerror}", key="pbx.esl.outbound"
        ) from exc


class LoopOutboundServer:
    """The :class:`OutboundServer` behind the daemon's consent-server interface (async
    ``wait_idle``/``close``, as consent/agi_async.AsyncAgiServer)."""

    def __init__(self, server: OutboundServer) -> None:
        self.server = server

    @property
    def server_address(self) -> tuple[str, int]:
        return self.server.server_address

    def stop_accepting(self) -> None:
        self.server.stop_accepting()

    async def wait_idle(self, timeout: float) -> bool:
        return await asyncio.to_thread(self.server.wait_idle, timeout)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.aclose(), 2.0)


def start_outbound_server(app: Any, backend: Any) -> LoopOutboundServer:
    """Build and start (on the running loop) the outbound consent server."""
    server = make_outbound_server(app, backend)
    server.start()
    return LoopOutboundServer(server)
