"""The core's side of two leftovers of the ``consent: none`` failure fix (pure):

* ``CallBook.settled_result``: what a consent request for a call the core settled already must
  answer (the core ignores the request and any dialogue outcome of it), for both PBXs: never
  "record" for a call that is not recorded; "" when the request is the core's to decide;
* the ``StopRecording`` of a recording names it (MixMonitorID / files) and says whether the PBX
  ever confirmed its start; the first start report names the PBX's recording for good.
"""

from __future__ import annotations

from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import StartRecording, StopRecording
from pbx_recorder.core.rules import rules_from_dicts

RULES = rules_from_dicts([
    {"name": "none", "match": {"dialed": ["8003"]}, "action": {"record": "yes", "consent": "none"}},
    {"name": "explicit", "match": {"dialed": ["8002"]},
     "action": {"record": "yes", "consent": "explicit"}},
    {"name": "dual", "match": {"dialed": ["8005"]},
     "action": {"record": "yes", "consent": "none", "mode": "dual"}},
])
CID, UID, CHANNEL = "pbx1_1732200000.1", "1732200000.1", "PJSIP/t-1"


def _requested(book: CallBook, dialed: str, early: bool = False) -> list[object]:
    return book.handle(E.ConsentRequested(at=10.0, call_id=CID, channel_id=UID, channel=CHANNEL,
                                          direction="inbound", dialed=dialed, caller_num="4930111",
                                          early=early), 10.0)


def _resolved(decision: str) -> E.ConsentResolved:
    return E.ConsentResolved(at=11.0, call_id=CID, channel_id=UID, channel=CHANNEL, decision=decision,
                             evidence={"decision": decision})


def _started(book: CallBook, rid: str, ref: str, at: float = 10.1) -> None:
    book.handle(E.RecordingStarted(at=at, call_id=CID, channel_id=UID, channel=CHANNEL, recording_id=rid,
                                   pbx_ref=ref), at)


def test_settled_results() -> None:
    book = CallBook("pbx1", "/mon", RULES)
    assert book.settled_result(CID) == ""  # unknown: the request decides
    _requested(book, "8003")
    assert book.settled_result(CID) == "record"  # recorded (consent none): no second start
    book.handle(_resolved("failed"), 11.0)  # withdrawn: "unrecorded" is the truth now
    assert book.state(CID) == "not_recorded" and book.settled_result(CID) == "norecord"
    assert _requested(book, "8003") == []  # the core ignores the request: hence the settled answer

    pending = CallBook("pbx1", "/mon", RULES)
    _requested(pending, "8002")
    assert pending.state(CID) == "consent_pending" and pending.settled_result(CID) == ""  # not settled
    pending.handle(_resolved("refused"), 11.0)
    assert pending.settled_result(CID) == "norecord"  # never "record", never the dialogue again

    never = CallBook("pbx1", "/mon", RULES)
    _requested(never, "9999")  # no rule records it: nothing started, a new request decides again
    assert never.state(CID) == "not_recorded" and never.settled_result(CID) == ""

    ended = CallBook("pbx1", "/mon", RULES)
    _requested(ended, "8003")
    ended.handle(E.ChannelHungUp(at=20.0, call_id=CID, channel_id=UID, channel=CHANNEL), 20.0)
    assert ended.settled_result(CID) == ""  # a linkedid that comes back is a new call


def test_stop_names_the_recording_and_says_it_never_started() -> None:
    book = CallBook("pbx1", "/mon", RULES)
    (start,) = [c for c in _requested(book, "8003", early=True) if isinstance(c, StartRecording)]
    (stop,) = [c for c in book.handle(_resolved("failed"), 11.0) if isinstance(c, StopRecording)]
    assert (stop.recording_id, stop.pbx_ref, stop.paths) == (start.recording_id, "", (start.path,))
    assert stop.handed_over and not stop.pbx_started  # "no such recording" is the expected answer


def test_stop_of_a_started_dual_recording_carries_every_file() -> None:
    book = CallBook("pbx1", "/mon", RULES)
    (start,) = [c for c in _requested(book, "8005") if isinstance(c, StartRecording)]
    _started(book, start.recording_id, "0x1")
    (stop,) = [c for c in book.handle(_resolved("failed"), 11.0) if isinstance(c, StopRecording)]
    assert stop.pbx_ref == "0x1" and stop.pbx_started and not stop.handed_over
    assert stop.paths == (start.path, *start.leg_paths) and len(stop.paths) == 3


def test_a_later_start_report_never_redirects_the_stop() -> None:
    """A second (or forged) report for the same recording id cannot name another MixMonitor."""
    book = CallBook("pbx1", "/mon", RULES)
    (start,) = [c for c in _requested(book, "8003") if isinstance(c, StartRecording)]
    _started(book, start.recording_id, "0x1")
    _started(book, start.recording_id, "0xadmin", at=10.2)
    (stop,) = [c for c in book.handle(_resolved("failed"), 11.0) if isinstance(c, StopRecording)]
    assert stop.pbx_ref == "0x1"
