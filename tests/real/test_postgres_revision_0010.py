"""Alembic revision 0010 on a real PostgreSQL catalog at the 0009 layout: ``call_tags.agent`` added
and filled from the calls, the agent-led indexes built (and merged
into the agent's index by revision 0018), the tag trigger replaced so that it copies
the agent (on insert, and when a call's tags or agent change), and a team's tag search finds the
call (issue 11, scoped searches).  tests/unit/test_catalog_revision_0010.py covers the same
revision on SQLite through Alembic; this is the path with the PostgreSQL trigger."""

from __future__ import annotations

import pytest

from pbx_recorder.catalog import CallFilters, Catalog, engine, pg_schema
from pbx_recorder.catalog.schema_agent import AGENT_INDEX, RETIRED
from pbx_recorder.catalog.schema_filters import TAG_COPIES, TAG_INDEXES
from pbx_recorder.catalog.schema_model import postgres_tag_trigger
from pbx_recorder.catalog.scopes import Scope
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.real

NOW = 1_795_000_000.0


def _as_0009(catalog: Catalog) -> None:
    """Take a fresh (0010) catalog back to the 0009 layout: no agent copy, the former trigger."""
    conn = catalog._conn()
    for name in list(TAG_INDEXES):  # (the agent-led indexes 0010 adds are gone since 0018)
        conn.execute(f"DROP INDEX {name}")
    for trigger in ("call_tags_insert", "call_tags_update", "call_tags_delete"):
        conn.execute(f"DROP TRIGGER {trigger} ON calls")
    for column in TAG_COPIES:  # (the agent, and the copies revision 0017 adds)
        conn.execute(f"ALTER TABLE call_tags DROP COLUMN {column}")
    conn.execute("CREATE INDEX call_tags_tag ON call_tags(tag, started_at DESC, call_id)")
    conn.execute(postgres_tag_trigger(()))  # the former trigger: no copy of the call's columns
    conn.execute("UPDATE alembic_version SET version_num = '0009'")
    conn.commit()


def test_0010_upgrades_a_0009_catalog_and_its_tag_trigger(postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    old = Catalog(url, clock=lambda: NOW)
    old.upsert_call({"call_id": "c1", "agent": "ann", "tags": ["vip"], "started_at": NOW - 60})
    _as_0009(old)
    # written under the former trigger: no agent copy until the migration fills it
    old.upsert_call({"call_id": "c2", "agent": "bob", "tags": ["vip"], "started_at": NOW - 30})
    old.close()
    engine.close_pools()
    catalog = Catalog(url, clock=lambda: NOW)  # migrates to 0010
    try:
        conn = catalog._conn()
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == pg_schema.HEAD
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes "
                                            "WHERE schemaname = current_schema()")}
        assert AGENT_INDEX in names and not set(RETIRED) & names  # (0010 made them, 0018 merged them)
        agents = dict(conn.execute("SELECT call_id, agent FROM call_tags ORDER BY call_id").fetchall())
        assert agents == {"c1": "ann", "c2": "bob"}  # filled by the migration
        catalog.upsert_call({"call_id": "c3", "agent": "cy", "tags": ["vip"], "started_at": NOW - 10})
        conn.execute("UPDATE calls SET agent = 'dee' WHERE call_id = 'c1'")  # the new trigger follows
        agents = dict(conn.execute("SELECT call_id, agent FROM call_tags ORDER BY call_id").fetchall())
        assert agents == {"c1": "dee", "c2": "bob", "c3": "cy"}
        team = Scope.of_agents({"dee", "cy"})
        page = catalog.search_page(CallFilters(tag="vip"), now=NOW, scope=team)
        assert [r["call_id"] for r in page.rows] == ["c3", "c1"]
        assert page.count is not None and page.count.value == 2
    finally:
        catalog.close()
