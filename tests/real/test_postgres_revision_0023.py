"""Alembic revision 0023 on a real PostgreSQL catalog at the 0022 layout with ledger rows:
``ledger.mac`` added, ``''`` on every existing row (rows of an older version are not keyed), and
the chain still verifies; a catalog made new has the column already and the revision adds nothing
(tests/unit/test_ledger_rows_keyed.py covers the keyed rows themselves on both engines)."""

from __future__ import annotations

import pytest

from pbx_recorder.catalog import Catalog, engine, pg_schema
from pbx_recorder.recording import ledger
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.real

NOW = 1_795_000_000.0


def test_0023_upgrades_a_0022_catalog_with_ledger_rows(postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    old = Catalog(url, clock=lambda: NOW)
    conn = old._conn()
    for i in range(3):
        ledger.append(conn, "stored", f"r{i}", {"sha256": f"{i:064x}"}, NOW + i)
    conn.commit()
    conn.execute("ALTER TABLE ledger DROP COLUMN mac")  # the 0022 layout
    conn.execute("UPDATE alembic_version SET version_num = '0022'")
    conn.commit()
    old.close()
    engine.close_pools()
    catalog = Catalog(url, clock=lambda: NOW)  # migrates to 0023
    try:
        conn = catalog._conn()
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == pg_schema.HEAD
        rows = conn.execute("SELECT recording_id, mac FROM ledger ORDER BY seq").fetchall()
        assert [tuple(r) for r in rows] == [("r0", ""), ("r1", ""), ("r2", "")]
        assert ledger.verify_chain(conn) == []
        ledger.append(conn, "held", "r1", {}, NOW + 9)  # the chain goes on (no key: unkeyed)
        conn.commit()
        assert ledger.verify_chain(conn) == []
    finally:
        catalog.close()
        engine.close_pools()
