"""Alembic revision 0017 on a real PostgreSQL catalog at the 0016 layout (``call_tags`` with its
agent copy only, revision 0010's trigger, the tag indexes without copies), with tagged calls: the
copies filled, the trigger replaced (a later status change reaches the copies), the tag indexes
made again, and a tag beside other filters read from the tag's index with those filters as index
conditions (issue 11; ``tests/unit/test_catalog_revision_0017.py`` covers the same revision on
SQLite)."""

from __future__ import annotations

import pytest

from pbx_recorder.catalog import CallFilters, Catalog, engine, pg_schema
from pbx_recorder.catalog.schema_filters import TAG_COPIES, TAG_INDEXES
from pbx_recorder.catalog.schema_model import POSTGRES_TAG_TRIGGER_0010
from tests.postgres_server import PostgresServer
from tests.real.test_postgres_revision_0016 import count_plan

pytestmark = pytest.mark.real

NOW = 1_795_000_000.0
VIP_ANSWERED = CallFilters(tag="vip", status="answered", consent="granted")


def _as_0016(catalog: Catalog) -> None:
    conn = catalog._conn()
    for name in TAG_INDEXES:
        conn.execute(f"DROP INDEX {name}")
    for trigger in ("call_tags_insert", "call_tags_update", "call_tags_delete"):
        conn.execute(f"DROP TRIGGER {trigger} ON calls")
    for column in TAG_COPIES[1:]:
        conn.execute(f"ALTER TABLE call_tags DROP COLUMN {column}")
    conn.execute("CREATE INDEX call_tags_tag ON call_tags(tag, started_at DESC, call_id)")
    conn.execute("CREATE INDEX call_tags_agent ON call_tags(agent, tag, started_at DESC, call_id)")
    conn.execute(POSTGRES_TAG_TRIGGER_0010)
    conn.execute("UPDATE alembic_version SET version_num = '0016'")
    conn.commit()


def test_0017_upgrades_a_0016_catalog_and_keeps_the_copies(postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    old = Catalog(url, clock=lambda: NOW)
    _as_0016(old)
    for k in range(120):
        old.upsert_call({"call_id": f"c{k:03d}", "started_at": NOW - 1000 + k,
                         "status": ("answered", "no_answer")[k % 2], "consent_decision": "granted",
                         "queue": "sales", "agent": f"a{k % 3}", "tags": ["vip"] if k % 4 < 2 else []})
    old.close()
    engine.close_pools()
    catalog = Catalog(url, clock=lambda: NOW)  # migrates to 0017
    try:
        conn = catalog._conn()
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == pg_schema.HEAD
        missing = conn.execute("SELECT COUNT(*) FROM call_tags t JOIN calls c USING (call_id) WHERE "
                               "t.status IS DISTINCT FROM c.status OR t.queue IS DISTINCT FROM c.queue "
                               "OR t.consent_decision IS DISTINCT FROM c.consent_decision").fetchone()[0]
        assert missing == 0 and conn.execute("SELECT COUNT(*) FROM call_tags").fetchone()[0] == 60
        page = catalog.search_page(VIP_ANSWERED, now=NOW)
        assert page.count is not None and page.count.value == 30 and len(page.rows) == 30
        catalog.upsert_call({"call_id": "c001", "status": "answered"})  # the new trigger copies it
        page = catalog.search_page(VIP_ANSWERED, now=NOW)
        assert page.count is not None and page.count.value == 31 and page.rows[-1]["call_id"] == "c000"
        plan = count_plan(conn, VIP_ANSWERED, "call_tags")
        assert "call_tags_tag" in plan and " calls" not in plan, plan
        cond = next(ln for ln in plan.splitlines() if "Index Cond" in ln)
        assert "status" in cond and "consent_decision" in cond, plan
    finally:
        catalog.close()
