"""Calls without a start time (a recording's stand-in call row) come after every timed call and
are listed once, on either engine.

PostgreSQL sorts NULL first in ``ORDER BY started_at DESC``, SQLite last: before the first page
read the timed rows only, the stand-in led the first page on PostgreSQL and came again on the
last one (run in the PostgreSQL pass of ``scripts/test``; the catalog is opened in the test, so
the suite's engine switch applies to it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pbx_recorder.catalog import CallFilters, Catalog

NOW = 1_800_000_000.0


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "cat.db", clock=lambda: NOW)
    for i in range(3):
        cat.upsert_call({"call_id": f"c{i}", "started_at": NOW - 1000 + i, "status": "answered",
                         "tags": ["vip"]})
    cat.upsert_recording({"recording_id": "r-s", "call_id": "standin"})  # no call row yet: untimed
    cat.upsert_call({"call_id": "tagged-untimed", "tags": ["vip"]})
    return cat


def _walk(catalog: Catalog, f: CallFilters) -> list[str]:
    seen: list[str] = []
    after = None
    for _ in range(20):
        page = catalog.search_page(dataclasses.replace(f, after=after), now=NOW, count=False)
        seen += [r["call_id"] for r in page.rows]
        after = page.next_cursor
        if after is None:
            return seen
    raise AssertionError("pages never ended")


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
def test_untimed_calls_come_last_and_once(catalog: Catalog, limit: int) -> None:
    expected = ["c2", "c1", "c0", "standin", "tagged-untimed"]
    assert [r["call_id"] for r in catalog.search(CallFilters(limit=limit), now=NOW)] == expected[:limit]
    assert _walk(catalog, CallFilters(limit=limit)) == expected


@pytest.mark.parametrize("limit", [1, 2, 100])
def test_a_tag_search_lists_its_untimed_calls_last(catalog: Catalog, limit: int) -> None:
    assert _walk(catalog, CallFilters(tag="vip", limit=limit)) == ["c2", "c1", "c0", "tagged-untimed"]


def test_a_time_range_leaves_untimed_calls_out(catalog: Catalog) -> None:
    assert _walk(catalog, CallFilters(preset="7d", limit=2)) == ["c2", "c1", "c0"]
