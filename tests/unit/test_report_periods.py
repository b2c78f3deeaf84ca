"""Report periods: ISO weeks and months in the installation's zone, and which periods a schedule
produces (complete ones only, each once, from the one complete when it was saved)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pbx_recorder.reports import periods

SHANGHAI = ZoneInfo("Asia/Shanghai")


def ts(*args: int, tz=UTC) -> float:  # type: ignore[no-untyped-def]
    return datetime(*args, tzinfo=tz).timestamp()


def test_week_and_month_bounds_in_the_zone() -> None:
    week = periods.parse("week", "2026-W48", SHANGHAI)
    assert (week.start, week.end) == (ts(2026, 11, 23, tz=SHANGHAI), ts(2026, 11, 30, tz=SHANGHAI))
    december = periods.parse("month", "2026-12", UTC)
    assert (december.start, december.end) == (ts(2026, 12, 1), ts(2027, 1, 1))


@pytest.mark.parametrize("kind,key", [("week", "2026-W54"), ("week", "2026-48"), ("month", "2026-13"),
                                      ("month", "26-01"), ("day", "2026-01")])
def test_malformed_periods_are_refused(kind: str, key: str) -> None:
    with pytest.raises(ValueError):
        periods.parse(kind, key, UTC)


def test_kind_of() -> None:
    assert periods.kind_of("2026-W01") == "week" and periods.kind_of("2026-01") == "month"
    with pytest.raises(ValueError):
        periods.kind_of("2026-01-01")


def test_due_starts_with_the_period_complete_when_saved_and_produces_each_once() -> None:
    saved = ts(2026, 11, 25)  # a Wednesday in W48: W47 was the last complete week
    assert [p.key for p in periods.due("week", "", saved, ts(2026, 11, 26), UTC)] == ["2026-W47"]
    later = ts(2026, 12, 9)  # W48 and W49 complete since
    assert [p.key for p in periods.due("week", "2026-W47", saved, later, UTC)] == ["2026-W48", "2026-W49"]
    assert periods.due("week", "2026-W49", saved, later, UTC) == []


def test_month_due_across_the_year_end() -> None:
    saved = ts(2026, 11, 15)
    due = periods.due("month", "2026-10", saved, ts(2027, 1, 1, 0, 1), UTC)
    assert [p.key for p in due] == ["2026-11", "2026-12"]


def test_a_week_spanning_the_year_end() -> None:
    week = periods.containing("week", ts(2027, 1, 1), UTC)
    assert week.key == "2026-W53" and periods.following(week, UTC).key == "2027-W01"


@pytest.mark.parametrize("kind,key", [("week", "9999-W52"), ("month", "9999-12"), ("month", "0001-01"),
                                      ("week", "1969-W01")])
def test_years_out_of_range_are_refused_not_overflowing(kind: str, key: str) -> None:
    with pytest.raises(ValueError, match="the year must be"):
        periods.parse(kind, key, UTC)
