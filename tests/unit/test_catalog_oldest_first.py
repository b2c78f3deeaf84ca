"""Oldest first (``CallFilters(order="oldest")``): the keyset pages visit every call once, in the
exact reverse of the newest-first order (untimed rows still last, by call id), and each page is
the same index range read backwards (no sort step, on SQLite's plans)."""

from __future__ import annotations

import dataclasses

import pytest

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.queries import Cursor, build_search
from pbx_recorder.errors import CatalogError
from tests.unit.catalog_plan_support import plan
from tests.unit.test_catalog_plans import FILTERS, _problems
from tests.unit.test_catalog_tags import NOW, fill


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    catalog = Catalog(tmp_path_factory.mktemp("oldest") / "cat.db", clock=lambda: NOW)
    fill(catalog, 250, seed=5)
    for i in range(3):
        catalog.upsert_recording({"recording_id": f"r-s{i}", "call_id": f"standin{i}"})
    return catalog


def _walk(catalog: Catalog, f: CallFilters) -> list[str]:
    seen: list[str] = []
    after = None
    for _ in range(1000):
        page = catalog.search_page(dataclasses.replace(f, after=after), now=NOW, count=False)
        seen += [r["call_id"] for r in page.rows]
        if page.next_cursor is None:
            return seen
        after = page.next_cursor
    raise AssertionError("pages never ended")


@pytest.mark.parametrize("f", [CallFilters(limit=7), CallFilters(preset="30d", limit=9),
                               CallFilters(tag="vip", limit=5), CallFilters(agent="a3", limit=4),
                               CallFilters(tag="sales", status="answered", limit=3)],
                         ids=["all", "30d", "tag", "agent", "tag+status"])
def test_oldest_first_is_the_exact_reverse_of_newest_first(filled: Catalog, f: CallFilters) -> None:
    newest = [r for r in filled.search(dataclasses.replace(f, limit=10000), now=NOW)]
    timed = [r["call_id"] for r in newest if r["started_at"] is not None]
    untimed = [r["call_id"] for r in newest if r["started_at"] is None]
    oldest = _walk(filled, dataclasses.replace(f, order="oldest"))
    assert oldest == timed[::-1] + untimed
    assert len(timed) > 2 * f.limit
    if f.limit == 7:
        assert untimed == ["standin", "standin0", "standin1", "standin2"]


def test_an_unknown_order_is_refused(filled: Catalog) -> None:
    with pytest.raises(CatalogError):
        filled.search_page(CallFilters(order="random"), now=NOW)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("deep", [False, True])
def test_oldest_first_is_an_index_range_read_backwards(name: str, deep: bool) -> None:
    catalog = Catalog(":memory:")
    try:
        f = dataclasses.replace(FILTERS[name], order="oldest")
        cursor = Cursor(NOW - 20 * 86400, "n1_123.0") if deep else None
        lines = plan(catalog._conn(), *build_search(f, NOW, cursor=cursor))
        assert lines and lines[0].startswith("SEARCH "), lines
        assert _problems(lines) == [], lines
    finally:
        catalog.close()
