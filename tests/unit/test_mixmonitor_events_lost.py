"""Events lost inside the AMI client (the link stays up) and the MixMonitor count
(pbx_recorder/core/mixmonitor_order.py): a ``MixMonitorStart`` of the PBX's own among blocks the
framing guard dropped, a block that failed to parse or events past the connect's hold cap would
leave a channel counted with ours alone, and a pause on Asterisk 16 would be claimed while the
PBX's file was the one muted.  ``PbxEventsLost`` marks every open call's count untrusted, and a
call that begins before the next complete resync too; a call first seen between a reconnect's
``PbxBooted`` and its resync is no longer taken as fully seen.  A mute the core asked for itself
(a transfer's next segment starting paused) that failed takes its pause back."""

from __future__ import annotations

import pytest

from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import MuteRecording, StartRecording
from pbx_recorder.core.mixmonitor_order import UNKNOWN, pause_doubt
from tests.unit.calls_transcript import new_book
from tests.unit.test_mixmonitor_order import AGENT, mute, mute_is_missed, ours, recorded_call

V16 = "16.28.0"


def second_call(book: CallBook, at: float) -> None:
    """Call L2, recorded on its agent's channel, every event of it seen."""
    book.handle(E.ChannelCreated(at, "L2", "B", "PJSIP/agent-02", exten="00449999"), at)
    cmds = book.handle(E.ConsentRequested(at + 0.1, "L2", "B", "PJSIP/agent-02", "outbound", "00449999"),
                       at + 0.1)
    cmds += book.handle(E.ChannelCreated(at + 0.2, "L2", "E", "PJSIP/trunk-05"), at + 0.2)
    cmds += book.handle(E.ChannelAnswered(at + 1, "L2", "E", "PJSIP/trunk-05"), at + 1)
    (start,) = [c for c in cmds if isinstance(c, StartRecording)]
    book.handle(E.RecordingStarted(at + 1.05, "L2", "B", "PJSIP/agent-02", start.recording_id), at + 1.05)
    book.handle(E.MixMonitorStarted(at + 1.1, "L2", "B", "PJSIP/agent-02"), at + 1.1)


def doubt_of_l2(book: CallBook) -> str | None:
    return pause_doubt(V16, book.snapshot("L2"), "PJSIP/agent-02")


def test_events_lost_soon_after_the_recording_started_make_its_pause_a_doubt() -> None:
    """Recording since 5.1 s; what arrived from 12 s on may be lost: a MixMonitorStart of the PBX's
    own attached before the recorder's may be published (and arrive) up to GAP_MARGIN_S later."""
    book = recorded_call(V16, foreign_before=False)
    assert pause_doubt(V16, book.snapshot("L1"), AGENT) is None
    book.handle(E.PbxEventsLost(20, reason="the framing guard dropped blocks", since=12), 20)
    assert pause_doubt(V16, book.snapshot("L1"), AGENT) == UNKNOWN  # calls pause / console refuse
    assert mute_is_missed(book)  # and a mute by another tool is not claimed as a pause


def test_a_call_begun_after_the_loss_is_a_doubt_until_a_complete_resync() -> None:
    book = recorded_call(V16, foreign_before=False)
    book.handle(E.PbxEventsLost(20, reason="a block failed to parse", since=12), 20)
    second_call(book, 21)  # its first channel's Newchannel may follow a lost MixMonitorStart of its own
    assert doubt_of_l2(book) == UNKNOWN
    book.handle(E.ResyncCompleted(30, frozenset({"L1", "L2"}), complete=False), 30)  # lost again meanwhile
    book.handle(E.ChannelCreated(31, "L3", "F", "PJSIP/agent-04"), 31)
    third = book.find("L3")
    assert third is not None and not third.mixmonitors_known
    book.handle(E.ResyncCompleted(40, frozenset({"L1", "L2", "L3"})), 40)
    assert doubt_of_l2(book) == UNKNOWN  # a call open at the loss stays in doubt for its life
    assert pause_doubt(V16, book.snapshot("L1"), AGENT) == UNKNOWN


