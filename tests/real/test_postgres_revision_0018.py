"""Alembic revision 0018 on a real PostgreSQL catalog at the 0017 layout, with calls: the three
agent-led indexes of revision 0010 dropped, ``calls_agent_time`` made again carrying status,
consent decision and queue; searches by agent and by a team's scope give the same calls as before,
and an agent's combined filter is tested on the agent index's entries (issue 11;
``tests/unit/test_catalog_revision_0018.py`` covers the same revision on SQLite)."""

from __future__ import annotations

import pytest

from pbx_recorder.catalog import CallFilters, Catalog, engine, pg_schema
from pbx_recorder.catalog.schema_agent import AGENT_INDEX, AGENT_INDEX_COLUMNS, RETIRED
from pbx_recorder.catalog.schema_filters import create_index_sql
from pbx_recorder.catalog.scopes import Scope
from tests.postgres_server import PostgresServer
from tests.real.test_postgres_revision_0016 import NOW, _columns, count_plan, fill

pytestmark = pytest.mark.real

AGENT_COMBINED = CallFilters(agent="a1", status="failed", consent="refused")
SEARCHES = [(AGENT_COMBINED, None), (CallFilters(agent="a2", queue="sales", preset="30d"), None),
            (CallFilters(status="answered", consent="granted"), Scope.of_agents({"a0", "a3"}))]


def _as_0017(catalog: Catalog) -> None:
    """Take a fresh catalog back to the 0017 layout: four agent-led indexes."""
    conn = catalog._conn()
    conn.execute(f"DROP INDEX {AGENT_INDEX}")
    conn.execute(f"CREATE INDEX {AGENT_INDEX} ON calls(agent, started_at DESC, call_id)")
    for name in RETIRED:
        conn.execute(create_index_sql(name))
    conn.execute("UPDATE alembic_version SET version_num = '0017'")
    conn.commit()


def _searches(catalog: Catalog) -> list[object]:
    out: list[object] = []
    for f, scope in SEARCHES:
        page = catalog.search_page(f, now=NOW, scope=scope)
        out.append(([r["call_id"] for r in page.rows], page.count))
    return out


def test_0018_upgrades_a_0017_catalog_and_tests_an_agent_s_filters_inside_its_index(
        postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    old = Catalog(url, clock=lambda: NOW)
    fill(old)
    _as_0017(old)
    assert set(RETIRED) <= {r[0] for r in old._conn().execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}
    before = _searches(old)
    old.close()
    engine.close_pools()
    catalog = Catalog(url, clock=lambda: NOW)  # migrates to 0018
    try:
        conn = catalog._conn()
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == pg_schema.HEAD
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes "
                                            "WHERE schemaname = current_schema()")}
        assert not set(RETIRED) & names
        assert _columns(conn, AGENT_INDEX) == AGENT_INDEX_COLUMNS
        after = _searches(catalog)
        assert after == before and all(page for page, _count in after)
        plan = count_plan(conn, AGENT_COMBINED)
        assert AGENT_INDEX in plan, plan
        cond = next(ln for ln in plan.splitlines() if "Index Cond" in ln)
        assert "status" in cond and "consent_decision" in cond, plan  # tested on the index entry
    finally:
        catalog.close()
