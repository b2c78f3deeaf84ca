"""Alembic revision 0024 on a real PostgreSQL catalog at the 0023 layout, with calls: ``calls.fresh``
added (every existing call settled), the two number indexes made again as partial indexes of the
settled calls, the fresh ones made, and the searches, an erasure's lookup and the plans right after
it (issue 11; ``tests/unit/test_fresh_numbers.py`` covers SQLite's migration 25 and both engines'
reads)."""

from __future__ import annotations

import pytest

from pbx_recorder.catalog import CallFilters, Catalog, engine, pg_schema
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.catalog.queries import build_search
from pbx_recorder.lifecycle import number_lookup
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.real

NOW = 1_795_000_000.0
HASH_KEY = b"h" * 32
X = "4915112345678"
Y = "4917000005678"  # the same last 4 digits
NAMES = ("calls_caller_number", "calls_callee_number", "calls_caller_fresh", "calls_callee_fresh")


def protection() -> NumberProtection:
    return NumberProtection(NumberCipher(lambda _key_id: b"m" * 32, "m1"), BlindIndex(HASH_KEY))


def _as_0023(catalog: Catalog) -> None:
    """Take a fresh catalog back to the 0023 layout: whole number indexes, no ``calls.fresh``."""
    conn = catalog._conn()
    for name in NAMES:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("ALTER TABLE calls DROP COLUMN fresh")
    for side in ("caller", "callee"):
        conn.execute(f"CREATE INDEX calls_{side}_number ON calls({side}_bi4, started_at DESC, call_id, "
                     f"{side}_bi)")
    conn.execute("UPDATE alembic_version SET version_num = '0023'")
    conn.commit()


def test_0024_upgrades_a_0023_catalog(postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    old = Catalog(url, clock=lambda: NOW, numbers=protection())
    for call_id, caller, ago in (("c1", X, 30), ("c2", Y, 20), ("c3", X, 10)):
        old.upsert_call({"call_id": call_id, "caller_num": caller, "callee_num": "4000",
                         "started_at": NOW - ago})
    _as_0023(old)
    old.close()
    engine.close_pools()
    catalog = Catalog(url, clock=lambda: NOW, numbers=protection())  # migrates to 0024
    try:
        conn = catalog._conn()
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        assert version == pg_schema.HEAD == "0024"
        ddl = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes "
                                "WHERE schemaname = current_schema() AND tablename = 'calls'").fetchall())
        assert set(NAMES) <= set(ddl)
        assert ddl["calls_caller_number"].endswith("WHERE (fresh = 0)"), ddl["calls_caller_number"]
        assert ddl["calls_caller_fresh"].endswith("WHERE (fresh <> 0)"), ddl["calls_caller_fresh"]
        assert {r[0] for r in conn.execute("SELECT fresh FROM calls")} == {0}
        assert [r["call_id"] for r in catalog.search(CallFilters(caller=X))] == ["c3", "c1"]
        assert [r["call_id"] for r in catalog.search(CallFilters(caller="5678"))] == ["c3", "c2", "c1"]
        conn.execute("UPDATE calls SET fresh = 1 WHERE call_id = 'c2'")  # one call in each part
        conn.commit()
        assert [r["call_id"] for r in catalog.search(CallFilters(caller="5678"))] == ["c3", "c2", "c1"]
        assert number_lookup.call_ids_for_number(conn, HASH_KEY, Y) == ["c2"]
        # the plan of a page at some size: 20,000 more calls, one in ten with these last 4 digits, one
        # in fifty fresh (what the two index ranges and the LIMIT make of it, not the statistics of
        # a three-row table)
        last4 = BlindIndex(HASH_KEY).last4(X)
        conn.execute("INSERT INTO calls (call_id, started_at, caller_bi4, caller_bi, fresh) "
                     "SELECT 'g' || i, ? - i, CASE WHEN i % 10 = 0 THEN ? ELSE 'other' || (i % 997) END, "
                     "'full' || i, CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END "
                     "FROM generate_series(1, 20000) AS i",
                     (NOW, last4))
        conn.execute("ANALYZE calls")
        conn.commit()
        sql, params = build_search(CallFilters(caller="5678"), NOW, blind=BlindIndex(HASH_KEY))
        plan = " / ".join(r[0].strip() for r in conn.execute("EXPLAIN " + sql, params))
        assert "Merge Append" in plan and "Seq Scan" not in plan, plan
        # (the Merge Append's "Sort Key" sorts nothing)
        assert "-> Sort" not in plan.replace("->  ", "-> "), plan
        assert "calls_caller_number" in plan and "calls_caller_fresh" in plan, plan
        every = conn.execute("SELECT call_id, started_at FROM calls WHERE caller_bi4 = ?",
                             (last4,)).fetchall()
        expected = [r[0] for r in sorted(every, key=lambda r: (-r[1], r[0]))][:50]
        assert [r["call_id"] for r in catalog.search(CallFilters(caller="5678", limit=50))] == expected
    finally:
        catalog.close()
