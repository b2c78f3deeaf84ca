"""A PCI pause is bounded (``pbx.pause_max_s``, core/call_book_recording.py ``_auto_resume``).

A pause nobody resumes (an agent who forgot, a ``calls pause`` killed between its mute and the
daemon's verdict, a console that crashed, an agent who keeps it open on purpose) would leave the
rest of the call unrecorded: the core ends it itself with an unmute, flags the recording
``pause_auto_resumed``, and the PBX's unmute event closes the pause in the manifest.
"""

from __future__ import annotations

import pytest

from pbx_recorder.config import ConfigError
from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import FinalizeRecording, MuteRecording
from tests.unit.calls_transcript import new_book

AGENT = "PJSIP/agent-01"
CALL = "pbx1_L1"


def _recording_call(book: CallBook) -> None:
    book.handle(E.ChannelCreated(0, "L1", "A", AGENT, exten="00441234"), 0)
    book.handle(E.ConsentRequested(0.1, "L1", "A", AGENT, "outbound", "00441234"), 0.1)
    book.handle(E.ChannelCreated(0.2, "L1", "C", "PJSIP/trunk-02"), 0.2)
    book.handle(E.ChannelAnswered(5, "L1", "C", "PJSIP/trunk-02"), 5)
    assert book.state("L1") == "recording"


def _paused_at_30(pause_max_s: float = 120.0, mute_all: bool | None = True) -> CallBook:
    book = new_book(mute_all=mute_all, pause_max_s=pause_max_s)
    _recording_call(book)
    book.handle(E.RecordingMuted(30, "L1", "A", AGENT, True), 30)
    assert book.state("L1") == "paused"
    return book


def _rec(book: CallBook) -> dict:
    return book.snapshot("L1")["recordings"][0]


def _unmute(book: CallBook) -> MuteRecording:
    """The unmute the core sends: the channel, and the recording's file (ESL unmasks it by path)."""
    return MuteRecording(CALL, AGENT, False, paths=(_rec(book)["path"],))


def test_a_pause_over_the_limit_is_ended_by_the_recorder_and_the_recording_says_so() -> None:
    book = _paused_at_30(120)
    assert book.tick(149.9) == []  # 119.9 s: still the agent's
    assert book.tick(150) == [_unmute(book)]
    assert _rec(book)["state"] == "paused" and "pause_auto_resumed" not in _rec(book)["flags"]  # not yet
    book.handle(E.RecordingMuted(150.3, "L1", "A", AGENT, False), 150.3)
    assert book.state("L1") == "recording" and _rec(book)["pauses"] == [[30, 150.3]]
    assert "pause_auto_resumed" in _rec(book)["flags"]  # once the PBX carried it out
    assert book.tick(400) == []  # nothing open any more
    book.handle(E.ChannelHungUp(500, "L1", "C", "PJSIP/trunk-02"), 500)
    book.handle(E.ChannelHungUp(500, "L1", "A", AGENT), 500)
    final = [c for c in book.tick(520) if isinstance(c, FinalizeRecording)]
    assert final and final[0].metadata["pauses"] == [[30, 150.3]]
    assert "pause_auto_resumed" in final[0].metadata["flags"]  # in the signed manifest


def test_the_unmute_is_sent_again_while_the_pbx_has_not_carried_it_out_and_a_refusal_is_flagged() -> None:
    book = _paused_at_30(120)
    assert book.tick(150) == [_unmute(book)]
    assert book.tick(155) == []  # not every tick: every AUTO_RESUME_RETRY_S
    book.handle(E.RecordingMuteFailed(155.5, "L1", "A", AGENT, False), 155.5)
    assert _rec(book)["state"] == "paused" and "pause_auto_resume_failed" in _rec(book)["flags"]
    assert "pause_auto_resumed" not in _rec(book)["flags"]  # the file is still silent: never claimed
    assert book.tick(160) == [_unmute(book)]