def test_after_a_complete_resync_new_calls_are_counted_again() -> None:
    book = recorded_call(V16, foreign_before=False)
    book.handle(E.PbxEventsLost(20, reason="a block failed to parse", since=12), 20)
    book.handle(E.ResyncCompleted(22, frozenset({"L1"})), 22)
    second_call(book, 23)
    assert doubt_of_l2(book) is None
    book.handle(E.RecordingMuted(30, "L2", "B", "PJSIP/agent-02", True), 30)
    (rec,) = book.snapshot("L2")["recordings"]
    assert rec["pauses"] == [[30, None]] and rec["flags"] == []


def test_a_call_first_seen_between_a_reconnect_and_its_resync_is_a_doubt() -> None:
    """It may have begun while the link was down (its MixMonitorStart missed) and is not adopted by
    the resync, which already knows it: before, the reconnect's PbxBooted counted it as fully seen."""
    book = recorded_call(V16, foreign_before=False)
    book.handle(E.PbxLinkLost(20), 20)
    book.handle(E.PbxBooted(25, "20261206120000", version=V16), 25)
    second_call(book, 25.1)
    book.handle(E.ResyncCompleted(26, frozenset({"L1", "L2"})), 26)
    assert doubt_of_l2(book) == UNKNOWN


def test_an_asterisk_that_mutes_every_mixmonitor_is_not_concerned() -> None:
    book = recorded_call("22.10.1", foreign_before=True)
    book.handle(E.PbxEventsLost(20, reason="the framing guard dropped blocks"), 20)
    assert pause_doubt("22.10.1", book.snapshot("L1"), AGENT) is None
    mute(book, 30)
    assert ours(book)["pauses"] == [[30, None]] and ours(book)["flags"] == []


def test_finished_calls_are_left_as_they_were() -> None:
    book = recorded_call(V16, foreign_before=False)
    book.handle(E.ChannelHungUp(15, "L1", "C", "PJSIP/trunk-02"), 15)
    book.handle(E.ChannelHungUp(15, "L1", "A", AGENT), 15)
    assert book.state("L1") in ("ended", "finalized")
    book.handle(E.PbxEventsLost(20, reason="x"), 20)
    call = book.find("L1")
    assert call is not None and call.mixmonitors_known


def paused_then_transferred(version: str = V16) -> tuple[CallBook, list[object]]:
    book = recorded_call(version, foreign_before=False)
    mute(book, 30)
    book.handle(E.ChannelCreated(40, "L1", "D", "PJSIP/agent-03"), 40)
    book.handle(E.Transferred(41, "L1", "A", AGENT, kind="blind", target_channel="PJSIP/agent-03"), 41)
    return book, list(book.handle(E.ChannelHungUp(41, "L1", "A", AGENT), 41))


@pytest.mark.parametrize("version", [V16, "22.10.1"])
def test_a_failed_mute_of_a_transfers_segment_claims_no_pause(version: str) -> None:
    """The segment after the transfer starts paused (the core sends the mute right after its
    start; on 22.10 it also opens the pause with the start, on 16.28 it waits for the PBX's mute
    event); the mute action fails: the card would be in the file from then on, so no pause is
    claimed for it and it is flagged (ALERT)."""
    book, cmds = paused_then_transferred(version)
    assert MuteRecording("pbx1_L1", "PJSIP/agent-03", True) in cmds
    second = book.snapshot("L1")["recordings"][1]
    opened = [[41, None]] if version != V16 else []
    assert second["pauses"] == opened
    assert book.state("L1") == ("paused" if opened else "recording")  # on 16.28 not before the event
    book.handle(E.RecordingMuteFailed(41.2, "L1", "D", "PJSIP/agent-03", muted=True), 41.2)
    second = book.snapshot("L1")["recordings"][1]
    assert (second["state"], second["pauses"], second["flags"]) == ("recording", [], ["pause_missed"])
    assert book.state("L1") == "recording"
    first = book.snapshot("L1")["recordings"][0]
    assert first["pauses"] == [[30, 41]] and first["flags"] == []  # the first segment's pause was real


def test_on_asterisk_16_a_transfers_segment_is_paused_from_the_pbxs_mute_event() -> None:
    book, _ = paused_then_transferred(V16)
    book.handle(E.MixMonitorStarted(41.1, "L1", "D", "PJSIP/agent-03"), 41.1)  # the segment's own
    book.handle(E.RecordingMuted(41.2, "L1", "D", "PJSIP/agent-03", True), 41.2)
    second = book.snapshot("L1")["recordings"][1]
    assert (second["state"], second["pauses"], second["flags"]) == ("paused", [[41.2, None]], [])
    assert book.state("L1") == "paused"


