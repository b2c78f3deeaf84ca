"""A new PostgreSQL catalog is made in one step at the newest revision
(``pg_schema._create_at_head``: the model's tables and indexes, the tag trigger, the storage
settings, Alembic's version row) instead of replaying the baseline and every revision after it.
Both ways must leave the same catalog: the two schemas' ``pg_dump --schema-only`` statements
compared one for one, and a call written into each lands alike (the tag trigger included)."""

from __future__ import annotations

import re
import subprocess

import pytest
from alembic import command

from pbx_recorder.catalog import Catalog, engine, pg_schema
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.real

NOW = 1_795_000_000.0


def _statements(postgres: PostgresServer, url: str) -> list[str]:
    schema = re.search(r"search_path%3D(\w+)", url)
    assert schema is not None, url
    name = schema.group(1)
    dump = subprocess.run([str(postgres.bindir / "pg_dump"), "-h", "127.0.0.1", "-p", str(postgres.port),
                           "-U", postgres.user, "-d", postgres.database, "--schema-only", "-n", name],
                          check=True, capture_output=True, text=True, timeout=60).stdout
    lines = [line for line in dump.splitlines()
             if line and not line.startswith("--") and not line.startswith(("\\restrict", "\\unrestrict"))]
    text = re.sub(rf"\b{name}\b", "S", "\n".join(lines))
    return sorted(s.strip() for s in text.split(";\n") if s.strip())


def _by_every_revision(url: str) -> None:
    """The catalog as the baseline and each revision after it leave it (the path a catalog of an
    older version takes, run here from nothing)."""
    sa = pg_schema._engine(url, None)
    try:
        with sa.connect() as connection:
            command.upgrade(pg_schema._config(connection), "head")
            connection.commit()
    finally:
        sa.dispose()


def test_a_new_catalog_is_the_layout_every_revision_leaves(postgres: PostgresServer) -> None:
    replayed, made = postgres.fresh_schema(), postgres.fresh_schema()
    _by_every_revision(replayed)
    assert pg_schema.upgrade(made) == pg_schema.HEAD
    a, b = _statements(postgres, replayed), _statements(postgres, made)
    assert len(a) > 100 and any("CREATE TRIGGER call_tags_insert" in s for s in a)
    assert any("autovacuum_vacuum_insert_threshold" in s for s in a)
    assert a == b
    tags = []
    for url in (replayed, made):
        catalog = Catalog(url, clock=lambda: NOW)  # at the head already: nothing migrated
        try:
            catalog.upsert_call({"call_id": "c1", "started_at": NOW, "agent": "a1", "status": "answered",
                                 "tags": ["vip", "sales"]})
            conn = catalog._conn()
            tags.append(sorted(tuple(r) for r in conn.execute("SELECT call_id, tag, agent, status "
                                                              "FROM call_tags")))
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == pg_schema.HEAD
        finally:
            catalog.close()
    engine.close_pools()
    assert tags[0] == tags[1] == [("c1", "sales", "a1", "answered"), ("c1", "vip", "a1", "answered")]


def test_a_schema_with_tables_of_its_own_is_migrated_not_made_anew(postgres: PostgresServer) -> None:
    """The one-step path is for an empty schema only: a schema already holding a table (an older
    catalog whose version row was lost, or anything else) goes through Alembic, which refuses
    rather than writes a second layout over it."""
    url = postgres.fresh_schema()
    sa = pg_schema._engine(url, None)
    try:
        with sa.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE calls (call_id TEXT PRIMARY KEY)")
            connection.commit()
    finally:
        sa.dispose()
    from pbx_recorder.errors import CatalogError

    with pytest.raises(CatalogError, match="catalog migration failed"):
        pg_schema.upgrade(url)
