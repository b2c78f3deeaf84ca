"""Issue 10, 500 calls on 2 cores: a refused or failed consent session always reaches the catalog
with its reason; a starved PBX refuses dialogues as ``capacity``; a caller who hangs up before the
question is catalogued as such (pbx_recorder/core/admission.py, call_consent_outcomes.py,
ami/unavailable_event.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from calls_transcript import new_book

from ami.normalize import Normalizer
from pbx_recorder.cli import main
from pbx_recorder.core import events as E
from pbx_recorder.core.admission import admit_dialogue, parse_t0

CH = "PJSIP/t-1"


def _answered_explicit_call(book, *, grace: bool) -> None:  # noqa: ANN001
    book.handle(E.ChannelCreated(at=0, call_id="L1", channel_id="L1", channel=CH, exten="800200"), 0)
    book.handle(E.ChannelAnswered(at=0.2, call_id="L1", channel_id="L1", channel=CH), 0.2)
    if grace:
        book.tick(5)  # the Gosub grace ran out before the dialplan's report arrived


@pytest.mark.parametrize("grace", [False, True])
def test_report_of_a_refusal_whose_environment_was_never_read_says_capacity(grace: bool) -> None:
    """The 15 explicit-consent calls of the 500-call run: refused, the core never told (the
    environment came after the refusal's read bound), catalogued ``no_record`` / ``no_consent_path``."""
    book = new_book()
    _answered_explicit_call(book, grace=grace)
    frame = {"event": "UserEvent", "userevent": "PbxrecUnavailable", "channel": CH, "uniqueid": "L1",
             "linkedid": "L1", "pbxrecwhy": "SUCCESS", "pbxrecreason": "capacity"}
    (event,) = Normalizer("pbx1").normalize(frame, 5.5)
    assert isinstance(event, E.ConsentUnavailable) and event.reason == "capacity"
    book.handle(event, 5.5)
    snap = book.snapshot("L1")
    assert snap["consent_decision"] == "capacity" and book.state("L1") == "not_recorded"
    assert "no_consent_path" not in snap["flags"] and "capacity" in snap["flags"]
    decision = snap["decision"] or {}
    assert decision.get("reason") != "no_consent_path" and not decision.get("record")


def test_recorder_unreachable_is_catalogued_unavailable() -> None:
    n = Normalizer("pbx1")
    base = {"event": "UserEvent", "userevent": "PbxrecUnavailable", "channel": CH, "uniqueid": "L1",
            "linkedid": "L1"}
    (event,) = n.normalize({**base, "pbxrecwhy": "FAILURE", "pbxrecreason": ""}, 1.0)
    assert event.reason == "unavailable"
    (event,) = n.normalize({**base, "pbxrecwhy": "SUCCESS", "pbxrecreason": "granted"}, 1.0)
    assert event.reason == "unavailable"  # nothing but our own refusal reasons is taken from it
    book = new_book()
    _answered_explicit_call(book, grace=True)
    book.handle(E.ConsentUnavailable(at=5.5, call_id="L1", channel_id="L1", channel=CH,
                                     reason="unavailable"), 5.5)
    assert book.snapshot("L1")["consent_decision"] == "unavailable"


def test_dialplan_report_never_overrides_a_known_consent_outcome() -> None:
    book = new_book()
    _answered_explicit_call(book, grace=False)
    book.handle(E.ConsentRequested(0.5, "L1", "L1", CH, "inbound", "800200"), 0.5)
    book.handle(E.ConsentResolved(at=3.0, call_id="L1", channel_id="L1", channel=CH, decision="failed",
                                  evidence={"decision": "failed"}), 3.0)
    book.handle(E.ConsentUnavailable(at=3.1, call_id="L1", channel_id="L1", channel=CH,
                                     reason="unavailable"), 3.1)
    assert book.snapshot("L1")["consent_decision"] == "failed"


def _pending_call(book) -> None:  # noqa: ANN001
    _answered_explicit_call(book, grace=False)
    book.handle(E.ConsentRequested(0.5, "L1", "L1", CH, "inbound", "800200"), 0.5)
    assert book.state("L1") == "consent_pending"


def test_hangup_before_the_question_says_so() -> None:
    book = new_book()
    book.handle(E.ConsentAsked(at=0.0, call_id="L0", channel_id="L0", channel=CH), 0.0)  # another call's
    _pending_call(book)
    book.handle(E.ChannelHungUp(at=4.0, call_id="L1", channel_id="L1", channel=CH), 4.0)
    snap = book.snapshot("L1")
    assert snap["consent_decision"] == "hangup" and "hangup_before_question" in snap["flags"]
    assert snap["consent_evidence"]["hangup_before_question"] is True


def test_no_question_start_reports_no_guess() -> None:
    """A PBX whose sessions do not report the first prompt (FreeSWITCH for now): plain hangup."""
    book = new_book()
    _pending_call(book)
    book.handle(E.ChannelHungUp(at=4.0, call_id="L1", channel_id="L1", channel=CH), 4.0)
    snap = book.snapshot("L1")
    assert snap["consent_decision"] == "hangup" and "hangup_before_question" not in snap["flags"]


def test_hangup_after_the_question_started_is_a_plain_hangup() -> None:
    book = new_book()
    _pending_call(book)
    book.handle(E.ConsentAsked(at=1.0, call_id="L1", channel_id="L1", channel=CH), 1.0)
    book.handle(E.ChannelHungUp(at=4.0, call_id="L1", channel_id="L1", channel=CH), 4.0)
    snap = book.snapshot("L1")
    assert snap["consent_decision"] == "hangup" and "hangup_before_question" not in snap["flags"]
    assert snap["consent_evidence"]["question_started_at"] == 1.0


def test_admission_bound() -> None:
    assert parse_t0("1764660000.125") == 1764660000.125
    for bad in ("", "abc", "1e9", "-5", "1.2.3", "nan", "9" * 40):
        assert parse_t0(bad) is None, bad
    assert admit_dialogue(100.0, 102.9, 3.0).admitted
    late = admit_dialogue(100.0, 112.5, 3.0)
    assert not late.admitted and late.delay_s == pytest.approx(12.5)
    assert late.evidence() == {"question_delay_s": 12.5, "max_question_delay_s": 3.0}
    assert admit_dialogue(None, 112.5, 3.0).admitted  # no t0 (an older snippet): as before
    assert admit_dialogue(200.0, 100.0, 3.0).admitted  # t0 from the future: clocks out of step, not used
    assert admit_dialogue(100.0, 100.0 + 2 * 86_400, 3.0).admitted


def test_check_config_names_the_admission_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pbx_recorder.config import load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text("node: edge7\n", encoding="utf-8")
    assert load_config(cfg).pbx.agi.max_question_delay_s == 3.0
    cfg.write_text("pbx:\n  agi:\n    max_question_delay_s: 0\n", encoding="utf-8")
    assert main(["check-config", "--config", str(cfg)]) == 2
    assert "pbx.agi.max_question_delay_s" in capsys.readouterr().err

