"""Which MixMonitor a pause mutes (pbx_recorder/core/mixmonitor_order.py): on an Asterisk whose
``MixMonitorMute`` without an ID mutes only a channel's first MixMonitor (16.28 measured in
tests/real/test_asterisk_e2e_pci_pause.py), a mute on a channel where a MixMonitor the recorder did
not start runs, or where not every start was seen, is no pause of the recorder's recording: the
core claims none and flags it ``pause_missed``; the live-call snapshot tells ``calls pause`` and
the console to refuse.  Without such a MixMonitor the pause works as before."""

from __future__ import annotations

from typing import Any

import pytest

from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import StartRecording
from pbx_recorder.core.mixmonitor_order import (
    NO_EVENTS,
    PBX_OWN,
    UNKNOWN,
    mutes_every_mixmonitor,
    pause_doubt,
    reports_mixmonitor_events,
    short_version,
)
from tests.unit.calls_transcript import new_book

AGENT = "PJSIP/agent-01"
OURS = "pbx1_L1_call001"


@pytest.mark.parametrize(("version", "mutes_all"), [
    ("16.28.0~dfsg-0+deb11u4", False), ("18.17.0", False), ("18.18.0", True), ("19.8.1", False),
    ("20.2.1", False), ("20.3.0", True), ("21.0.0", True), ("22.10.1", True),
    ("certified/18.9-cert5", False), ("", None), ("GIT-master-abc", None),
])
def test_the_version_says_whether_a_mute_reaches_every_mixmonitor(version: str,
                                                                  mutes_all: bool | None) -> None:
    assert mutes_every_mixmonitor(version) is mutes_all


@pytest.mark.parametrize(("version", "reports"), [
    ("16.16.2", False), ("16.17.0", True), ("16.28.0~dfsg-0+deb11u4", True), ("17.9.4", False),
    ("18.2.2", False), ("18.3.0", True), ("19.0.0", True), ("22.10.1", True), ("", True),
])
def test_mixmonitor_events_exist_from_16_17_and_18_3(version: str, reports: bool) -> None:
    assert reports_mixmonitor_events(version) is reports


def test_only_major_and_minor_of_the_version_are_shown() -> None:
    assert short_version("16.28.0~dfsg-0+deb11u4") == "16.28"
    assert short_version("GIT-x") == "(version unknown)"


def recorded_call(version: str, *, foreign_before: bool, foreign_after: bool = False) -> CallBook:
    """An outbound call recorded on the agent's channel, with a
    MixMonitor of the PBX's own started before or after the recorder's."""
    book = new_book()
    book.handle(E.PbxBooted(0, "20261206120000", version=version), 0)
    book.handle(E.ResyncCompleted(0), 0)
    book.handle(E.ChannelCreated(0, "L1", "A", AGENT, exten="00441234"), 0)
    if foreign_before:
        book.handle(E.MixMonitorStarted(0.05, "L1", "A", AGENT), 0.05)
    cmds = book.handle(E.ConsentRequested(0.1, "L1", "A", AGENT, "outbound", "00441234"), 0.1)
    cmds += book.handle(E.ChannelCreated(0.2, "L1", "C", "PJSIP/trunk-02"), 0.2)
    cmds += book.handle(E.ChannelAnswered(5, "L1", "C", "PJSIP/trunk-02"), 5)
    assert [c.recording_id for c in cmds if isinstance(c, StartRecording)] == [OURS]
    book.handle(E.RecordingStarted(5.05, "L1", "A", AGENT, OURS, pbx_ref="0x1"), 5.05)
    book.handle(E.MixMonitorStarted(5.1, "L1", "A", AGENT), 5.1)  # the recorder's own
    if foreign_after:
        book.handle(E.MixMonitorStarted(6, "L1", "A", AGENT), 6)
    return book


