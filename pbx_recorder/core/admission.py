"""Admission control for consent dialogues on a starved PBX (issue 10).  Pure.

On an overloaded host Asterisk's channel threads fall behind: the question of an explicit
consent dialogue started up to 29 s after the answer, callers pressed their digit before being
asked (which rightly does not count) and hung up unasked.  A caller kept in silence that long is
served worse than one whose call goes on unrecorded at once, so a dialogue whose first prompt
would start more than ``pbx.agi.max_question_delay_s`` after the snippet called the consent AGI
is refused as ``capacity``: the snippet takes its fail direction and the catalog says so.

The start time ``t0`` comes from the dialplan (``t0=${STRFTIME(,,%s.%3q)}`` in the AGI
arguments, evaluated by Asterisk when it runs the ``AGI()`` line, i.e. after ``Answer()``); the
delay is measured on the recorder's clock just before the first prompt.  A missing, malformed or
implausible ``t0`` (from the future, or older than a day: clocks out of step) is not used: the
dialogue is admitted, as before this check existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_MAX_QUESTION_DELAY_S = 3.0
MAX_CLOCK_SKEW_S = 2.0  # PBX and recorder clocks (NTP) may differ by this much
MAX_PLAUSIBLE_DELAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    delay_s: float | None  # None: t0 unknown or implausible, not measured
    bound_s: float

    def evidence(self) -> dict[str, float | None]:
        return {"question_delay_s": None if self.delay_s is None else round(self.delay_s, 3),
                "max_question_delay_s": self.bound_s}


def parse_t0(raw: str) -> float | None:
    """The dialplan's ``t0`` (epoch seconds with a fraction); None when not a plain number."""
    text = raw.strip()
    if not text or len(text) > 32 or not all(c.isdigit() or c == "." for c in text) or text.count(".") > 1:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def admit_dialogue(t0: float | None, now: float, bound_s: float) -> Admission:
    """Admit the dialogue unless its first prompt would start more than ``bound_s`` after ``t0``."""
    if t0 is None:
        return Admission(True, None, bound_s)
    delay = now - t0
    if delay < -MAX_CLOCK_SKEW_S or delay > MAX_PLAUSIBLE_DELAY_S:
        return Admission(True, None, bound_s)
    delay = max(delay, 0.0)
    return Admission(delay <= bound_s, delay, bound_s)
