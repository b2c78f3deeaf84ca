from __future__ import annotations

import pytest

from pbx_recorder.cli import main
from pbx_recorder.core import planner


def test_bytes_per_hour_figures():
    assert planner.BYTES_PER_HOUR["wav"] == 57_600_000
    assert planner.BYTES_PER_HOUR["gsm"] == 5_940_000
    assert planner.BYTES_PER_HOUR["opus"] == pytest.approx(5.562e6)  # 12 kbit/s + Ogg overhead
    assert planner.BYTES_PER_HOUR["opus"] <= 8e6  # the archival target
    assert planner.BYTES_PER_HOUR["gsm"] < planner.BYTES_PER_HOUR["flac"] < planner.BYTES_PER_HOUR["wav"]


def test_parse_retention_shares():
    eq = planner.parse_retention("standard=180,finance=1095")
    assert [(c.name, c.days, c.share) for c in eq] == [("standard", 180, 0.5), ("finance", 1095, 0.5)]
    mixed = planner.parse_retention("standard=180:0.8,finance=1095")
    assert mixed[1].share == pytest.approx(0.2)
    for bad in ("standard", "a=x", "a=1:0.7,b=2:0.7", ""):
        with pytest.raises(ValueError):
            planner.parse_retention(bad)


def test_plan_hot_cold_and_steady_state():
    # 24 calls/day x 60 min = 24 recorded hours/day of wav = 1.3824 GB/day
    rows = planner.plan(24, 60, "wav", planner.parse_retention("standard=90"), cold_after=30, months=6)
    per_day = 24 * 57.6e6
    assert rows[0].hot == pytest.approx(30 * per_day)
    assert rows[0].cold == pytest.approx((planner.MONTH_DAYS - 30) * per_day)
    assert rows[5].hot == pytest.approx(30 * per_day) and rows[5].cold == pytest.approx(60 * per_day)
    assert rows[5].growth == pytest.approx(0)  # retention reached: deletions match new recordings
    assert all(r.total == pytest.approx(r.hot + r.cold) for r in rows)


def test_short_class_never_goes_cold_and_forever_keeps_growing():
    short = planner.plan(10, 6, "gsm", planner.parse_retention("short=10"), cold_after=30, months=2)
    assert short[1].cold == 0 and short[1].hot == pytest.approx(10 * 10 * 0.1 * 5.94e6)
    forever = planner.plan(10, 6, "gsm", planner.parse_retention("legal=0"), cold_after=30, months=24)
    assert forever[23].growth == pytest.approx(forever[22].growth) and forever[23].growth > 0


def test_plan_cli_prints_table(capsys):
    code = main(
        [
            "plan",
            "--calls-per-day",
            "1000",
            "--avg-minutes",
            "3",
            "--format",
            "flac",
            "--retention",
            "standard=180,finance=1095",
            "--months",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "37.3 MB per recorded hour" in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 3