def ours(book: CallBook) -> dict[str, Any]:
    (rec,) = [r for r in book.snapshot("L1")["recordings"] if r["recording_id"] == OURS]
    return rec


def mute(book: CallBook, at: float, muted: bool = True, channel: str = AGENT, uniqueid: str = "A") -> None:
    book.handle(E.RecordingMuted(at, "L1", uniqueid, channel, muted), at)


def mute_is_missed(book: CallBook, at: float = 30) -> bool:
    """A mute at ``at`` is no pause of ours: none claimed, flagged ``pause_missed``."""
    mute(book, at)
    return ours(book)["pauses"] == [] and ours(book)["flags"] == ["pause_missed"]


def test_on_asterisk_16_without_a_mixmonitor_of_the_pbxs_own_the_pause_works() -> None:
    book = recorded_call("16.28.0", foreign_before=False)
    snapshot = book.snapshot("L1")
    assert snapshot["mixmonitors"] == {AGENT: [OURS]} and pause_doubt("16.28.0", snapshot, AGENT) is None
    mute(book, 30)
    mute(book, 40, muted=False)
    assert ours(book)["pauses"] == [[30, 40]] and ours(book)["flags"] == []


def test_on_asterisk_16_a_mute_beside_the_pbxs_own_mixmonitor_is_not_a_pause() -> None:
    book = recorded_call("16.28.0", foreign_before=True)
    snapshot = book.snapshot("L1")
    assert snapshot["mixmonitors"] == {AGENT: ["", OURS]}
    assert pause_doubt("16.28.0", snapshot, AGENT) == PBX_OWN  # calls pause refuses
    mute(book, 30)
    rec = ours(book)
    assert (rec["state"], rec["pauses"], rec["flags"]) == ("recording", [], ["pause_missed"])
    assert book.state("L1") == "recording"
    mute(book, 40, muted=False)
    assert ours(book)["pauses"] == []


def test_the_pbxs_own_mixmonitor_started_after_the_recorders_is_refused_too() -> None:
    """Which start is whose cannot be told on Asterisk 16 (no ID, and the AMI stream and the
    consent session are not ordered): any other MixMonitor on the channel is a doubt."""
    book = recorded_call("16.28.0", foreign_before=False, foreign_after=True)
    assert pause_doubt("16.28.0", book.snapshot("L1"), AGENT) == PBX_OWN
    assert mute_is_missed(book)


def test_an_unknown_version_is_taken_as_muting_the_first_only() -> None:
    book = recorded_call("", foreign_before=True)
    assert mute_is_missed(book)
    assert pause_doubt("", book.snapshot("L1"), AGENT) == PBX_OWN


def test_on_asterisk_22_the_mute_reaches_every_mixmonitor_and_is_a_pause() -> None:
    book = recorded_call("22.10.1", foreign_before=True)
    mute(book, 30)
    mute(book, 40, muted=False)
    assert ours(book)["pauses"] == [[30, 40]] and ours(book)["flags"] == []
    assert pause_doubt("22.10.1", book.snapshot("L1"), AGENT) is None


def test_an_asterisk_without_mixmonitor_events_cannot_be_paused_with_certainty() -> None:
    book = recorded_call("16.16.0", foreign_before=False)
    assert pause_doubt("16.16.0", book.snapshot("L1"), AGENT) == NO_EVENTS


def test_a_stop_without_an_id_never_clears_a_foreign_mixmonitor() -> None:
    """Asterisk 16 names no MixMonitorID in MixMonitorStop: a stop that is not one of ours the core
    stopped leaves every foreign entry (only the hang-up clears them): refused, never missed."""
    book = recorded_call("16.28.0", foreign_before=True)
    book.handle(E.RecordingStopped(20, "L1", "A", AGENT), 20)
    assert book.snapshot("L1")["mixmonitors"] == {AGENT: ["", OURS]}
    assert ours(book)["state"] == "recording"  # not ours: ours runs on
    assert mute_is_missed(book)


