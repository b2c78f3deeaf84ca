"""Schema 12 (the numbers call_numbers indexes that the call's own row does not hold, sealed:
pbx_recorder.catalog.extra_numbers) on both engines' migration paths: Alembic revision 0012 adds
``call_extra_numbers`` to a catalog at the 0011 layout (a no-op on one the baseline created fresh),
SQLite's migration 12 to a catalog the previous schema built.  A catalog that has recordings gets
the marker of the data step that reads back the manifests stored under schema 11
(pbx_recorder.catalog.manifest_numbers); an empty one does not, so a new install's first
``keys rotate-index`` does not wait for it."""

from __future__ import annotations

import json
import sqlite3

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import manifest_numbers, pg_schema
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations
from pbx_recorder.catalog.schema_model import metadata

pytestmark = pytest.mark.sqlite_only  # SQLite databases of its own


@pytest.mark.parametrize(("fresh", "recordings"), [(False, True), (False, False), (True, False)])
def test_0012_adds_the_table_and_marks_a_catalog_with_recordings(tmp_path, fresh: bool,  # type: ignore[no-untyped-def]
                                                                 recordings: bool) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        metadata.create_all(connection)
        if not fresh:  # the 0011 layout
            connection.execute(text("DROP TABLE call_extra_numbers"))
        if recordings:
            connection.execute(text("INSERT INTO calls (call_id, rowid) VALUES ('c1', 1)"))
            connection.execute(text("INSERT INTO recordings (recording_id, call_id, state, manifest_sha256, "
                                    "created_at, rowid) VALUES ('r1', 'c1', 'verified', 'ab', 1, 1)"))
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0011')"))
        connection.commit()
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        assert "call_extra_numbers" in inspect(connection).get_table_names()
        marker = connection.execute(text("SELECT value FROM catalog_settings WHERE name = :n"),
                                    {"n": manifest_numbers.STATE}).scalar()
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == pg_schema.HEAD  # (0013 and later after it)
    if recordings:
        state = json.loads(marker)
        assert state["cursor"] == "" and state["upto"] > 1_700_000_000
    else:
        assert marker is None


def test_sqlite_migration_12_on_a_catalog_of_schema_11(tmp_path) -> None:  # type: ignore[no-untyped-def]
    conn = sqlite3.connect(tmp_path / "cat.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:11], start=1):
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    conn.execute("INSERT INTO calls (call_id) VALUES ('c1')")
    conn.execute("INSERT INTO recordings (recording_id, call_id, state, manifest_sha256, created_at) "
                 "VALUES ('r1', 'c1', 'verified', 'ab', 1)")
    conn.commit()
    assert apply_migrations(conn) == len(MIGRATIONS)  # 12 and the later ones
    assert conn.execute("SELECT count(*) FROM call_extra_numbers").fetchone()[0] == 0
    assert "not all been read back" in manifest_numbers.pending(conn)
    conn.close()


def test_a_new_sqlite_catalog_has_nothing_to_read_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    conn = sqlite3.connect(tmp_path / "cat.db")
    apply_migrations(conn)
    assert manifest_numbers.pending(conn) == ""
    conn.close()
