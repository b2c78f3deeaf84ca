"""The verdict ``calls pause|resume`` waits for after its action (pbx_recorder/cli/pause_confirm.py):
the daemon's count of the PBX's mute events in the call's live snapshot, and whether the last ones
were a sure pause of the recorder's recording."""

from __future__ import annotations

import asyncio
from typing import Any

from pbx_recorder.cli.pause_confirm import CONFIRMED, MISSED, UNCONFIRMED, MuteMark, await_verdict, verdict
from pbx_recorder.core import events as E
from tests.unit.test_mixmonitor_order import AGENT, recorded_call


def snap(state: str, n: int = 0, missed: int = 0, doubt: str = "") -> dict[str, Any]:
    events: dict[str, Any] = {"n": n} if n else {}
    if missed:
        events.update(missed=missed, doubt=doubt)
    return {"recordings": [{"state": state}, {"state": "finalized"}], "mute_events": events}


def test_a_new_mute_event_with_every_recording_paused_confirms() -> None:
    mark = MuteMark.of(snap("recording"))
    assert mark == MuteMark(0, 0)
    assert verdict(snap("recording"), mark, True) is None  # nothing counted yet
    assert verdict(snap("paused", n=1), mark, True) == (CONFIRMED, "")
    assert verdict(snap("recording", n=2), MuteMark(1, 0), False) == (CONFIRMED, "")


def test_an_earlier_pause_does_not_confirm_this_one() -> None:
    """Already paused before the action: only a mute event counted after the mark confirms."""
    mark = MuteMark.of(snap("paused", n=3))
    assert verdict(snap("paused", n=3), mark, True) is None
    assert verdict(snap("paused", n=4), mark, True) == (CONFIRMED, "")


def test_a_mute_the_daemon_did_not_take_as_a_pause_is_missed() -> None:
    mark = MuteMark.of(snap("recording", n=1, missed=1, doubt="mixmonitors_unknown"))
    assert verdict(snap("recording", n=2, missed=2, doubt="pbx_own_mixmonitor"), mark, True) == (
        MISSED, "pbx_own_mixmonitor")


def test_a_call_that_ended_or_a_malformed_snapshot_gives_no_verdict() -> None:
    assert verdict(None, MuteMark(0, 0), True) is None
    assert MuteMark.of({"mute_events": "junk"}) == MuteMark(0, 0)
    assert MuteMark.of({"mute_events": {"n": "x", "missed": None}}) == MuteMark(0, 0)
    assert verdict({"recordings": [], "mute_events": {"n": 1}}, MuteMark(0, 0), True) is None


def test_the_wait_ends_with_the_verdict_or_unconfirmed_at_its_deadline() -> None:
    now = [0.0]
    answers = iter([snap("recording"), snap("recording"), snap("paused", n=1)])

    async def tick(seconds: float) -> None:
        now[0] += seconds

    found = asyncio.run(await_verdict(lambda: next(answers), MuteMark(0, 0), True, 3.0,
                                      clock=lambda: now[0], sleep=tick))
    assert found == (CONFIRMED, "") and 0.15 < now[0] < 0.25
    now[0] = 0.0
    found = asyncio.run(await_verdict(lambda: snap("recording"), MuteMark(0, 0), True, 1.0,
                                      clock=lambda: now[0], sleep=tick))
    assert found == (UNCONFIRMED, "") and 1.0 <= now[0] < 1.2


def test_the_core_counts_mute_events_and_their_doubts() -> None:
    book = recorded_call("16.28.0", foreign_before=False)
    book.handle(E.RecordingMuted(30, "L1", "A", AGENT, True), 30)
    assert book.snapshot("L1")["mute_events"] == {"n": 1}
    book.handle(E.MixMonitorStarted(31, "L1", "A", AGENT), 31)  # the PBX's own, after ours
    book.handle(E.RecordingMuted(40, "L1", "A", AGENT, False), 40)
    assert book.snapshot("L1")["mute_events"] == {"n": 2, "missed": 1, "doubt": "pbx_own_mixmonitor"}
    book.handle(E.RecordingMuted(41, "L1", "C", "PJSIP/trunk-02", True), 41)  # no recording of ours
    assert book.snapshot("L1")["mute_events"]["n"] == 2