def test_our_own_stop_without_an_id_is_counted_off() -> None:
    """A recording of ours the core stopped, then an ID-less MixMonitorStop: that one goes."""
    book = recorded_call("16.28.0", foreign_before=False)
    call = book.find("L1")
    assert call is not None
    call.recordings[0].stop(20)
    book.handle(E.RecordingStopped(20.1, "L1", "A", AGENT), 20.1)
    assert book.snapshot("L1")["mixmonitors"] == {}


@pytest.mark.parametrize("gap", ["restored", "link_lost", "start_not_seen"])
def test_a_gap_in_the_events_is_a_doubt(gap: str) -> None:
    book = recorded_call("16.28.0", foreign_before=False)
    if gap == "restored":  # a restarted recorder missed the events while it was down
        again = new_book()
        again.handle(E.PbxBooted(0, "20261206120000", version="16.28.0"), 0)
        again.restore(book.snapshot("L1"))
        book = again
    elif gap == "link_lost":
        book.handle(E.PbxLinkLost(10), 10)
        book.handle(E.PbxBooted(12, "20261206120000", version="16.28.0"), 12)
    else:
        call = book.find("L1")
        assert call is not None
        call.recordings[0].start_seen = False
        call.mixmonitors.clear()
    assert pause_doubt("16.28.0", book.snapshot("L1"), AGENT) == UNKNOWN
    assert mute_is_missed(book)


def test_a_lost_link_forgets_the_version_until_the_next_connect() -> None:
    book = recorded_call("22.10.1", foreign_before=True)
    book.handle(E.PbxLinkLost(10), 10)
    assert book.mute_all is None
    book.handle(E.PbxBooted(12, "20261206120000", version="22.10.1"), 12)
    assert book.mute_all is True


def test_a_mute_on_a_channel_without_a_recording_of_ours_pauses_nothing() -> None:
    book = recorded_call("22.10.1", foreign_before=False)
    mute(book, 30, channel="PJSIP/trunk-02", uniqueid="C")
    assert ours(book)["pauses"] == [] and book.state("L1") == "recording"


def test_a_transfers_segment_started_paused_beside_the_pbxs_own_mixmonitor_is_taken_back() -> None:
    """Paused, then a blind transfer: segment 2 starts muted on the target, where the PBX's own
    MixMonitor already runs; on Asterisk 16 that mute silences the PBX's file, so no pause is
    claimed for segment 2 (on such an Asterisk none is before the PBX's mute event) and it is
    flagged (ALERT)."""
    book = recorded_call("16.28.0", foreign_before=False)
    mute(book, 30)
    assert ours(book)["state"] == "paused"
    book.handle(E.ChannelCreated(40, "L1", "D", "PJSIP/agent-03"), 40)
    book.handle(E.MixMonitorStarted(40.5, "L1", "D", "PJSIP/agent-03"), 40.5)  # the PBX's own
    transfer = E.Transferred(41, "L1", "A", AGENT, kind="blind", target_channel="PJSIP/agent-03")
    book.handle(transfer, 41)
    book.handle(E.ChannelHungUp(41, "L1", "A", AGENT), 41)
    second = book.snapshot("L1")["recordings"][1]
    assert (second["state"], second["pauses"]) == ("recording", [])  # the mute is sent, not yet seen
    book.handle(E.MixMonitorStarted(41.1, "L1", "D", "PJSIP/agent-03"), 41.1)  # segment 2's
    book.handle(E.RecordingMuted(41.2, "L1", "D", "PJSIP/agent-03", True), 41.2)
    second = book.snapshot("L1")["recordings"][1]
    assert (second["state"], second["pauses"], second["flags"]) == ("recording", [], ["pause_missed"])
    assert book.state("L1") == "recording"


