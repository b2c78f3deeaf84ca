"""Alembic revision 0015 on a real PostgreSQL catalog at the 0014 layout, with calls and a caller
hold: the four number indexes replaced by ``calls_caller_number`` / ``calls_callee_number``, the
hold's last-4 index filled from its calls, and the searches, the hold and the plans right after it
(issue 11; ``tests/unit/test_catalog_revision_0015.py`` covers the same revision on SQLite)."""

from __future__ import annotations

import pytest

from pbx_recorder.catalog import CallFilters, Catalog, engine, pg_schema
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.catalog.schema_last4 import DROPPED_INDEXES
from pbx_recorder.catalog.schema_model import NUMBER_INDEXES
from pbx_recorder.lifecycle.holds import HoldManager
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.real

NOW = 1_795_000_000.0
HASH_KEY = b"h" * 32
X = "4915112345678"
Y = "4917000005678"  # the same last 4 digits


def protection() -> NumberProtection:
    return NumberProtection(NumberCipher(lambda _key_id: b"m" * 32, "m1"), BlindIndex(HASH_KEY))


def _as_0014(catalog: Catalog) -> None:
    """Take a fresh catalog back to the 0014 layout: the four number indexes, no ``holds.value4``."""
    conn = catalog._conn()
    for index in NUMBER_INDEXES:
        conn.execute(f"DROP INDEX {index.name}")
    for side in ("caller", "callee"):
        for column in (f"{side}_bi", f"{side}_bi4"):
            conn.execute(f"CREATE INDEX calls_{column} ON calls({column}, started_at DESC, call_id)")
    conn.execute("ALTER TABLE holds DROP COLUMN value4")
    conn.execute("UPDATE alembic_version SET version_num = '0014'")
    conn.commit()


def test_0015_upgrades_a_0014_catalog_with_its_holds(postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    old = Catalog(url, clock=lambda: NOW, numbers=protection())
    for call_id, caller, ago in (("c1", X, 30), ("c2", Y, 20), ("c3", X, 10)):
        old.upsert_call({"call_id": call_id, "caller_num": caller, "callee_num": "4000",
                         "started_at": NOW - ago})
    _as_0014(old)
    index = BlindIndex(HASH_KEY)
    conn = old._conn()
    conn.execute("INSERT INTO holds (hold_id, scope, value, created_at) VALUES ('H1', 'caller', ?, ?)",
                 (index.full(X), NOW))
    conn.commit()
    old.close()
    engine.close_pools()
    catalog = Catalog(url, clock=lambda: NOW, numbers=protection())  # migrates to 0015
    try:
        conn = catalog._conn()
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == pg_schema.HEAD
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        names = {r[0] for r in conn.execute(sql)}
        assert {i.name for i in NUMBER_INDEXES} <= names and not set(DROPPED_INDEXES) & names
        assert conn.execute("SELECT value4 FROM holds WHERE hold_id = 'H1'").fetchone()[0] == index.last4(X)
        assert [r["call_id"] for r in catalog.search(CallFilters(caller=X))] == ["c3", "c1"]
        assert [r["call_id"] for r in catalog.search(CallFilters(caller="5678"))] == ["c3", "c2", "c1"]
        holds = HoldManager(conn, {}, hash_key=HASH_KEY)
        held = holds._matching_call_ids("caller", index.full(X), index.last4(X))
        assert sorted(held) == ["c1", "c3"]
        conn.execute("SET enable_seqscan = off")  # (3 rows: the planner would read the table anyway)
        plan = " ".join(r[0] for r in conn.execute(
            # (since revision 0024 the index holds the settled calls: fresh = 0)
            "EXPLAIN SELECT call_id FROM calls WHERE fresh = 0 AND caller_bi4 = ? AND caller_bi = ? "
            "ORDER BY started_at DESC, call_id LIMIT 50", (index.last4(X), index.full(X))))
        assert "calls_caller_number" in plan and "Sort" not in plan, plan
        conn.execute("RESET enable_seqscan")
    finally:
        catalog.close()
