"""The consent dialogue as a pure state machine (no audio, no sockets; time is passed in).

The runner (consent/dialogue_runner.py) loops::

    step = dialog.next_step(now)
    PlayNotice / PlayRetry  -> play it, then call next_step() again
    AskDigit                -> play the prompt, wait up to step.timeout_s for one digit,
                               then report on_digit(d, now) or on_timeout(now)
    Done                    -> stop; step.evidence goes into ConsentResolved
    a hang-up at any point  -> on_hangup(now)

Fail closed: only the "yes" digit grants consent.  A digit that arrives within
``min_answer_s`` of the start of the question was pressed before the caller could have heard
it (DTMF queued before the prompt began): it is logged in the evidence and does not count; the
question is asked again.  Barge-in later during the question counts.  Each digit's time
relative to the prompt (``prompt_offset_s`` from its start, or ``after_prompt_s`` after its end)
is kept in ``ConsentEvidence.digit_log``.  A timeout or invalid digit after the
last attempt, or a hang-up before the answer, is NOT consent.

Policies: ``none`` -> Done(not_required) at once; ``notify`` -> PlayNotice then
Done(notified); ``explicit`` -> AskDigit (with PlayRetry between attempts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Decision(StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    INVALID = "invalid"
    HANGUP = "hangup"
    NOTIFIED = "notified"
    NOT_REQUIRED = "not_required"


#: decisions under which the call may be recorded; everything else is a refusal
RECORDABLE = frozenset({Decision.GRANTED, Decision.NOTIFIED, Decision.NOT_REQUIRED})
POLICIES = ("none", "notify", "explicit")
#: a digit this soon after the question starts was pressed before it (queued DTMF): ignored
EARLY_DIGIT_S = 0.5
MAX_EARLY_DIGITS = 5


def allows_recording(decision: str) -> bool:
    """True only for granted / notified / not_required; unknown strings are refusals."""
    return decision in {d.value for d in RECORDABLE}


@dataclass(frozen=True, slots=True)
class PlayNotice:
    prompt: str


@dataclass(frozen=True, slots=True)
class AskDigit:
    prompt: str
    timeout_s: float
    attempt: int  # 1-based


@dataclass(frozen=True, slots=True)
class PlayRetry:
    prompt: str
    reason: str  # "timeout" | "invalid"


@dataclass(frozen=True, slots=True)
class Done:
    outcome: Decision
    evidence: ConsentEvidence


Step = PlayNotice | AskDigit | PlayRetry | Done


@dataclass(slots=True)
class ConsentEvidence:
    policy: str
    prompt_id: str
    prompt_version: str
    language: str
    notified_at: float | None = None
    asked_at: float | None = None
    answered_at: float | None = None
    digits: list[str] = field(default_factory=list)  # every digit pressed, all attempts
    # per digit: {"digit", "attempt", "at", "prompt_offset_s" | "after_prompt_s", "counted", "why"}
    digit_log: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    decision: str = ""
    decided_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConsentDialog:
    def __init__(self, policy: str, prompt_id: str, prompt_version: str, language: str, timeout_s: float,
                 max_attempts: int, digit_yes: str, digit_no: str, now: float,
                 retry_prompt_id: str = "", min_answer_s: float = EARLY_DIGIT_S,
                 max_early_digits: int = MAX_EARLY_DIGITS) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown consent policy {policy!r}")
        if max_attempts < 1 or timeout_s <= 0:
            raise ValueError("max_attempts must be >= 1 and timeout_s > 0")
        if len(digit_yes) != 1 or len(digit_no) != 1 or digit_yes == digit_no:
            raise ValueError("digit_yes and digit_no must be two different single digits")
        self.policy = policy
        self.prompt_id = prompt_id
        self.retry_prompt_id = retry_prompt_id or f"{prompt_id}-retry"
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.digit_yes = digit_yes
        self.digit_no = digit_no
        self.min_answer_s = min_answer_s
        self.max_early_digits = max_early_digits
        self._early = 0
        self._now = now
        self._state = "start"  # start | noticing | asking | retry | done
        self._retry_reason = ""
        self.evidence = ConsentEvidence(policy=policy, prompt_id=prompt_id, prompt_version=prompt_version,
                                        language=language)

    @property
    def done(self) -> bool:
        return self._state == "done"

    def _finish(self, outcome: Decision, now: float) -> Done:
        if self._state != "done":
            self._state = "done"
            self.evidence.decision = outcome.value
            self.evidence.decided_at = now
        return Done(Decision(self.evidence.decision), self.evidence)

    def _ask(self, now: float) -> AskDigit:
        self._state = "asking"
        self.evidence.attempts += 1
        if self.evidence.asked_at is None:
            self.evidence.asked_at = now
        return AskDigit(self.prompt_id, self.timeout_s, self.evidence.attempts)

    def next_step(self, now: float | None = None) -> Step:
        """The next thing to do.  After a Play* step, calling this again means "it was played"."""
        now = self._now if now is None else now
        self._now = now
        if self._state == "done":
            return Done(Decision(self.evidence.decision), self.evidence)
        if self.policy == "none":
            return self._finish(Decision.NOT_REQUIRED, now)
        if self.policy == "notify":
            if self._state == "start":
                self._state = "noticing"
                self.evidence.notified_at = now
                return PlayNotice(self.prompt_id)
            return self._finish(Decision.NOTIFIED, now)
        if self._state in ("start", "retry"):
            return self._ask(now)
        if self._state == "asking":  # asked again without an answer: repeat the same ask
            return AskDigit(self.prompt_id, self.timeout_s, self.evidence.attempts)
        raise AssertionError(f"unreachable consent state {self._state}")

    def _failed_attempt(self, reason: Decision, now: float) -> Step:
        if self.evidence.attempts >= self.max_attempts:
            return self._finish(reason, now)
        self._state = "retry"
        self._retry_reason = reason.value
        return PlayRetry(self.retry_prompt_id, reason.value)

    def _log_digit(self, digit: str, now: float, prompt_offset_s: float | None,
                    after_prompt_s: float | None, counted: bool, why: str) -> None:
        entry: dict[str, Any] = {"digit": digit, "attempt": self.evidence.attempts, "at": now,
                                 "counted": counted, "why": why}
        if prompt_offset_s is not None:
            entry["prompt_offset_s"] = round(prompt_offset_s, 3)
        if after_prompt_s is not None:
            entry["after_prompt_s"] = round(after_prompt_s, 3)
        if len(self.evidence.digit_log) < 64:
            self.evidence.digit_log.append(entry)

    def on_digit(self, digit: str, now: float, *, prompt_offset_s: float | None = None,
                 after_prompt_s: float | None = None) -> Step:
        """A digit: ``prompt_offset_s`` when it stopped the question that many seconds after the
        question started; ``after_prompt_s`` when it came that long after the question ended."""
        self._now = now
        digit = str(digit)[:8]
        if self._state != "asking":
            if self._state != "done":
                self.evidence.digits.append(digit)  # pressed outside a question: kept, ignored
                self._log_digit(digit, now, prompt_offset_s, after_prompt_s, False, "outside_question")
            return self._current()
        self.evidence.digits.append(digit)
        if prompt_offset_s is not None and prompt_offset_s < self.min_answer_s:
            self._early += 1
            self._log_digit(digit, now, prompt_offset_s, after_prompt_s, False, "before_question")
            if self._early > self.max_early_digits:  # keys held or hammered: not an answer
                return self._failed_attempt(Decision.INVALID, now)
            return AskDigit(self.prompt_id, self.timeout_s, self.evidence.attempts)  # ask again
        self._log_digit(digit, now, prompt_offset_s, after_prompt_s, True, "answer")
        if digit == self.digit_yes:
            self.evidence.answered_at = now
            return self._finish(Decision.GRANTED, now)
        if digit == self.digit_no:
            self.evidence.answered_at = now
            return self._finish(Decision.REFUSED, now)
        return self._failed_attempt(Decision.INVALID, now)

    def on_timeout(self, now: float) -> Step:
        self._now = now
        if self._state != "asking":
            return self._current()
        return self._failed_attempt(Decision.TIMEOUT, now)

    def on_hangup(self, now: float) -> Step:
        """A hang-up before the dialogue ended: never consent."""
        self._now = now
        if self._state == "done":
            return self._current()
        if self.policy == "none":
            return self._finish(Decision.NOT_REQUIRED, now)
        return self._finish(Decision.HANGUP, now)

    def _current(self) -> Step:
        if self._state == "done":
            return Done(Decision(self.evidence.decision), self.evidence)
        if self._state == "noticing":
            return PlayNotice(self.prompt_id)
        if self._state == "retry":
            return PlayRetry(self.retry_prompt_id, self._retry_reason)
        if self._state == "start":
            return self.next_step(self._now)
        return AskDigit(self.prompt_id, self.timeout_s, self.evidence.attempts)
