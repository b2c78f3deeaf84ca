"""The caller's pending consent belongs to the caller's channel (pure core).

Review finding: while the caller's dialogue was pending, another channel of the same call (an
agent's ``Local/agent@q-1;2`` leg with the same linkedid, running the snippet too) could answer
it: its request was ignored by the core, but the daemon handed it the explicit decision, its
session played the question to the agent, and the agent's "yes" (``ConsentResolved`` from that
channel) put the call into ``recording``.  Now only ``consent_channel`` resolves the consent; a
request from another channel is answered "norecord" with no decision (no dialogue); a result or
an "unavailable" report from another channel is ignored.
"""

from __future__ import annotations

from test_consent_settled_result_and_stop import CHANNEL, CID, RULES, UID

from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook

AGENT, AGENT_UID = "Local/agent@q-1;2", "1732200000.2"


def _pending() -> CallBook:
    book = CallBook("pbx1", "/mon", RULES)
    book.handle(E.ConsentRequested(at=10.0, call_id=CID, channel_id=UID, channel=CHANNEL,
                                   direction="inbound", dialed="8002", caller_num="4930111"), 10.0)
    assert book.state(CID) == "consent_pending"
    return book


def _resolved(channel: str, channel_id: str, decision: str) -> E.ConsentResolved:
    return E.ConsentResolved(at=11.0, call_id=CID, channel_id=channel_id, channel=channel,
                             decision=decision, evidence={"decision": decision})


def test_a_request_from_another_channel_is_answered_norecord_without_a_decision() -> None:
    book = _pending()
    assert book.settled_result(CID, AGENT) == "norecord"  # no dialogue of its own
    assert book.settled_result(CID, CHANNEL) == ""  # the caller's own channel: the core decides
    assert not book.owns_consent(CID, AGENT) and book.owns_consent(CID, CHANNEL)
    out = book.handle(E.ConsentRequested(at=10.5, call_id=CID, channel_id=AGENT_UID, channel=AGENT,
                                         direction="inbound", dialed="8002"), 10.5)
    assert out == [] and book.state(CID) == "consent_pending"
    assert book.snapshot(CID)["consent_channel"] == CHANNEL


def test_another_channels_grant_is_ignored_and_the_callers_answer_decides() -> None:
    book = _pending()
    assert book.handle(_resolved(AGENT, AGENT_UID, "granted"), 11.0) == []
    assert book.state(CID) == "consent_pending"  # the reviewer's repro reached "recording" here
    book.handle(_resolved(CHANNEL, UID, "refused"), 12.0)
    assert book.state(CID) == "refused"


def test_another_channels_failure_or_unavailability_does_not_settle_the_call() -> None:
    book = _pending()
    assert book.handle(_resolved(AGENT, AGENT_UID, "failed"), 11.0) == []
    assert book.handle(E.ConsentUnavailable(at=11.0, call_id=CID, channel_id=AGENT_UID, channel=AGENT,
                                            reason="capacity"), 11.0) == []
    assert book.state(CID) == "consent_pending"
    cmds = book.handle(_resolved(CHANNEL, UID, "granted"), 12.0)
    assert book.state(CID) == "recording" and cmds
