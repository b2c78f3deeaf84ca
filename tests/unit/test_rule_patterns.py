"""The pattern and time-window grammar shared by config validation and rules matching."""

from __future__ import annotations

import pytest

from pbx_recorder.core.rule_patterns import PatternError, TimeWindow, compile_pattern, parse_time_window


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("_X.", "1", False),
        ("_X.", "12", True),
        ("_NXX", "212", True),
        ("_NXX", "112", False),
        ("_Z!", "1", True),
        ("_+4930[1-5]X", "+49303", False),
        ("_+4930[1-5]X", "+493039", True),
        ("_+4930[1-5]X", "+493069", False),
        ("_[137]00", "700", True),
        ("700", "700", True),
        ("700", "7000", False),
        ("+49.30", "+49x30", False),  # exact strings are not regexes
        ("re:^\\+49", "+4930123", True),
        ("re:^\\+49", "0049", False),
        ("re:99$", "12399", True),
        ("re:5", "151", True),
    ],
)
def test_compile_pattern(pattern: str, value: str, expected: bool) -> None:
    assert bool(compile_pattern(pattern).fullmatch(value)) is expected


@pytest.mark.parametrize("bad", ["", "_", "_12[3", "_1]", "_X.5", "_[]", "_[9-1]", "re:", "re:(", " 700"])
def test_bad_patterns(bad: str) -> None:
    with pytest.raises(PatternError):
        compile_pattern(bad)


def test_time_windows() -> None:
    w = parse_time_window("Mon-Fri 09:00-18:00")
    assert w == TimeWindow(days=frozenset(range(5)), start_min=540, end_min=1080)
    assert w.contains(0, 540) and not w.contains(0, 1080) and not w.contains(5, 600)
    wrap = parse_time_window("Fri-Mon 22:00-06:00")
    assert wrap.days == frozenset({4, 5, 6, 0})
    assert wrap.contains(4, 23 * 60) and wrap.contains(1, 5 * 60)  # Tue 05:00 is Monday's night
    assert not wrap.contains(4, 5 * 60)  # Fri 05:00 belongs to Thursday's night
    assert parse_time_window("00:00-24:00").days == frozenset(range(7))
    assert parse_time_window("sat,sun 10:00-14:00").days == frozenset({5, 6})


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Mon-Fri",
        "Mon-Fry 09:00-18:00",
        "Mon 9-18",
        "Mon 24:00-25:00",
        "Mon 10:00-10:00",
        "Mon Tue 10:00-11:00",
    ],
)
def test_bad_time_windows(bad: str) -> None:
    with pytest.raises(PatternError):
        parse_time_window(bad)
