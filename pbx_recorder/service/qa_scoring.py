"""QA scorecards and the score of a review (pure: no I/O, no clock).

A scorecard is a name and a list of criteria, each::

    {"key": "greeting", "label": "Greets the caller", "kind": "yesno", "weight": 2}
    {"key": "empathy",  "label": "Empathy",           "kind": "scale", "max": 5, "weight": 1}

A review answers every criterion: ``true``/``false`` for a yes/no item, an integer 1..max for a
scale item.  Its score is the weighted mean of the answers, each taken as a fraction (yes = 1,
no = 0, scale ``v`` = (v - 1) / (max - 1)), times 100, rounded to two decimals: always 0..100
and computed here, never taken from the client.  Every refusal is a :class:`ScorecardRefused`
whose message starts with the field it is about (``criteria[2].weight: ...``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_NAME = 80
MAX_LABEL = 120
MAX_CRITERIA = 40
MIN_SCALE, MAX_SCALE = 2, 10
MAX_WEIGHT = 100.0
KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
KINDS = ("yesno", "scale")
_FIELDS = frozenset({"key", "label", "kind", "max", "weight"})


class ScorecardRefused(ValueError):
    """A scorecard or an answer set that cannot be stored (the message names the field)."""


@dataclass(frozen=True, slots=True)
class Criterion:
    key: str
    label: str
    kind: str  # yesno | scale
    max: int  # 1 for yes/no
    weight: float

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "kind": self.kind, "max": self.max,
                "weight": self.weight}


def _text(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScorecardRefused(f"{where}: required (text)")
    if len(value) > limit:
        raise ScorecardRefused(f"{where}: at most {limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ScorecardRefused(f"{where}: no control characters")
    return value.strip()


def check_name(value: Any) -> str:
    return _text(value, "name", MAX_NAME)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _criterion(item: Any, i: int) -> Criterion:
    where = f"criteria[{i}]"
    if not isinstance(item, Mapping):
        raise ScorecardRefused(f"{where}: an object {{key, label, kind, max, weight}}")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise ScorecardRefused(f"{where}.{unknown[0]}: unknown field")
    key = item.get("key")
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise ScorecardRefused(f"{where}.key: lower-case letters, digits and _ (1-32, a letter first)")
    label = _text(item.get("label"), f"{where}.label", MAX_LABEL)
    kind = item.get("kind")
    if kind not in KINDS:
        raise ScorecardRefused(f"{where}.kind: one of {', '.join(KINDS)}")
    top = item.get("max", 1 if kind == "yesno" else None)
    if kind == "yesno" and top != 1:
        raise ScorecardRefused(f"{where}.max: a yes/no item has no max (or 1)")
    if kind == "scale" and (not isinstance(top, int) or isinstance(top, bool)
                            or not MIN_SCALE <= top <= MAX_SCALE):
        raise ScorecardRefused(f"{where}.max: a whole number {MIN_SCALE}..{MAX_SCALE}")
    weight = item.get("weight", 1)
    if not _number(weight) or not 0 < float(weight) <= MAX_WEIGHT:
        raise ScorecardRefused(f"{where}.weight: a number > 0 and <= {MAX_WEIGHT:g}")
    return Criterion(key, label, str(kind), int(top), float(weight))


def check_criteria(items: Any) -> tuple[Criterion, ...]:
    """The criteria of a new scorecard, validated; ScorecardRefused naming the field otherwise."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes) or not items:
        raise ScorecardRefused("criteria: a non-empty list")
    if len(items) > MAX_CRITERIA:
        raise ScorecardRefused(f"criteria: at most {MAX_CRITERIA}")
    out = tuple(_criterion(item, i) for i, item in enumerate(items))
    seen: set[str] = set()
    for i, c in enumerate(out):
        if c.key in seen:
            raise ScorecardRefused(f"criteria[{i}].key: {c.key!r} is used twice")
        seen.add(c.key)
    return out


def criteria_of(stored: Any) -> tuple[Criterion, ...]:
    """Criteria as stored (JSON already decoded): the same checks, so a damaged row refuses."""
    return check_criteria(stored)


def check_answers(criteria: Sequence[Criterion], answers: Any) -> dict[str, bool | int]:
    """Every criterion answered with a value of its kind, nothing else."""
    if not isinstance(answers, Mapping):
        raise ScorecardRefused("answers: an object {criterion key: answer}")
    keys = {c.key for c in criteria}
    extra = sorted(k for k in answers if k not in keys)
    if extra:
        raise ScorecardRefused(f"answers.{str(extra[0])[:40]}: not a criterion of this scorecard")
    out: dict[str, bool | int] = {}
    for c in criteria:
        value = answers.get(c.key)
        if value is None:
            raise ScorecardRefused(f"answers.{c.key}: required")
        if c.kind == "yesno":
            if not isinstance(value, bool):
                raise ScorecardRefused(f"answers.{c.key}: true or false")
            out[c.key] = value
        else:
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= c.max:
                raise ScorecardRefused(f"answers.{c.key}: a whole number 1..{c.max}")
            out[c.key] = value
    return out


def score(criteria: Sequence[Criterion], answers: Mapping[str, bool | int]) -> float:
    """The weighted score 0..100 of ``answers`` (checked by :func:`check_answers`)."""
    total = sum(c.weight for c in criteria)
    got = 0.0
    for c in criteria:
        value = answers[c.key]
        fraction = (1.0 if value else 0.0) if c.kind == "yesno" else (int(value) - 1) / (c.max - 1)
        got += c.weight * fraction
    return round(100.0 * got / total, 2) if total > 0 else 0.0
