"""The FastAGI sessions' way into the daemon's core (same loop, no thread hop)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from consent.agi_dialplan import DECIDE_SCRIPT
from consent.async_session import InbandStarter, request_event
from consent.session_contract import ConsentTicket
from pbx_recorder.core import events as ev
from pbx_recorder.core.rules import RuleDecision

if TYPE_CHECKING:
    from pbx_recorder.daemon import Daemon


class LoopConsentBackend:
    """The FastAGI sessions' way into the core: same loop, no thread hop.  No overall timeout
    here: cancelling a resolve half-way (a "yes" whose recording then never starts) is worse
    than waiting, and every step under it is bounded (AMI ``action_timeout``, the AGI reply
    bound ``session_timeout_s``)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def request(self, event: ev.ConsentRequested, inband: InbandStarter) -> ConsentTicket:
        return await self.daemon.consent_requested(event, inband)

    async def resolve(self, event: ev.ConsentResolved, inband: InbandStarter) -> bool:
        """False when a recording the decision started could not start (the session then
        leaves the snippet to its fail direction)."""
        return await self.daemon.consent_resolved(event, inband)

    async def decide(self, event: ev.ConsentRequested) -> RuleDecision | None:
        """The decision when it is final at entry (the snippet's quick decision before answer)."""
        return self.daemon.app.callbook.decision_at_entry(event)

    def existing_result(self, call_id: str, channel: str = "") -> str:
        """The result of a call the core settled already, or whose dialogue runs on another
        channel (a consent request for it answers that, with no new decision and no dialogue:
        pbx_recorder/core/call_book_consent.settled_result), or "" when the request from
        ``channel`` is the core's to decide."""
        return self.daemon.app.callbook.settled_result(call_id, channel)

    async def asked(self, event: ev.ConsentAsked) -> None:
        """The dialogue's first prompt starts (a hang-up before it is ``hangup_before_question``)."""
        await self.daemon.handle(event)

    async def refused(self, env: dict[str, str], reason: str) -> None:
        """A session refused (capacity, stopping): the catalog says "not recorded: <reason>".
        A refused quick decision says nothing: the snippet goes on to the consent session."""
        if env.get("agi_network_script", "").split("?", 1)[0].strip("/") == DECIDE_SCRIPT:
            return
        event = request_event(env, self.daemon.app.node, None, self.daemon.clock,
                              call_id_of=self.daemon.app.normalizer.call_id_for)
        await self.daemon.handle(ev.ConsentUnavailable(at=event.at, call_id=event.call_id,
                                                       channel_id=event.channel_id, channel=event.channel,
                                                       reason=reason))
