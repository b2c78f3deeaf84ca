"""Alembic revision 0009 (working with recordings) brings a catalog at the 0008 layout to the
newest one (export jobs, deletion requests, destruction records, tag vocabulary, QA scorecards and
reviews, reports), keeps the rows already there, and is a no-op on a catalog the baseline created
fresh.  Run through Alembic on a SQLite database (plain SQLAlchemy DDL)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import pg_schema
from pbx_recorder.catalog.schema_model import WORK_INDEXES, WORK_TABLES, metadata

pytestmark = pytest.mark.sqlite_only  # a SQLAlchemy SQLite database of its own

NEW_TABLES = {t.name for t in WORK_TABLES}


@pytest.mark.parametrize("fresh", [False, True])
def test_0009_adds_the_work_tables_and_indexes(tmp_path, fresh: bool) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        tables = list(metadata.sorted_tables) if fresh else \
            [t for t in metadata.sorted_tables if t not in WORK_TABLES]
        metadata.create_all(connection, tables=tables)
        connection.execute(text("INSERT INTO saved_searches (user_name, name, query, created_at) "
                                "VALUES ('qa1', 'week', 'preset=week', 1)"))
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0008')"))
        connection.commit()
        if not fresh:
            assert not NEW_TABLES & set(inspect(connection).get_table_names())
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        insp = inspect(connection)
        assert NEW_TABLES <= set(insp.get_table_names())
        for index in WORK_INDEXES:
            assert index.name in {i["name"] for i in insp.get_indexes(index.table.name)}
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        kept = connection.execute(text("SELECT user_name, query FROM saved_searches")).one()
    assert tuple(kept) == ("qa1", "preset=week")
    assert version == pg_schema.HEAD
