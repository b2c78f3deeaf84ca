"""Every non-number search filter is one index range in the result's order (no table scan, no sort).

Number filters (caller/callee) are planned by the blind-index work and are not covered here.
"""

from __future__ import annotations

import dataclasses

import pytest

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.queries import Cursor, build_count, build_search, encode_cursor
from tests.unit.catalog_plan_support import plan

# reads, alters or runs a process on the SQLite catalog file itself: not part of the PostgreSQL pass
pytestmark = pytest.mark.sqlite_only

NOW = 1_780_000_000.0
DAY = 86400.0
DEEP = encode_cursor(Cursor(NOW - 20 * DAY, "n1_123.0"))

FILTERS = {
    "today": CallFilters(preset="today"),
    "yesterday": CallFilters(preset="yesterday"),
    "7d": CallFilters(preset="7d"),
    "30d": CallFilters(preset="30d"),
    "range": CallFilters(start=NOW - 90 * DAY, end=NOW - 60 * DAY),
    "status": CallFilters(status="no_answer"),
    "status 30d": CallFilters(status="answered", preset="30d"),
    "consent": CallFilters(consent="refused"),
    "consent 7d": CallFilters(consent="refused", preset="7d"),
    "agent": CallFilters(agent="agent042"),
    "agent 30d": CallFilters(agent="agent042", preset="30d"),
    "queue 30d": CallFilters(queue="q07", preset="30d"),
    "30d queue answered consent": CallFilters(preset="30d", queue="q07", status="answered",
                                              consent="granted"),
    "tag": CallFilters(tag="complaint"),
    "tag 7d": CallFilters(tag="complaint", preset="7d"),
    "tag agent": CallFilters(tag="complaint", agent="agent042"),
    "call id": CallFilters(call_id="n1_1700000000.42"),
}


@pytest.fixture(scope="module")
def conn():  # type: ignore[no-untyped-def]
    catalog = Catalog(":memory:")
    yield catalog._conn()
    catalog.close()


def _problems(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.startswith("SCAN ") or "TEMP B-TREE" in ln]


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("page", ["first", "deep"])
def test_filter_is_an_index_range_in_result_order(conn, name: str, page: str) -> None:  # type: ignore[no-untyped-def]
    f = FILTERS[name]
    if page == "deep":
        f = dataclasses.replace(f, after=DEEP)
    lines = plan(conn, *build_search(f, NOW))
    assert lines and lines[0].startswith("SEARCH "), lines
    assert _problems(lines) == [], lines


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_count_reads_an_index_only(conn, name: str) -> None:  # type: ignore[no-untyped-def]
    # the outer COUNT over the capped subquery ("capped") is not a table scan
    lines = [ln for ln in plan(conn, *build_count(FILTERS[name], NOW))
             if "subquery" not in ln and "capped" not in ln]
    assert _problems(lines) == [], lines
    assert all(ln.startswith(("SEARCH ", "CORRELATED")) for ln in lines), lines


def test_a_deep_page_is_read_like_the_first_page(conn) -> None:  # type: ignore[no-untyped-def]
    for f in FILTERS.values():
        first = plan(conn, *build_search(f, NOW))[0].split(" (")[0]
        deep = plan(conn, *build_search(f, NOW, cursor=Cursor(NOW - 20 * DAY, "x")))[0].split(" (")[0]
        assert first == deep  # same index, entered further down


def test_no_filter_reads_the_time_index_in_order(conn) -> None:  # type: ignore[no-untyped-def]
    # the first page reads the timed rows (started_at IS NOT NULL: the untimed ones follow them)
    assert plan(conn, *build_search(CallFilters(), NOW)) == [
        "SEARCH calls USING INDEX calls_time (started_at>?)"]
    assert plan(conn, *build_search(CallFilters(), NOW, cursor=Cursor(NOW, "x")))[0].startswith(
        "SEARCH calls USING INDEX calls_time")


def test_the_combined_filter_walks_the_most_selective_index(conn) -> None:  # type: ignore[no-untyped-def]
    lines = plan(conn, *build_search(FILTERS["30d queue answered consent"], NOW))
    assert lines[0].startswith("SEARCH calls USING INDEX calls_queue_time (queue=? AND started_at>?"), lines
    lines = plan(conn, *build_search(CallFilters(agent="a", queue="q", status="answered"), NOW))
    # the agent's index carries status, consent and queue (schema 18): tested inside its range
    assert lines[0].startswith("SEARCH calls USING INDEX calls_agent_time (agent=?"), lines
