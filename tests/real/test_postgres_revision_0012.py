"""Alembic revision 0012 on a real PostgreSQL catalog at the 0011 layout that has recordings:
``call_extra_numbers`` created, and the marker of the data step that reads back the manifests
stored under schema 11 (``catalog.manifest_numbers``) written with PostgreSQL's clock, so a
rotation waits for ``catalog migrate``.  tests/unit/test_catalog_revision_0012.py covers the same
revision on SQLite through Alembic; this is the PostgreSQL form of its SQL."""

from __future__ import annotations

import time

import pytest

from pbx_recorder.catalog import Catalog, engine, manifest_numbers, pg_schema
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.real

NOW = 1_795_000_000.0


def test_0012_upgrades_a_0011_catalog_with_recordings(postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    old = Catalog(url, clock=lambda: NOW)
    old.upsert_recording({"recording_id": "r1", "call_id": "c1", "state": "verified",
                          "manifest_sha256": "ab", "created_at": NOW})
    conn = old._conn()
    assert manifest_numbers.pending(conn) == ""  # a fresh catalog: nothing to read back
    conn.execute("DROP TABLE call_extra_numbers")
    conn.execute("UPDATE alembic_version SET version_num = '0011'")
    conn.commit()
    old.close()
    engine.close_pools()
    catalog = Catalog(url, clock=lambda: NOW)  # migrates to 0012
    try:
        conn = catalog._conn()
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == pg_schema.HEAD
        assert conn.execute("SELECT count(*) FROM call_extra_numbers").fetchone()[0] == 0
        state = manifest_numbers.load_state(conn)
        assert state is not None and state["cursor"] == "" and abs(state["upto"] - time.time()) < 3600
        assert "not all been read back" in manifest_numbers.pending(conn)
    finally:
        catalog.close()
