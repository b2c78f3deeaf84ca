"""Alembic revision 0016 on a real PostgreSQL catalog at the 0015 layout, with calls: the six
filter indexes made again carrying status, consent decision and queue; the combined searches give
the same calls as before, and a combined filter's count is tested inside the index range (its
conditions are index conditions, not a filter over table rows) (issue 11;
``tests/unit/test_catalog_revision_0016.py`` covers the same revision on SQLite)."""

from __future__ import annotations

from typing import Any

import pytest

from pbx_recorder.catalog import CallFilters, Catalog, engine, pg_schema
from pbx_recorder.catalog.queries import build_count
from pbx_recorder.catalog.schema_agent import AGENT_INDEX, AGENT_INDEX_COLUMNS, RETIRED
from pbx_recorder.catalog.schema_filters import FILTER_COLUMNS, filter_index_columns
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.real

NOW = 1_795_000_000.0
DAY = 86400.0
COMBINED = CallFilters(preset="30d", queue="sales", status="answered", consent="refused")


def _as_0015(catalog: Catalog) -> None:
    """Take a fresh catalog back to the 0015 layout: the filter indexes without carried columns."""
    conn = catalog._conn()
    for name, (lead, _carried) in FILTER_COLUMNS.items():
        conn.execute(f"DROP INDEX IF EXISTS {name}")  # (the agent-led ones: gone since 0018)
        conn.execute(f"CREATE INDEX {name} ON calls({', '.join(lead)}, started_at DESC, call_id)")
    conn.execute("UPDATE alembic_version SET version_num = '0015'")
    conn.commit()


def _columns(conn: object, name: str) -> list[str]:
    sql = ("SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
           "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
           "WHERE c.relname = ? AND c.relnamespace = current_schema()::regnamespace "
           "ORDER BY array_position(i.indkey, a.attnum)")
    return [r[0] for r in conn.execute(sql, (name,))]  # type: ignore[attr-defined]


def fill(catalog: Catalog) -> None:
    """240 calls over 60 days: every status, consent decision, queue and agent a0-a3."""
    consents = ("granted", "refused", "timeout", "not_required")
    for k in range(240):
        catalog.upsert_call({"call_id": f"c{k:03d}", "started_at": NOW - k * 0.25 * DAY,
                             "status": ("answered", "no_answer", "failed")[k % 3],
                             "consent_decision": consents[(k // 3) % 4],
                             "queue": ("sales", "support")[(k // 12) % 2], "agent": f"a{k % 4}"})


def count_plan(conn: Any, f: CallFilters, table: str = "calls") -> str:
    """PostgreSQL's plan of ``f``'s count, ``table`` analyzed, index reads forced (a few hundred
    rows: the planner would read the table anyway)."""
    conn.execute(f"ANALYZE {table}")
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET enable_bitmapscan = off")
    sql, params = build_count(f, NOW)
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params))
    conn.execute("RESET enable_seqscan")
    conn.execute("RESET enable_bitmapscan")
    return plan


def _searches(catalog: Catalog) -> list[object]:
    out: list[object] = []
    for f in (COMBINED, CallFilters(queue="support", consent="timeout"),
              CallFilters(agent="a0", status="answered", consent="granted")):
        page = catalog.search_page(f, now=NOW)
        out.append(([r["call_id"] for r in page.rows], page.count))
    return out


def test_0016_upgrades_a_0015_catalog_and_counts_inside_the_index(postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    old = Catalog(url, clock=lambda: NOW)
    fill(old)
    _as_0015(old)
    before = _searches(old)
    old.close()
    engine.close_pools()
    catalog = Catalog(url, clock=lambda: NOW)  # migrates to 0016, then 0017 and 0018
    try:
        conn = catalog._conn()
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == pg_schema.HEAD
        for name in FILTER_COLUMNS:  # (0018 then merged the agent-led ones into the agent's)
            assert _columns(conn, name) == ([] if name in RETIRED else filter_index_columns(name)), name
        assert _columns(conn, AGENT_INDEX) == AGENT_INDEX_COLUMNS
        after = _searches(catalog)
        assert after == before and all(page for page, _count in after)
        plan = count_plan(conn, COMBINED)
        assert "calls_queue_time" in plan, plan
        cond = next(ln for ln in plan.splitlines() if "Index Cond" in ln)
        assert "status" in cond and "consent_decision" in cond, plan  # tested on the index entry
        assert "Filter" not in plan.split("calls_queue_time", 1)[1], plan
    finally:
        catalog.close()