def test_a_failed_mute_leaves_a_pause_the_pbx_confirmed_and_a_failed_unmute_changes_nothing() -> None:
    book = recorded_call("22.10.1", foreign_before=False)
    mute(book, 30)  # confirmed by the PBX's MixMonitorMute event
    book.handle(E.RecordingMuteFailed(31, "L1", "A", AGENT, muted=True), 31)
    assert ours(book)["pauses"] == [[30, None]] and ours(book)["flags"] == []
    book.handle(E.RecordingMuteFailed(32, "L1", "A", AGENT, muted=False), 32)
    assert ours(book)["state"] == "paused" and ours(book)["pauses"] == [[30, None]]


def test_a_linkedid_reused_after_a_loss_starts_in_doubt() -> None:
    """The call that takes an ended call's linkedid again (``-r2``) is a new Call: it inherits
    the book's view (before, it was always counted as fully seen)."""
    book = new_book(mute_all=None)
    book.handle(E.PbxBooted(0, "20261206120000", version=V16), 0)
    book.handle(E.ResyncCompleted(0), 0)
    book.handle(E.ChannelCreated(1, "L9", "L9", "PJSIP/agent-09"), 1)
    book.handle(E.ChannelHungUp(2, "L9", "L9", "PJSIP/agent-09"), 2)
    book.handle(E.PbxEventsLost(3, reason="x"), 3)
    book.handle(E.ChannelCreated(4, "L9", "L9b", "PJSIP/agent-09"), 4)
    again = book.find("L9")
    assert again is not None and again.call_id.endswith("-r2") and not again.mixmonitors_known


def test_only_calls_whose_count_was_trusted_are_noted_for_a_new_snapshot() -> None:
    """The daemon writes those calls' snapshots again; a caller who makes the framing guard drop
    blocks again and again must not make it copy every live call each time."""
    book = recorded_call(V16, foreign_before=False)
    second_call(book, 10)
    assert book.take_count_untrusted() == []
    book.handle(E.PbxEventsLost(20, reason="the framing guard dropped blocks"), 20)
    # L1 recording since 5.1 s survives the gap (GAP_MARGIN_S), L2 since 11.1 s does not
    assert book.take_count_untrusted() == ["pbx1_L2"]
    for at in range(21, 30):
        book.handle(E.PbxEventsLost(at, reason="the framing guard dropped blocks"), at)
    book.handle(E.PbxLinkLost(30), 30)
    assert book.take_count_untrusted() == []


def test_on_freeswitch_a_transfers_segment_is_paused_from_its_start() -> None:
    """FreeSWITCH's mask names the recording's file (no MixMonitor order, no Asterisk version, and
    the daemon's own mask sends no event): the segment counts as paused from its first second."""
    book = new_book(mute_all=None, exact_mutes=True)
    book.handle(E.ResyncCompleted(0), 0)
    book.handle(E.ChannelCreated(0, "L1", "A", AGENT, exten="00441234"), 0)
    book.handle(E.ConsentRequested(0.1, "L1", "A", AGENT, "outbound", "00441234"), 0.1)
    book.handle(E.ChannelCreated(0.2, "L1", "C", "PJSIP/trunk-02"), 0.2)
    book.handle(E.ChannelAnswered(5, "L1", "C", "PJSIP/trunk-02"), 5)
    book.handle(E.RecordingMuted(30, "L1", "A", AGENT, True, exact=True), 30)
    book.handle(E.ChannelCreated(40, "L1", "D", "PJSIP/agent-03"), 40)
    book.handle(E.Transferred(41, "L1", "A", AGENT, kind="blind", target_channel="PJSIP/agent-03"), 41)
    cmds = book.handle(E.ChannelHungUp(41, "L1", "A", AGENT), 41)
    assert MuteRecording("pbx1_L1", "PJSIP/agent-03", True) in cmds
    second = book.snapshot("L1")["recordings"][1]
    assert (second["state"], second["pauses"]) == ("paused", [[41, None]]) and book.state("L1") == "paused"


