import json

import pytest

from pbx_recorder.core.consent_policy import (
    AskDigit,
    ConsentDialog,
    Decision,
    Done,
    PlayNotice,
    PlayRetry,
    allows_recording,
)


def dialog(policy="explicit", attempts=2, now=100.0):
    return ConsentDialog(policy, "consent-en", "v3", "en", timeout_s=5, max_attempts=attempts,
                         digit_yes="1", digit_no="2", now=now)


def test_none_policy_not_required():
    d = dialog("none")
    step = d.next_step()
    assert isinstance(step, Done) and step.outcome is Decision.NOT_REQUIRED
    assert step.evidence.decided_at == 100.0


def test_notify_plays_notice_then_notified():
    d = dialog("notify")
    assert d.next_step(101) == PlayNotice("consent-en")
    step = d.next_step(104)
    assert isinstance(step, Done) and step.outcome is Decision.NOTIFIED
    ev = step.evidence.to_dict()
    assert ev["notified_at"] == 101 and ev["decided_at"] == 104 and ev["decision"] == "notified"


def test_notify_hangup_during_notice_is_hangup():
    d = dialog("notify")
    d.next_step(101)
    assert d.on_hangup(102).outcome is Decision.HANGUP


def test_explicit_yes():
    d = dialog()
    assert d.next_step(101) == AskDigit("consent-en", 5, 1)
    step = d.on_digit("1", 103)
    assert step.outcome is Decision.GRANTED
    ev = step.evidence
    assert (ev.asked_at, ev.answered_at, ev.digits, ev.attempts) == (101, 103, ["1"], 1)
    json.dumps(ev.to_dict())


def test_explicit_no():
    d = dialog()
    d.next_step(101)
    assert d.on_digit("2", 102).outcome is Decision.REFUSED


def test_invalid_then_yes_keeps_all_digits():
    d = dialog(attempts=3)
    d.next_step(101)
    assert d.on_digit("7", 102) == PlayRetry("consent-en-retry", "invalid")
    assert d.next_step(103) == AskDigit("consent-en", 5, 2)
    step = d.on_digit("1", 104)
    assert step.outcome is Decision.GRANTED and step.evidence.digits == ["7", "1"]
    assert step.evidence.attempts == 2 and step.evidence.asked_at == 101


def test_timeout_after_max_attempts_fails_closed():
    d = dialog(attempts=2)
    d.next_step(100)
    assert isinstance(d.on_timeout(105), PlayRetry)
    d.next_step(106)
    step = d.on_timeout(111)
    assert step.outcome is Decision.TIMEOUT and not allows_recording(step.outcome)
    assert step.evidence.attempts == 2 and step.evidence.answered_at is None


def test_invalid_after_max_attempts_fails_closed():
    d = dialog(attempts=1)
    d.next_step(100)
    step = d.on_digit("#", 101)
    assert step.outcome is Decision.INVALID and step.evidence.digits == ["#"]


def test_hangup_during_prompt_is_not_consent():
    d = dialog()
    d.next_step(100)
    step = d.on_hangup(102)
    assert step.outcome is Decision.HANGUP and not allows_recording("hangup")


def test_hangup_before_anything():
    assert dialog().on_hangup(100).outcome is Decision.HANGUP


def test_events_after_done_change_nothing():
    d = dialog()
    d.next_step(100)
    d.on_digit("2", 101)
    assert d.on_digit("1", 102).outcome is Decision.REFUSED
    assert d.on_hangup(103).outcome is Decision.REFUSED
    assert d.on_timeout(104).outcome is Decision.REFUSED
    assert d.evidence.decided_at == 101 and d.evidence.digits == ["2"]


def test_digit_during_retry_prompt_is_kept_but_not_an_answer():
    d = dialog(attempts=2)
    d.next_step(100)
    d.on_timeout(105)
    assert isinstance(d.on_digit("1", 105.5), PlayRetry)
    assert d.evidence.digits == ["1"] and not d.done


@pytest.mark.parametrize("decision", ["granted", "notified", "not_required"])
def test_allows_recording_only_for_consenting_outcomes(decision):
    assert allows_recording(decision)
    assert not allows_recording("")
    assert not allows_recording("GRANTED ")


@pytest.mark.parametrize("kwargs", [{"policy": "maybe"}, {"digit_yes": "2"}, {"max_attempts": 0},
                                    {"digit_no": "22"}])
def test_bad_parameters(kwargs):
    params = dict(policy="explicit", prompt_id="p", prompt_version="1", language="en", timeout_s=5,
                  max_attempts=2, digit_yes="1", digit_no="2", now=0.0)
    params.update(kwargs)
    with pytest.raises(ValueError):
        ConsentDialog(**params)
