"""The pure rendering pieces: SVG bars (labels escaped, no style attribute), the storage months
and the forecast (planner.plan reused: one class gives exactly what ``plan`` prints)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from pbx_recorder.core import planner
from pbx_recorder.reports import storage_view
from pbx_recorder.reports.svg import bar_chart


def test_bars_escape_labels_and_carry_no_style() -> None:
    svg = bar_chart("c", 'T <&> "q"', [("<script>alert(1)</script>", 3.0), ("b", 1.0)])
    root = ET.fromstring(svg)  # well-formed XML: nothing unescaped got through
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts[0] == 'T <&> "q"' and "<script>alert(1)</script>" in texts
    assert "<script" not in svg and "style=" not in svg
    widths = [float(r.get("width")) for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    assert widths[0] == pytest.approx(3 * widths[1], abs=0.2)  # drawn to 0.1


def test_an_empty_chart_is_still_well_formed() -> None:
    assert ET.fromstring(bar_chart("e", "empty", [])).get("id") == "e"


def test_storage_months_accumulate_per_tier() -> None:
    rows = [("2026-11", "hot", 2, 100), ("2026-12", "hot", 1, 50), ("2026-12", "cold", 1, 7)]
    tiers, stock = storage_view.months(["2026-10", "2026-11", "2026-12"], rows, [("cold", 1000)])
    assert tiers == ["cold", "hot"]
    assert [(s.month, s.all_added, dict(s.total)) for s in stock] == [
        ("2026-10", 0, {"cold": 1000}), ("2026-11", 100, {"cold": 1000, "hot": 100}),
        ("2026-12", 57, {"cold": 1007, "hot": 150})]


def test_class_shares_fold_unknown_classes_into_the_default() -> None:
    classes = {"standard": (180, 30), "finance": (1095, 90)}
    plans = storage_view.shares({"standard": 6, "": 2, "finance": 2}, classes, "standard")
    assert [(p.name, p.share) for p in plans] == [("finance", 0.2), ("standard", 0.8)]
    assert [p.share for p in storage_view.shares({}, classes, "standard")] == [0.5, 0.5]


def test_one_class_forecast_is_the_plan_commands() -> None:
    inputs = storage_view.ForecastInputs(100, 3, "opus", (storage_view.ClassPlan("standard", 180, 30, 1.0),))
    expected = planner.plan(100, 3, "opus", [planner.ClassShare("standard", 180, 1.0)], cold_after=30,
                            months=6)
    assert storage_view.forecast(inputs, 6) == expected


def test_classes_with_their_own_cold_after_add_up() -> None:
    a = storage_view.ClassPlan("a", 180, 30, 0.5)
    b = storage_view.ClassPlan("b", 0, None, 0.5)
    both = storage_view.forecast(storage_view.ForecastInputs(10, 2, "wav", (a, b)), 3)
    alone_a = storage_view.ForecastInputs(5, 2, "wav", (storage_view.ClassPlan("a", 180, 30, 1.0),))
    alone_b = storage_view.ForecastInputs(5, 2, "wav", (storage_view.ClassPlan("b", 0, None, 1.0),))
    only_a, only_b = storage_view.forecast(alone_a, 3), storage_view.forecast(alone_b, 3)
    summed = [x.total + y.total for x, y in zip(only_a, only_b, strict=True)]
    assert [r.total for r in both] == pytest.approx(summed)
    assert both[-1].cold == pytest.approx(only_a[-1].cold) and only_b[-1].cold == 0
