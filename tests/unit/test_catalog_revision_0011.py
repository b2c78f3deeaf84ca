"""Schema 11 (the catalog's copy of the signed manifest, pbx_recorder.recording.manifest_copy) on both
engines' migration paths: Alembic revision 0011 adds ``recordings.manifest_sha256`` to a catalog
at the 0010 layout (a no-op on one the baseline created fresh), SQLite's migration 11 to a
catalog the previous schema built.  Rows written before keep their whole manifest and verify as
before (tests/unit/test_verify_stored_manifest.py); rows written after keep the copy."""

from __future__ import annotations

import sqlite3

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import Catalog, pg_schema
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations
from pbx_recorder.catalog.schema_model import metadata
from pbx_recorder.recording import manifest_copy

pytestmark = pytest.mark.sqlite_only  # SQLite databases of its own

WHOLE = ('{"call_id":"c1","cdr":{"src":"4915112345678"},"files":[{"name":"r1.wav","sha256":"ab"}],'
         '"pauses":[],"recording_id":"r1"}')


@pytest.mark.parametrize("fresh", [False, True])
def test_0011_adds_the_manifest_hash_and_keeps_the_rows(tmp_path, fresh: bool) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        metadata.create_all(connection)
        if not fresh:  # the 0010 layout
            connection.execute(text("ALTER TABLE recordings DROP COLUMN manifest_sha256"))
        connection.execute(text("INSERT INTO calls (call_id, rowid) VALUES ('c1', 1)"))
        connection.execute(text("INSERT INTO recordings (recording_id, call_id, state, manifest, created_at, "
                                "rowid) VALUES ('r1', 'c1', 'verified', :m, 1, 1)"), {"m": WHOLE})
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0010')"))
        connection.commit()
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        assert "manifest_sha256" in {c["name"] for c in inspect(connection).get_columns("recordings")}
        kept = connection.execute(text("SELECT manifest, manifest_sha256 FROM recordings")).one()
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert tuple(kept) == (WHOLE, "")  # an older row: its whole copy, verified from it as before
    assert version == pg_schema.HEAD  # (0012 since the sealed extra numbers)


def test_sqlite_migration_11_on_a_catalog_of_schema_10(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cat.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:10], start=1):
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    conn.execute("INSERT INTO calls (call_id) VALUES ('c1')")
    conn.execute("INSERT INTO recordings (recording_id, call_id, state, manifest, created_at) "
                 "VALUES ('r1', 'c1', 'verified', ?, 1)", (WHOLE,))
    conn.commit()
    assert apply_migrations(conn) == len(MIGRATIONS)
    assert conn.execute("SELECT manifest, manifest_sha256 FROM recordings").fetchone() == (WHOLE, "")
    conn.close()
    cat = Catalog(path)  # the recorder's next write of a recording keeps the copy
    signed = {"recording_id": "r2", "call_id": "c1", "cdr": {"src": "4915112345678"},
              "files": [{"name": "r2.wav", "sha256": "cd"}], "pauses": [[1.0, 2.0]]}
    cat.upsert_recording({"recording_id": "r2", "call_id": "c1", "state": "verified", "manifest": signed})
    row = cat.get_recording("r2")
    assert row is not None and row["manifest_sha256"] == manifest_copy.signed_sha256(signed)
    assert row["manifest"]["files"] == signed["files"] and row["manifest"]["pauses"] == [[1.0, 2.0]]
    old = cat.get_recording("r1")
    assert old is not None and old["manifest_sha256"] == "" and old["manifest"]["recording_id"] == "r1"
    cat.close()
