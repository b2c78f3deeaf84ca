"""Alembic revision 0008 (console) brings a catalog at the 0007 layout to the newest one (new
tables, new columns of ``users`` and ``sessions``, kept rows), and is a no-op on a catalog the
baseline created fresh.  Run through Alembic on a SQLite database (plain SQLAlchemy DDL)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import pg_schema
from pbx_recorder.catalog.schema_model import (
    CONSOLE_COLUMNS,
    CONSOLE_INDEXES,
    CONSOLE_TABLES,
    WORK_TABLES,
    metadata,
)

pytestmark = pytest.mark.sqlite_only  # a SQLAlchemy SQLite database of its own

NEW_TABLES = {t.name for t in CONSOLE_TABLES}


def _at_0007(connection) -> None:  # type: ignore[no-untyped-def]
    later = CONSOLE_TABLES + WORK_TABLES
    metadata.create_all(connection, tables=[t for t in metadata.sorted_tables if t not in later])
    for table_name, names in CONSOLE_COLUMNS.items():
        for name in names:
            connection.execute(text(f"ALTER TABLE {table_name} DROP COLUMN {name}"))
    connection.execute(text("INSERT INTO users (name, role, created_at, updated_at) "
                            "VALUES ('a', 'admin', 1, 1)"))
    connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
    connection.execute(text("INSERT INTO alembic_version VALUES ('0007')"))
    connection.commit()


@pytest.mark.parametrize("fresh", [False, True])
def test_0008_adds_the_console_tables_columns_and_indexes(tmp_path, fresh: bool) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        if fresh:
            metadata.create_all(connection)
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            connection.execute(text("INSERT INTO alembic_version VALUES ('0007')"))
            connection.commit()
        else:
            _at_0007(connection)
            assert not NEW_TABLES & set(inspect(connection).get_table_names())
            assert "lang" not in {c["name"] for c in inspect(connection).get_columns("users")}
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        insp = inspect(connection)
        assert NEW_TABLES <= set(insp.get_table_names())
        for table_name, names in CONSOLE_COLUMNS.items():
            assert set(names) <= {c["name"] for c in insp.get_columns(table_name)}
        for index in CONSOLE_INDEXES:
            assert index.name in {i["name"] for i in insp.get_indexes(index.table.name)}
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if not fresh:
            row = connection.execute(text("SELECT name, lang, totp_secret, totp_last_step FROM users")).one()
            assert tuple(row) == ("a", "en", "", 0)
    assert version == pg_schema.HEAD
