"""What a FreeSWITCH consent session (esl/consent_session.py) needs from the rest of the
recorder: the core's consent backend and the inbound client's per-call command routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from consent.session_contract import ConsentTicket
from pbx_recorder.core import events as ev
from pbx_recorder.core.rules import RuleDecision


class AsyncConsentBackend(Protocol):
    async def request(self, event: ev.ConsentRequested, inband: Any = None) -> ConsentTicket: ...
    # inband: a runner for the session's own channel (esl/early_start.EarlyStarter), or None

    async def decide(self, event: ev.ConsentRequested) -> RuleDecision | None: ...
    # the decision when it is final at entry (pbx_recorder/core/early_start.py), else None; no state change

    async def resolve(self, event: ev.ConsentResolved) -> bool | None: ...

    def existing_result(self, call_id: str) -> str: ...


class CommandRoutes(Protocol):
    """The inbound ESL client: a call's PBX commands go out on its consent socket meanwhile."""

    def route_via(self, channel: str, api: Callable[[str], Awaitable[str]]) -> None: ...

    def unroute(self, channel: str) -> None: ...
