"""pbx_recorder/core/recording_refs.py: a recording's PBX handle is kept until the recording ends,
and no longer."""

from __future__ import annotations

import logging

import pytest

from pbx_recorder.core.recording_refs import RecordingRefs


def test_every_way_a_recording_ends_empties_the_table() -> None:
    refs: RecordingRefs[str] = RecordingRefs()
    for i in range(300):
        refs.add(f"c{i}_call001", f"c{i}", (f"PJSIP/a-{i}", f"{i}.1"), f"0x{i:x}")
    assert len(refs) == 300 and refs["c7_call001"] == "0x7" and refs.of_call("c7") == ["0x7"]
    for i in range(0, 100):  # stopped by us
        assert refs.pop(f"c{i}_call001") == f"0x{i:x}"
    for i in range(100, 150):  # hung up, Hangup by channel name
        assert refs.end_channel(f"PJSIP/a-{i}", "") == [f"c{i}_call001"]
    for i in range(150, 200):  # hung up, known by Uniqueid only (a renamed channel)
        assert refs.end_channel("PJSIP/renamed", f"{i}.1") == [f"c{i}_call001"]
    known = refs.ids()
    refs.add("late_call001", "late", ("PJSIP/late-1",), "0xlate")  # started after the list was asked
    gone = refs.prune({"PJSIP/a-250", "299.1"}, known)  # a reconnect: two of them still live
    assert len(gone) == 98 and set(refs.ids()) == {"c250_call001", "c299_call001", "late_call001"}
    for rid in list(refs.ids()):
        refs.pop(rid)
    assert len(refs) == 0 and refs._by_channel == {} and refs._by_call == {}


def test_a_call_lists_only_its_own_recordings() -> None:
    refs: RecordingRefs[tuple[str, ...]] = RecordingRefs()
    refs.add("a_call001", "a", ("u1",), ("/m/1.wav",))
    refs.add("a_consent002", "a", ("u2",), ("/m/2.wav",))
    refs.add("ab_call001", "ab", ("u3",), ("/m/3.wav",))  # a call id that starts like the other
    assert refs.of_call("a") == [("/m/1.wav",), ("/m/2.wav",)]
    refs.end_channel("u1")
    assert refs.of_call("a") == [("/m/2.wav",)] and refs.get("a_call001") is None


def test_restarting_a_recording_id_replaces_its_entry() -> None:
    refs: RecordingRefs[str] = RecordingRefs()
    refs.add("r1", "c", ("ch1",), "old")
    refs.add("r1", "c", ("ch2",), "new")
    assert refs.end_channel("ch1") == [] and refs.get("r1") == "new" and len(refs) == 1


def test_the_limit_bounds_what_is_never_ended(caplog: pytest.LogCaptureFixture) -> None:
    refs: RecordingRefs[str] = RecordingRefs(limit=10, what="MixMonitorID")
    with caplog.at_level(logging.WARNING, logger="pbx_recorder.core.recording_refs"):
        for i in range(25):
            refs.add(f"r{i}", f"c{i}", (f"ch{i}",), str(i))
    assert len(refs) == 10 and refs.ids() == {f"r{i}" for i in range(15, 25)} and refs.evicted == 15
    assert len(refs._by_channel) == 10 and len(refs._by_call) == 10
    assert caplog.text.count("MixMonitorID table full") == 1  # not one line per eviction
