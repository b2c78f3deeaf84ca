"""Issue 10: a digit pressed before the question started is not consent; each digit's time
relative to the prompt is in the evidence.  (How the Asterisk session learns where in the question
a digit came, from ``STREAM FILE``'s ``endpos``: tests/peers/test_agi_async.py.)"""

from __future__ import annotations

from consent.dialogue_runner import DigitAnswer, run_dialogue
from pbx_recorder.core.consent_policy import AskDigit, ConsentDialog, Decision, Done, PlayRetry


def _dialog() -> ConsentDialog:
    return ConsentDialog("explicit", "consent-question", "cq-1", "en", 5.0, 2, "1", "2", now=0.0)


def test_digit_at_the_very_start_of_the_question_does_not_count():
    dialog = _dialog()
    assert isinstance(dialog.next_step(0.0), AskDigit)
    step = dialog.on_digit("1", 0.3, prompt_offset_s=0.02)
    assert isinstance(step, AskDigit) and step.attempt == 1  # asked again, same attempt
    assert dialog.evidence.digit_log[0]["counted"] is False
    assert dialog.evidence.digit_log[0]["why"] == "before_question"
    assert dialog.evidence.digit_log[0]["prompt_offset_s"] == 0.02
    done = dialog.on_digit("1", 6.0, prompt_offset_s=2.4)  # barge-in during the question: fine
    assert isinstance(done, Done) and done.outcome == Decision.GRANTED
    assert [e["counted"] for e in dialog.evidence.digit_log] == [False, True]


def test_answer_after_the_question_records_its_delay():
    dialog = _dialog()
    dialog.next_step(0.0)
    done = dialog.on_digit("2", 9.0, after_prompt_s=1.25)
    assert isinstance(done, Done) and done.outcome == Decision.REFUSED
    assert dialog.evidence.digit_log == [{"digit": "2", "attempt": 1, "at": 9.0, "counted": True,
                                          "why": "answer", "after_prompt_s": 1.25}]


def test_held_or_hammered_keys_before_the_question_end_as_invalid_not_consent():
    dialog = _dialog()
    dialog.next_step(0.0)
    steps = [dialog.on_digit("1", 0.1 * n, prompt_offset_s=0.0) for n in range(6)]
    assert all(isinstance(s, AskDigit) for s in steps[:5])
    assert isinstance(steps[5], PlayRetry) and steps[5].reason == "invalid"
    assert isinstance(dialog.next_step(1.0), AskDigit)
    done = dialog.on_digit("1", 1.1, prompt_offset_s=0.0)  # still before the question: not consent
    assert isinstance(done, Done) and done.outcome == Decision.INVALID
    assert not any(e["counted"] for e in dialog.evidence.digit_log)


async def test_runner_ignores_a_queued_digit_and_asks_again():
    answers = iter([DigitAnswer("1", prompt_offset_s=0.0), DigitAnswer("", after_prompt_s=5.0),
                    DigitAnswer("", after_prompt_s=5.0)])
    asked: list[str] = []

    class Channel:
        async def play(self, path: str) -> None:
            asked.append("play " + path)

        async def ask(self, path: str, timeout_ms: int) -> DigitAnswer:
            asked.append("ask " + path)
            return next(answers)

    clock = iter(float(n) for n in range(100))
    done = await run_dialogue(_dialog(), Channel(), lambda pid: f"/p/{pid}", lambda: next(clock))
    assert done.outcome == Decision.TIMEOUT  # the early '1' never became consent
    assert asked[:2] == ["ask /p/consent-question", "ask /p/consent-question"]
    assert done.evidence.digits == ["1"] and done.evidence.digit_log[0]["counted"] is False


async def test_runner_hands_on_when_the_digit_came_after_the_question():
    class Channel:
        async def play(self, path: str) -> None:
            raise AssertionError("nothing to play before a '2'")

        async def ask(self, path: str, timeout_ms: int) -> DigitAnswer:
            return DigitAnswer("2", after_prompt_s=1.25)

    done = await run_dialogue(_dialog(), Channel(), lambda pid: f"/p/{pid}", lambda: 9.0)
    assert done.outcome == Decision.REFUSED
    assert done.evidence.digit_log[0]["after_prompt_s"] == 1.25
