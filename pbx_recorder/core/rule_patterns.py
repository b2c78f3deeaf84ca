"""Grammar of the match values in rules: number patterns and time windows.

One source of truth: ``config`` validates with these functions at load time and
``rules`` uses the same functions to match, so what check-config accepts is exactly
what the matcher understands.

Number patterns (``dialed``, ``caller``, ``queue``, ``agent``):

- ``_``-prefixed Asterisk patterns: ``X`` = 0-9, ``Z`` = 1-9, ``N`` = 2-9, ``[1-5]`` /
  ``[137]`` = a character class, ``.`` = one or more of anything, ``!`` = zero or more
  (``.`` and ``!`` only at the end); other characters stand for themselves.
- ``re:<regex>``: a Python regular expression, *searched* in the value
  (anchor it yourself with ``^`` / ``$``).
- anything else: the exact string.

``compile_pattern`` returns a regex to be used with ``.fullmatch(value)`` in every case.

Time windows: ``"Mon-Fri 09:00-18:00"``, ``"Sat,Sun 10:00-14:00"``, ``"22:00-06:00"``
(no days = every day; an end before the start runs past midnight; ``24:00`` is allowed
as an end).  ``parse_time_window`` returns a ``TimeWindow``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_ASTERISK_CLASSES = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]"}
_TIME_RE = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


class PatternError(ValueError):
    """A pattern or window that cannot be understood (message says why)."""


def _asterisk_to_regex(body: str) -> str:
    out: list[str] = []
    i = 0
    if not body:
        raise PatternError("empty Asterisk pattern after '_'")
    while i < len(body):
        ch = body[i]
        upper = ch.upper()
        if upper in _ASTERISK_CLASSES:
            out.append(_ASTERISK_CLASSES[upper])
        elif ch in ".!":
            if i != len(body) - 1:
                raise PatternError(f"'{ch}' may only end an Asterisk pattern (at position {i + 1})")
            out.append(".+" if ch == "." else ".*")
        elif ch == "[":
            end = body.find("]", i + 1)
            if end < 0:
                raise PatternError(f"unclosed '[' at position {i + 1}")
            content = body[i + 1 : end]
            if not content:
                raise PatternError(f"empty character class '[]' at position {i + 1}")
            out.append(_char_class(content))
            i = end
        elif ch == "]":
            raise PatternError(f"']' without '[' at position {i + 1}")
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _char_class(content: str) -> str:
    parts: list[str] = []
    j = 0
    while j < len(content):
        if j + 2 < len(content) and content[j + 1] == "-":
            lo, hi = content[j], content[j + 2]
            if lo > hi:
                raise PatternError(f"bad range '{lo}-{hi}' in character class")
            parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
            j += 3
        else:
            if content[j] == "-":
                raise PatternError(f"dangling '-' in character class '[{content}]'")
            parts.append(re.escape(content[j]))
            j += 1
    return "[" + "".join(parts) + "]"


def compile_pattern(text: str) -> re.Pattern[str]:
    """Compile a rule pattern; use the result with ``.fullmatch(value)``.

    Raises ``PatternError`` with a message saying what is wrong.
    """
    if not isinstance(text, str) or not text:
        raise PatternError("a pattern must be a non-empty string")
    if text.startswith("re:"):
        expr = text[3:]
        if not expr:
            raise PatternError("empty regular expression after 're:'")
        try:
            re.compile(expr)
        except re.error as exc:
            raise PatternError(f"bad regular expression: {exc}") from exc
        # search semantics expressed as a full match; ^ and $ still anchor at the ends
        return re.compile(f"(?s:.*?)(?:{expr})(?s:.*)")
    if text.startswith("_"):
        return re.compile(_asterisk_to_regex(text[1:]), re.IGNORECASE)
    if text != text.strip():
        raise PatternError("exact match string has leading or trailing whitespace")
    return re.compile(re.escape(text))


@dataclass(frozen=True)
class TimeWindow:
    """Days (0 = Monday) and minutes since midnight; ``end_min < start_min`` wraps midnight."""

    days: frozenset[int]
    start_min: int
    end_min: int

    def contains(self, weekday: int, minute_of_day: int) -> bool:
        """Local weekday (0 = Monday) and minute; a wrapped window belongs to its start day."""
        if self.start_min < self.end_min:
            return weekday in self.days and self.start_min <= minute_of_day < self.end_min
        if minute_of_day >= self.start_min:
            return weekday in self.days
        return minute_of_day < self.end_min and (weekday - 1) % 7 in self.days


def _parse_day(name: str) -> int:
    key = name.strip().lower()[:3]
    if key not in DAYS or not name.strip().lower().startswith(key):
        raise PatternError(f"unknown day {name.strip()!r} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
    return DAYS.index(key)


def _parse_days(spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in spec.split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            a, b = _parse_day(first), _parse_day(last)
            d = a
            while True:
                days.add(d)
                if d == b:
                    break
                d = (d + 1) % 7
        else:
            days.add(_parse_day(part))
    return frozenset(days)


def _parse_time(text: str, *, is_end: bool) -> int:
    m = _TIME_RE.match(text)
    if not m:
        raise PatternError(f"bad time {text!r} (use HH:MM)")
    minutes = int(m.group(1)) * 60 + int(m.group(2))
    if minutes > 24 * 60 or (minutes == 24 * 60 and not is_end):
        raise PatternError(f"bad time {text!r} (24:00 is only allowed as an end)")
    return minutes


def parse_time_window(text: str) -> TimeWindow:
    """Parse ``"[Days ]HH:MM-HH:MM"``; raises ``PatternError``."""
    if not isinstance(text, str) or not text.strip():
        raise PatternError("a time window must be a non-empty string like 'Mon-Fri 09:00-18:00'")
    fields = text.split()
    if len(fields) == 1:
        days, times = frozenset(range(7)), fields[0]
    elif len(fields) == 2:
        days, times = _parse_days(fields[0]), fields[1]
    else:
        raise PatternError(f"bad time window {text!r} (use e.g. 'Mon-Fri 09:00-18:00')")
    start_text, sep, end_text = times.partition("-")
    if not sep:
        raise PatternError(f"bad time range {times!r} (use HH:MM-HH:MM)")
    start, end = _parse_time(start_text, is_end=False), _parse_time(end_text, is_end=True)
    if start == end:
        raise PatternError(f"empty time range {times!r}")
    return TimeWindow(days=days, start_min=start, end_min=end)
