"""Alembic revision 0007 (accounts) brings a catalog at the 0006 layout to the newest one, and is a
no-op on a catalog the baseline created fresh (the baseline creates the model as it stands).
Run through Alembic on a SQLite database (the revision is plain SQLAlchemy DDL)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import pg_schema
from pbx_recorder.catalog.schema_model import ACCOUNT_INDEXES, ACCOUNT_TABLES, metadata

pytestmark = pytest.mark.sqlite_only  # a SQLAlchemy SQLite database of its own

NEW_TABLES = {t.name for t in ACCOUNT_TABLES}


def _at_0006(connection) -> None:  # type: ignore[no-untyped-def]
    metadata.create_all(connection, tables=[t for t in metadata.sorted_tables if t not in ACCOUNT_TABLES])
    for index in ACCOUNT_INDEXES:
        index.drop(connection, checkfirst=True)
    connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
    connection.execute(text("INSERT INTO alembic_version VALUES ('0006')"))
    connection.commit()


@pytest.mark.parametrize("fresh", [False, True])
def test_0007_adds_the_account_tables_and_indexes(tmp_path, fresh: bool) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        if fresh:
            metadata.create_all(connection)
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            connection.execute(text("INSERT INTO alembic_version VALUES ('0006')"))
            connection.commit()
        else:
            _at_0006(connection)
            assert not NEW_TABLES & set(inspect(connection).get_table_names())
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        insp = inspect(connection)
        assert NEW_TABLES <= set(insp.get_table_names())
        assert "audit_actor_action" in {i["name"] for i in insp.get_indexes("audit_log")}
        assert "qa_assignments_reviewer" in {i["name"] for i in insp.get_indexes("qa_assignments")}
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == pg_schema.HEAD
