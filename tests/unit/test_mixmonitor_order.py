"""Which MixMonitor a pause mutes (pbx_recorder/core/mixmonitor_order.py): on an Asterisk whose
``MixMonitorMute`` without an ID mutes only a channel's first MixMonitor (16.28 measured in
tests/real/test_asterisk_e2e_pci_pause.py), a channel whose first is the PBX's own is not paused
by a mute: the core claims no pause for the recorder's recording and flags it ``pause_missed``;
the live-call snapshot tells ``calls pause`` and the console to refuse."""

from __future__ import annotations

from typing import Any

import pytest

from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import StartRecording
from pbx_recorder.core.mixmonitor_order import foreign_first_channels, mutes_every_mixmonitor
from tests.unit.calls_transcript import new_book

AGENT = "PJSIP/agent-01"
OURS = "pbx1_L1_call001"


@pytest.mark.parametrize(("version", "mutes_all"), [
    ("16.28.0~dfsg-0+deb11u4", False), ("18.17.0", False), ("18.18.0", True), ("19.8.1", False),
    ("20.2.1", False), ("20.3.0", True), ("21.0.0", True), ("22.10.1", True),
    ("certified/18.9-cert5", False), ("", None), ("GIT-master-abc", None),
])
def test_the_version_says_whether_a_mute_reaches_every_mixmonitor(version: str, mutes_all: bool | None) -> None:
    assert mutes_every_mixmonitor(version) is mutes_all


def recorded_call(version: str, *, foreign_before: bool, foreign_after: bool = False) -> CallBook:
    """An outbound call recorded on the agent's channel, with a
    MixMonitor of the PBX's own started before or after the recorder's."""
    book = new_book()
    book.handle(E.PbxBooted(0, "20261206120000", version=version), 0)
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


def test_on_asterisk_16_a_mute_with_the_pbxs_own_mixmonitor_first_is_not_a_pause() -> None:
    book = recorded_call("16.28.0", foreign_before=True)
    snapshot = book.snapshot("L1")
    assert snapshot["mixmonitors"] == {AGENT: ["", OURS]}
    assert foreign_first_channels(snapshot) == [AGENT]  # calls pause refuses
    book.handle(E.RecordingMuted(30, "L1", "A", AGENT, True), 30)
    rec = ours(book)
    assert (rec["state"], rec["pauses"], rec["flags"]) == ("recording", [], ["pause_missed"])
    assert book.state("L1") == "recording"
    book.handle(E.RecordingMuted(40, "L1", "A", AGENT, False), 40)
    assert ours(book)["pauses"] == []


def test_an_unknown_version_is_taken_as_muting_the_first_only() -> None:
    book = recorded_call("", foreign_before=True)
    book.handle(E.RecordingMuted(30, "L1", "A", AGENT, True), 30)
    assert ours(book)["pauses"] == [] and ours(book)["flags"] == ["pause_missed"]


def test_on_asterisk_22_the_mute_reaches_every_mixmonitor_and_is_a_pause() -> None:
    book = recorded_call("22.10.1", foreign_before=True)
    book.handle(E.RecordingMuted(30, "L1", "A", AGENT, True), 30)
    book.handle(E.RecordingMuted(40, "L1", "A", AGENT, False), 40)
    assert ours(book)["pauses"] == [[30, 40]] and ours(book)["flags"] == []


def test_the_pbxs_own_mixmonitor_started_after_the_recorders_leaves_the_pause_working() -> None:
    book = recorded_call("16.28.0", foreign_before=False, foreign_after=True)
    snapshot = book.snapshot("L1")
    assert snapshot["mixmonitors"] == {AGENT: [OURS, ""]} and foreign_first_channels(snapshot) == []
    book.handle(E.RecordingMuted(30, "L1", "A", AGENT, True), 30)
    assert ours(book)["pauses"] == [[30, None]] and ours(book)["state"] == "paused"


def test_the_pbxs_own_mixmonitor_stopped_before_the_pause_leaves_it_working() -> None:
    book = recorded_call("16.28.0", foreign_before=True)
    book.handle(E.RecordingStopped(20, "L1", "A", AGENT), 20)  # Asterisk 16: a stop without an ID
    assert book.snapshot("L1")["mixmonitors"] == {AGENT: [OURS]}
    assert ours(book)["state"] == "recording"  # not ours: ours runs on
    book.handle(E.RecordingMuted(30, "L1", "A", AGENT, True), 30)
    assert ours(book)["pauses"] == [[30, None]]


def test_when_in_doubt_the_older_foreign_mixmonitor_stays() -> None:
    """Two of the PBX's own, one before and one after ours; a stop without an ID takes the newest:
    pauses stay refused rather than silently missed."""
    book = recorded_call("16.28.0", foreign_before=True, foreign_after=True)
    book.handle(E.RecordingStopped(20, "L1", "A", AGENT), 20)
    snapshot = book.snapshot("L1")
    assert snapshot["mixmonitors"] == {AGENT: ["", OURS]} and foreign_first_channels(snapshot) == [AGENT]


def test_our_recording_stopped_by_its_id_leaves_nothing_to_refuse() -> None:
    book = recorded_call("16.28.0", foreign_before=True)
    book.handle(E.RecordingStopped(20, "L1", "A", AGENT, pbx_ref="0x1"), 20)
    snapshot = book.snapshot("L1")
    assert snapshot["mixmonitors"] == {AGENT: [""]} and foreign_first_channels(snapshot) == []


def test_a_restored_call_keeps_what_runs_on_its_channels() -> None:
    book = recorded_call("16.28.0", foreign_before=True)
    again = new_book()
    again.restore(book.snapshot("L1"))
    assert foreign_first_channels(again.snapshot("L1")) == [AGENT]