def test_a_restored_call_keeps_what_runs_on_its_channels() -> None:
    book = recorded_call("16.28.0", foreign_before=True)
    again = new_book()
    again.restore(book.snapshot("L1"))
    assert again.snapshot("L1")["mixmonitors"] == {AGENT: ["", OURS]}


def test_a_call_begun_while_the_ami_link_was_down_is_a_doubt() -> None:
    """Its MixMonitorStart events (the PBX's own included) may have been missed: a later resync
    knows the call and changes nothing, so it was marked when it began."""
    book = new_book(mute_all=None)
    book.handle(E.PbxBooted(0, "20261206120000", version="16.28.0"), 0)
    book.handle(E.PbxLinkLost(0.01), 0.01)
    book.handle(E.ConsentRequested(0.1, "L1", "A", AGENT, "outbound", "00441234"), 0.1)  # over AGI
    book.handle(E.PbxBooted(3, "20261206120000", version="16.28.0"), 3)
    book.handle(E.ChannelCreated(3.1, "L1", "C", "PJSIP/trunk-02"), 3.1)
    book.handle(E.ChannelAnswered(5, "L1", "C", "PJSIP/trunk-02"), 5)
    book.handle(E.MixMonitorStarted(5.1, "L1", "A", AGENT), 5.1)
    assert pause_doubt("16.28.0", book.snapshot("L1"), AGENT) == UNKNOWN
    assert mute_is_missed(book)


def test_a_recording_of_ours_stopped_but_not_seen_stopping_is_a_doubt() -> None:
    """Its StopMixMonitor may not have gone out (or not yet): it may still run, and be first."""
    book = recorded_call("16.28.0", foreign_before=False)
    call = book.find("L1")
    assert call is not None
    call.mixmonitors[AGENT].insert(0, "pbx1_L1_consent001")  # a dialogue recording, stopped in the core
    assert pause_doubt("16.28.0", book.snapshot("L1"), AGENT) == UNKNOWN
    mute(book, 30)
    assert ours(book)["pauses"] == []


def test_a_doubtful_unmute_ends_a_pause_of_ours_and_a_doubtful_mute_keeps_it() -> None:
    """Paused while ours was the only MixMonitor; then the PBX starts its own.  Another mute does not
    take the real pause back; an unmute (which may have reached ours, the first) closes it."""
    book = recorded_call("16.28.0", foreign_before=False)
    mute(book, 30)
    book.handle(E.MixMonitorStarted(31, "L1", "A", AGENT), 31)  # the PBX's own, after ours
    mute(book, 32)
    assert ours(book)["pauses"] == [[30, None]] and ours(book)["state"] == "paused"
    mute(book, 40, muted=False)
    rec = ours(book)
    assert (rec["state"], rec["pauses"], rec["flags"]) == ("recording", [[30, 40]], ["pause_missed"])


def test_a_mute_of_one_direction_is_no_pause() -> None:
    book = recorded_call("22.10.1", foreign_before=False)
    book.handle(E.RecordingMuted(30, "L1", "A", AGENT, True, direction="read"), 30)
    assert ours(book)["pauses"] == [] and ours(book)["flags"] == ["pause_missed"]


def test_freeswitchs_mask_of_the_recordings_file_is_always_a_pause() -> None:
    """``uuid_record mask`` names the file (esl/normalize.py ``on_mask``: exact): no version, no
    MixMonitor events, no doubt (the CI run on 1275d70 failed here: FreeSWITCH pauses were dropped)."""
    book = recorded_call("", foreign_before=False)
    book.mute_all = None
    call = book.find("L1")
    assert call is not None
    call.recordings[0].start_seen, call.mixmonitors, call.mixmonitors_known = False, {}, False
    book.handle(E.RecordingMuted(30, "L1", "A", "A", True, exact=True), 30)  # the leg's uuid
    book.handle(E.RecordingMuted(40, "L1", "A", "A", False, exact=True), 40)
    assert ours(book)["pauses"] == [[30, 40]] and ours(book)["flags"] == []
