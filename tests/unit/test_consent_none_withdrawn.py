"""The core's side of a consent session that failed after a ``consent: none`` start, before
``PBXREC_RESULT=record`` reached the channel (pbx_recorder/core/call_book_consent.py
``_none_start_withdrawn``): the session sends ``ConsentResolved(failed)`` and the call is settled
as for a failed dialogue: recording stopped and discarded, "not recorded: failed".  Anything else
still ignores a late result (a call already decided by a dialogue, another channel, an ended call)."""

from __future__ import annotations

from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import DiscardRecording, StartRecording, StopRecording
from pbx_recorder.core.rules import rules_from_dicts

RULES = rules_from_dicts([
    {"name": "none", "match": {"dialed": ["8003"]}, "action": {"record": "yes", "consent": "none"}},
    {"name": "bridge", "match": {"dialed": ["8004"]},
     "action": {"record": "yes", "consent": "none", "start_on": "bridge"}},
    {"name": "explicit", "match": {"dialed": ["8002"]}, "action": {"record": "yes", "consent": "explicit"}},
])
CID, CHANNEL = "pbx1_1732200000.1", "PJSIP/t-1"


def _requested(book: CallBook, dialed: str) -> list[object]:
    return book.handle(E.ConsentRequested(at=10.0, call_id=CID, channel_id="1732200000.1", channel=CHANNEL,
                                          direction="inbound", dialed=dialed, caller_num="4930111"), 10.0)


def _failed(channel: str = CHANNEL, decision: str = "failed") -> E.ConsentResolved:
    return E.ConsentResolved(at=11.0, call_id=CID, channel_id="1732200000.1", channel=channel,
                             decision=decision, evidence={"decision": decision, "failure": "no reply"})


def test_failed_after_a_none_start_stops_and_discards() -> None:
    book = CallBook("pbx1", "/mon", RULES)
    (start,) = [c for c in _requested(book, "8003") if isinstance(c, StartRecording)]
    book.handle(E.RecordingStarted(at=10.1, call_id=CID, channel_id="1732200000.1", channel=CHANNEL,
                                   recording_id=start.recording_id, pbx_ref="0x1"), 10.1)
    assert book.state(CID) == "recording"
    out = book.handle(_failed(), 11.0)
    (stop,) = [c for c in out if isinstance(c, StopRecording)]
    assert (stop.recording_id, stop.pbx_ref) == (start.recording_id, "0x1")
    (discard,) = [c for c in out if isinstance(c, DiscardRecording)]
    assert discard.reason == "consent_failed"
    snap = book.snapshot(CID)
    assert snap["state"] == "not_recorded" and snap["consent_decision"] == "failed"
    assert "failed" in snap["flags"]


def test_failed_before_a_bridge_start_settles_not_recorded() -> None:
    """``start_on: bridge``: nothing runs yet; without the withdrawal the bridge would start a
    recording of a call the dialplan routed as unrecorded."""
    book = CallBook("pbx1", "/mon", RULES)
    assert not [c for c in _requested(book, "8004") if isinstance(c, StartRecording)]
    assert book.state(CID) == "waiting_bridge"
    book.handle(_failed(), 11.0)
    assert book.state(CID) == "not_recorded"


def test_other_late_results_are_still_ignored() -> None:
    book = CallBook("pbx1", "/mon", RULES)
    _requested(book, "8003")
    assert book.handle(_failed(channel="PJSIP/other-2"), 11.0) == []  # not the session's channel
    assert book.handle(_failed(decision="refused"), 11.0) == []  # only a failure withdraws
    assert book.state(CID) == "recording"
    explicit = CallBook("pbx1", "/mon", RULES)
    _requested(explicit, "8002")
    explicit.handle(_failed(decision="granted"), 11.0)
    assert explicit.state(CID) == "recording"
    assert explicit.handle(_failed(), 12.0) == []  # decided by its dialogue: a later failure changes nothing
    assert explicit.snapshot(CID)["consent_decision"] == "granted"
