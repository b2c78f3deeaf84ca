"""A PCI pause survives a transfer that the recording follows (pbx_recorder/core/calls.py
``_on_hungup`` / ``_keep_paused``): segment 2 starts muted and stays paused until an explicit
resume, and each segment's metadata shows its share of the pause."""

from __future__ import annotations

from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import (
    Command,
    FinalizeRecording,
    MuteRecording,
    SetChannelVar,
    StartRecording,
)
from tests.unit.calls_transcript import new_book, play


def test_segment_after_transfer_starts_paused_and_the_pause_spans_both_segments() -> None:
    run = play("transfer_while_paused")
    starts = run.of(StartRecording)
    assert [(s.recording_id, s.channel) for s in starts] == [
        ("pbx1_L1_call001", "PJSIP/agent-01"), ("pbx1_L1_call002", "PJSIP/agent-03")]
    assert run.of(MuteRecording) == [MuteRecording("pbx1_L1", "PJSIP/agent-03", True)]
    first, second = run.of(FinalizeRecording)
    assert first.metadata["pauses"] == [[30, 41]]
    assert second.metadata["pauses"] == [[41, 100]]  # muted from its first second to the end
    assert (second.metadata["started_at"], second.metadata["stopped_at"]) == (41, 100)


def test_explicit_resume_after_the_transfer_closes_the_carried_pause() -> None:
    run = play("transfer_while_paused_resumed")  # with a daemon restart while paused
    first, second = run.of(FinalizeRecording)
    assert first.metadata["pauses"] == [[30, 41]]
    assert second.metadata["pauses"] == [[41, 60]]


def test_transfer_without_a_pause_starts_unmuted() -> None:
    run = play("transfer")
    assert run.of(MuteRecording) == []
    assert [f.metadata["pauses"] for f in run.of(FinalizeRecording)] == [[], []]


def _paused_call_transferred() -> tuple[CallBook, list[Command]]:
    book = new_book()
    book.handle(E.ChannelCreated(0, "L1", "A", "PJSIP/agent-01", exten="00441234"), 0)
    book.handle(E.ConsentRequested(0.1, "L1", "A", "PJSIP/agent-01", "outbound", "00441234"), 0.1)
    book.handle(E.ChannelCreated(0.2, "L1", "C", "PJSIP/trunk-02"), 0.2)
    book.handle(E.ChannelAnswered(5, "L1", "C", "PJSIP/trunk-02"), 5)
    book.handle(E.RecordingMuted(30, "L1", "A", "PJSIP/agent-01", True), 30)
    assert book.state("L1") == "paused"
    book.handle(E.ChannelCreated(40, "L1", "D", "PJSIP/agent-03"), 40)
    transfer = E.Transferred(41, "L1", "A", "PJSIP/agent-01", kind="blind", target_channel="PJSIP/agent-03")
    book.handle(transfer, 41)
    return book, book.handle(E.ChannelHungUp(41, "L1", "A", "PJSIP/agent-01"), 41)


def test_the_mute_goes_right_after_the_start_and_the_call_stays_paused() -> None:
    book, cmds = _paused_call_transferred()
    assert [type(c) for c in cmds] == [StartRecording, MuteRecording, *[SetChannelVar] * 3]
    start, mute = cmds[0], cmds[1]
    assert isinstance(start, StartRecording) and start.channel == "PJSIP/agent-03"
    assert mute == MuteRecording("pbx1_L1", "PJSIP/agent-03", True)
    assert book.state("L1") == "paused"
    recs = book.snapshot("L1")["recordings"]
    assert [(r["recording_id"], r["state"], r["pauses"]) for r in recs] == [
        ("pbx1_L1_call001", "stopped", [[30, 41]]),
        ("pbx1_L1_call002", "paused", [[41, None]]),  # the open pause carried over
    ]


def test_the_pbx_confirming_the_mute_changes_nothing_and_resume_unmutes() -> None:
    book, _ = _paused_call_transferred()
    assert book.handle(E.RecordingMuted(41.1, "L1", "D", "PJSIP/agent-03", True), 41.1) == []
    assert book.snapshot("L1")["recordings"][1]["pauses"] == [[41, None]]
    assert book.request_pause("L1", False, 50) == [MuteRecording("pbx1_L1", "PJSIP/agent-03", False)]
    book.handle(E.RecordingMuted(50.2, "L1", "D", "PJSIP/agent-03", False), 50.2)
    assert book.state("L1") == "recording"
    assert book.snapshot("L1")["recordings"][1]["pauses"] == [[41, 50.2]]