def test_a_call_recording_since_well_before_the_loss_keeps_its_pause() -> None:
    """What was lost arrived after every recording of the call had been seen to start (and no
    other MixMonitor was counted on its channel): a MixMonitor started then is started after the
    recorder's, and a mute without an ID mutes the first.  A hostile caller who makes the framing
    guard drop blocks does not make such calls' pauses refused."""
    book = recorded_call(V16, foreign_before=False)
    book.handle(E.PbxEventsLost(20, reason="the framing guard dropped blocks", since=16), 20)
    assert pause_doubt(V16, book.snapshot("L1"), AGENT) is None
    mute(book, 30)
    assert ours(book)["pauses"] == [[30, None]] and ours(book)["flags"] == []


def test_a_recording_of_the_call_started_after_the_loss_is_a_doubt() -> None:
    """The lost events may hold the start of the PBX's own MixMonitor on the channel the next
    segment starts on (here after a transfer): that segment's pause is not trusted."""
    book = recorded_call(V16, foreign_before=False)
    book.handle(E.PbxEventsLost(20, reason="the framing guard dropped blocks", since=16), 20)
    book.handle(E.ChannelCreated(40, "L1", "D", "PJSIP/agent-03"), 40)
    book.handle(E.Transferred(41, "L1", "A", AGENT, kind="blind", target_channel="PJSIP/agent-03"), 41)
    book.handle(E.ChannelHungUp(41, "L1", "A", AGENT), 41)
    book.handle(E.MixMonitorStarted(41.1, "L1", "D", "PJSIP/agent-03"), 41.1)  # the segment's
    assert pause_doubt(V16, book.snapshot("L1"), "PJSIP/agent-03") == UNKNOWN


@pytest.mark.parametrize(("foreign", "started"), [(True, 5.1), (False, None)])
def test_a_call_in_doubt_or_without_a_recording_does_not_survive_a_gap(foreign: bool,
                                                                       started: float | None) -> None:
    book = recorded_call(V16, foreign_before=foreign)
    call = book.find("L1")
    assert call is not None
    if started is None:  # its start event seen, but when is not known (a snapshot of an older version)
        call.recordings[0].start_seen_at = None
    book.handle(E.PbxEventsLost(60, reason="x", since=60), 60)
    assert not call.mixmonitors_known


def test_a_lost_link_keeps_the_pause_of_a_call_recording_since_well_before() -> None:
    """Before, every call open across a lost AMI link had its pauses refused for the rest of the
    call on such an Asterisk; one whose recording was seen to start well before the link's last
    bytes keeps them (a MixMonitor started while the link was down runs after the recorder's)."""
    book = recorded_call(V16, foreign_before=False)
    book.handle(E.PbxLinkLost(40, since=30), 40)  # last bytes read at 30 s, recording since 5.1 s
    book.handle(E.PbxBooted(45, "20261206120000", version=V16), 45)
    book.handle(E.ResyncCompleted(46, frozenset({"L1"})), 46)
    assert pause_doubt(V16, book.snapshot("L1"), AGENT) is None
    again = recorded_call(V16, foreign_before=False)  # a link that went quiet soon after the start
    again.handle(E.PbxLinkLost(50, since=12), 50)
    assert pause_doubt(V16, again.snapshot("L1"), AGENT) == UNKNOWN


def test_the_gap_rule_reads_when_the_start_was_read_not_asterisks_timestamp() -> None:
    book = new_book(mute_all=None)
    book.handle(E.PbxBooted(0, "20261206120000", version=V16), 0)
    book.handle(E.ResyncCompleted(0), 0)
    book.handle(E.ChannelCreated(0, "L1", "A", AGENT, exten="00441234"), 0)
    book.handle(E.ConsentRequested(0.1, "L1", "A", AGENT, "outbound", "00441234"), 0.1)
    book.handle(E.ChannelCreated(0.2, "L1", "C", "PJSIP/trunk-02"), 0.2)
    book.handle(E.ChannelAnswered(5, "L1", "C", "PJSIP/trunk-02"), 5)
    book.handle(E.MixMonitorStarted(5.1, "L1", "A", AGENT, arrived_at=19.0), 19)  # read 14 s late
    book.handle(E.PbxEventsLost(21, reason="x", since=20), 21)
    assert pause_doubt(V16, book.snapshot("L1"), AGENT) == UNKNOWN