def test_the_limit_is_for_all_of_a_calls_pauses_together() -> None:
    """Resuming and pausing again does not start the time afresh: an agent who pauses again and
    again gets pause_max_s for the call, then each new pause is ended at the next tick."""
    book = _paused_at_30(120)
    book.handle(E.RecordingMuted(100, "L1", "A", AGENT, False), 100)  # 70 s spent
    book.handle(E.RecordingMuted(200, "L1", "A", AGENT, True), 200)
    assert book.tick(249) == []  # 70 + 49
    assert book.tick(250) == [_unmute(book)]  # 70 + 50
    book.handle(E.RecordingMuted(250.2, "L1", "A", AGENT, False), 250.2)
    book.handle(E.RecordingMuted(300, "L1", "A", AGENT, True), 300)
    assert book.tick(301) == [_unmute(book)]  # the time is spent: ended at once
    assert _rec(book)["pauses"] == [[30, 100], [200, 250.2], [300, None]]


def test_the_time_is_the_recorders_own_clock_not_the_pbxs() -> None:
    """A PBX host whose clock is 60 s behind must not make a pause end early (card data)."""
    book = new_book(pause_max_s=120)
    _recording_call(book)
    book.handle(E.RecordingMuted(-30, "L1", "A", AGENT, True), 30)  # stamped by the PBX's clock
    assert book.tick(149) == []
    assert book.tick(150) == [_unmute(book)]


def test_no_limit_when_it_is_zero() -> None:
    book = _paused_at_30(0)
    assert book.tick(30 + 3 * 3600) == []  # (a call silent for 4 h is ended as stale)
    assert book.state("L1") == "paused"


def test_a_restarted_recorder_still_ends_a_pause_it_restored() -> None:
    book = _paused_at_30(120)
    again = new_book(pause_max_s=120)
    again.restore(book.snapshot("L1"))
    again.mute_all = True
    assert again.tick(151) == [_unmute(again)]


def test_on_an_asterisk_that_unmutes_only_the_first_mixmonitor_a_doubtful_channel_is_left_alone(
        caplog: pytest.LogCaptureFixture) -> None:
    """The unmute could reach a MixMonitor of the PBX's own, in its own pause: not sent, ALERTed
    once a pause (not every retry); the pause needs ``calls resume`` or the operator."""
    book = _paused_at_30(120, mute_all=True)
    book.mute_all = False  # (the pause was made where it was sure; now a foreign one runs first)
    book.find(CALL).mixmonitors[AGENT] = ["", _rec(book)["recording_id"]]

    def alerts() -> int:
        return sum("ALERT" in r.getMessage() and "pause_max_s" in r.getMessage() for r in caplog.records)

    assert book.tick(150) == [] and book.tick(170) == []
    assert alerts() == 1 and "pbx_own" in caplog.text.lower()
    assert "pause_auto_resumed" not in _rec(book)["flags"]
    book.handle(E.RecordingMuted(180, "L1", "A", AGENT, False), 180)  # calls resume
    book.mute_all = True  # (a pause made where it was sure again)
    book.handle(E.RecordingMuted(200, "L1", "A", AGENT, True), 200)
    book.mute_all = False
    assert book.tick(201) == [] and alerts() == 2  # the new pause is ALERTed too (the time is spent)


def test_freeswitch_unmasks_the_recordings_files_without_the_mixmonitor_question() -> None:
    """A mask names the recording's file (exact): no MixMonitor order to doubt; the unmute names
    the file, so an ESL client restarted since (its table of files empty) can still unmask it."""
    book = new_book(mute_all=None, exact_mutes=True, pause_max_s=60)
    _recording_call(book)
    book.handle(E.RecordingMuted(30, "L1", "A", AGENT, True, exact=True), 30)
    (unmute,) = book.tick(90)
    assert unmute == _unmute(book) and unmute.paths and unmute.paths[0].endswith(".wav")


@pytest.mark.parametrize(("value", "ok"), [(0, True), (10, True), (300, True), (5, False), (-1, False),
                                           (86_401, False)])
def test_the_limit_is_checked_at_start_up(tmp_path, value: float, ok: bool) -> None:
    from pbx_recorder.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text(f"node: n1\npbx: {{pause_max_s: {value}}}\nspool: {{dir: {tmp_path}/spool}}\n"
                    f"catalog: {{path: {tmp_path}/c.db}}\n")
    if ok:
        assert load_config(path).pbx.pause_max_s == value
    else:
        with pytest.raises(ConfigError, match="pause_max_s"):
            load_config(path)
