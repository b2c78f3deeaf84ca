"""Recording started by the dialplan at answer (issue 10): when the decision is final at entry,
the core's start handed to the snippet, the snippet's report adopted, a call left while ringing."""

from __future__ import annotations

from typing import Any

from ami.normalize import Normalizer
from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import SetChannelVar, StartRecording, UpsertCall
from pbx_recorder.core.early_start import decision_at_entry
from pbx_recorder.core.naming import make_call_id
from pbx_recorder.core.rules import CallContext, rules_from_dicts

NONE = {"name": "none", "match": {"dialed": ["8003"]}, "action": {"record": "yes", "consent": "none"}}
NOTIFY = {"name": "notify", "match": {"dialed": ["8001"]},
          "action": {"record": "yes", "consent": "notify", "prompt": "recording-notice"}}
NEVER = {"name": "never", "match": {"dialed": ["8009"]}, "action": {"record": "never"}}
CID = "pbx1_1732200000.1"


def final(rules: list[dict[str, Any]], dialed: str = "8003", queue: str = "") -> bool:
    return decision_at_entry(rules_from_dicts(rules), CallContext(dialed=dialed, queue=queue)) is not None


def test_consent_none_and_no_record_are_final_at_entry() -> None:
    assert final([NONE, NOTIFY]) and final([NEVER], dialed="8009")
    assert not final([NONE, NOTIFY], dialed="8001")  # a dialogue comes first: the consent session
    bridge = {**NONE, "action": {**NONE["action"], "start_on": "bridge"}}
    assert not final([bridge])  # starts at the bridge: the AMI path


def test_a_rule_on_a_later_fact_that_could_override_keeps_the_ami_path() -> None:
    agent_never = {"name": "agent-never", "match": {"agent": ["Agent/7"]}, "action": {"record": "never"}}
    assert not final([NONE, agent_never])  # never wins over yes whatever the order
    queue_yes_first = {"name": "q", "match": {"queue": ["support"]}, "action": {"record": "no"}}
    assert not final([queue_yes_first, NONE])  # the first yes/no rule decides: the queue one may match
    assert final([NONE, queue_yes_first])  # listed after the deciding rule: cannot override
    assert final([queue_yes_first, NONE], queue="sales")  # the snippet said the queue: known now
    agent_yes_last = {"name": "a", "match": {"agent": ["Agent/7"]}, "action": {"record": "yes"}}
    assert final([NONE, agent_yes_last])
    assert final([NEVER, agent_never], dialed="8009")  # nothing overrides never


def _book() -> CallBook:
    return CallBook("pbx1", "/mon", rules_from_dicts([NONE, NOTIFY]))


def _request(early: bool) -> E.ConsentRequested:
    return E.ConsentRequested(at=10.0, call_id=CID, channel_id="1732200000.1", channel="PJSIP/t-1",
                              direction="inbound", dialed="8003", caller_num="4930111", early=early)


def test_early_request_marks_the_call_recording_and_the_snippets_report_adopts_it() -> None:
    book = _book()
    assert book.decision_at_entry(_request(True)) is not None
    assert not book.find(CID)  # deciding whether it is final changes nothing
    cmds = book.handle(_request(True), 10.0)
    (start,) = [c for c in cmds if isinstance(c, StartRecording)]
    assert ("PBXREC_RESULT", "record") in [(c.name, c.value) for c in cmds if isinstance(c, SetChannelVar)]
    call = book.find(CID)
    assert call is not None and call.recordings[0].early and call.recordings[0].pbx_started_at is None
    n = Normalizer("pbx1")
    frame = {"event": "UserEvent", "userevent": "PbxrecEarlyStart", "channel": "PJSIP/t-1",
             "uniqueid": "1732200000.1", "linkedid": "1732200000.1", "pbxrecrec": start.recording_id,
             "pbxrecmmid": "0x55d0c0ffee"}
    (started,) = n.normalize(frame, 10.2)
    assert isinstance(started, E.RecordingStarted) and started.call_id == make_call_id("pbx1", "1732200000.1")
    assert book.handle(started, 10.2) == []  # adopted: no second MixMonitor
    rec = call.recordings[0]
    assert rec.pbx_ref == "0x55d0c0ffee" and rec.pbx_started_at == 10.2 and rec.state == "recording"
    assert rec.started_at == 10.2  # recorded from the answer, not from the decision while ringing


def test_only_our_user_event_with_a_clean_id_is_taken() -> None:
    n = Normalizer("pbx1")
    base = {"event": "UserEvent", "channel": "PJSIP/t-1", "uniqueid": "1.1", "linkedid": "1.1"}
    assert n.normalize({**base, "userevent": "Other", "pbxrecrec": "x"}, 1.0) == []
    assert n.normalize({**base, "userevent": "PbxrecEarlyStart", "pbxrecrec": "a b;c"}, 1.0) == []
    (started,) = n.normalize({**base, "userevent": "PbxrecEarlyStart", "pbxrecrec": "r1",
                              "pbxrecmmid": "0x1)(evil"}, 1.0)
    assert isinstance(started, E.RecordingStarted) and started.pbx_ref == ""


def test_caller_who_leaves_while_ringing_is_not_recorded_and_not_missing() -> None:
    book = _book()
    book.handle(E.ChannelCreated(at=9.0, call_id=CID, channel_id="1732200000.1", channel="PJSIP/t-1"), 9.0)
    book.handle(_request(True), 10.0)
    book.handle(E.ChannelHungUp(at=11.0, call_id=CID, channel_id="1732200000.1", channel="PJSIP/t-1"), 11.0)
    cmds = book.handle(E.CdrPosted(at=11.1, call_id=CID, channel_id="1732200000.1",
                                   fields={"disposition": "NO ANSWER", "billsec": "0"}), 11.1)
    (row,) = [c.row for c in cmds if isinstance(c, UpsertCall)]
    call = book.find(CID)
    assert call is not None and call.recordings[0].state == "failed"
    assert "not_started" in call.recordings[0].flags and "not_answered" in call.flags
    assert row["record_decision"] != "record" and row["status"] == "no_answer", row


def test_a_request_that_is_not_early_is_recorded_as_before() -> None:
    book = _book()
    book.handle(_request(False), 10.0)
    call = book.find(CID)
    assert call is not None and not call.recordings[0].early
