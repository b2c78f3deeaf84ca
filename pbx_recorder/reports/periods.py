"""Report periods (pure): an ISO week ``2026-W48`` or a calendar month ``2026-11``, their bounds in
the installation's time zone, and which complete periods are due for a schedule.

A period is *complete* once its end has passed; a schedule produces each complete period once,
starting with the last complete one at the time it was saved (never a backlog of old periods).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

KINDS = ("week", "month")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
MAX_DUE = 60  #: periods one run produces for one schedule at most (a schedule idle for years)
YEARS = range(1970, 9000)  #: years a period may fall in (no date arithmetic overflows near 9999)


@dataclass(frozen=True, slots=True)
class Period:
    kind: str  #: week | month
    key: str  #: 2026-W48 | 2026-11
    start: float  #: epoch seconds, inclusive
    end: float  #: epoch seconds, exclusive


def _midnight(day: date, tz: tzinfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def _first_day(kind: str, key: str) -> date:
    m = _WEEK.match(key) or _MONTH.match(key)
    if m and int(m[1]) not in YEARS:
        raise ValueError(f"period {key!r}: the year must be {YEARS.start}-{YEARS.stop - 1}")
    if kind == "week":
        m = _WEEK.match(key)
        if not m:
            raise ValueError(f"week {key!r}: use YYYY-Www (ISO week, e.g. 2026-W48)")
        try:
            return date.fromisocalendar(int(m[1]), int(m[2]), 1)
        except ValueError as exc:
            raise ValueError(f"week {key!r}: no such ISO week") from exc
    if kind == "month":
        m = _MONTH.match(key)
        if not m or not 1 <= int(m[2]) <= 12:
            raise ValueError(f"month {key!r}: use YYYY-MM (e.g. 2026-11)")
        return date(int(m[1]), int(m[2]), 1)
    raise ValueError(f"period {kind!r}: use one of {', '.join(KINDS)}")


def _next_first(kind: str, first: date) -> date:
    if kind == "week":
        return first + timedelta(days=7)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _key(kind: str, first: date) -> str:
    if kind == "week":
        year, week, _ = first.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return f"{first.year:04d}-{first.month:02d}"


def parse(kind: str, key: str, tz: tzinfo) -> Period:
    """The period ``key`` of ``kind``; ValueError naming the expected form otherwise."""
    first = _first_day(kind, key)
    return Period(kind, key, _midnight(first, tz), _midnight(_next_first(kind, first), tz))


def kind_of(key: str) -> str:
    """``week`` or ``month`` from the shape of ``key`` (ValueError for neither)."""
    if _WEEK.match(key):
        return "week"
    if _MONTH.match(key):
        return "month"
    raise ValueError(f"period {key!r}: use YYYY-Www (ISO week) or YYYY-MM (month)")


def containing(kind: str, now: float, tz: tzinfo) -> Period:
    """The period of ``kind`` that ``now`` falls in (not complete yet)."""
    today = datetime.fromtimestamp(now, tz).date()
    first = today - timedelta(days=today.weekday()) if kind == "week" else today.replace(day=1)
    return parse(kind, _key(kind, first), tz)


def previous(period: Period, tz: tzinfo) -> Period:
    first = datetime.fromtimestamp(period.start, tz).date()
    before = first - timedelta(days=1)
    start = before - timedelta(days=before.weekday()) if period.kind == "week" else before.replace(day=1)
    return parse(period.kind, _key(period.kind, start), tz)


def following(period: Period, tz: tzinfo) -> Period:
    first = datetime.fromtimestamp(period.start, tz).date()
    return parse(period.kind, _key(period.kind, _next_first(period.kind, first)), tz)


def last_complete(kind: str, now: float, tz: tzinfo) -> Period:
    return previous(containing(kind, now, tz), tz)


def due(kind: str, last_key: str, created_at: float, now: float, tz: tzinfo) -> list[Period]:
    """The complete periods after ``last_key`` (the last one produced; '' = none yet: then from
    the last period complete when the schedule was saved, at ``created_at``), oldest first."""
    newest = last_complete(kind, now, tz)
    if last_key:
        nxt = following(parse(kind, last_key, tz), tz)
    else:
        nxt = last_complete(kind, created_at, tz)
    out: list[Period] = []
    while nxt.start <= newest.start and len(out) < MAX_DUE:
        out.append(nxt)
        nxt = following(nxt, tz)
    return out


def recent(kind: str, now: float, tz: tzinfo, count: int) -> list[Period]:
    """The ``count`` periods up to and including the current one, newest first (the page's picker)."""
    out = [containing(kind, now, tz)]
    while len(out) < count:
        out.append(previous(out[-1], tz))
    return out
