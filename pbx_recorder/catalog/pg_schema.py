"""The PostgreSQL catalog's schema, kept by Alembic.

``upgrade(url)`` brings a PostgreSQL catalog to the newest revision under a session advisory
lock, so two recorder nodes starting at once do not both create the tables; the baseline
revision (``0006``) creates the layout of :mod:`pbx_recorder.catalog.schema_model` (the same
as SQLite's migration 6).  Later revisions live in ``alembic/versions`` and are written for
both engines (SQLite runs them after its shipped ladder; see README "Upgrading").

Alembic and SQLAlchemy are imported here only: a SQLite node and every CLI command that does
not migrate never load them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pbx_recorder.errors import CatalogError

SCRIPT_LOCATION = Path(__file__).with_name("alembic")
MIGRATION_LOCK = 0x70627873  # "pbxs"
VERSION_TABLE = "alembic_version"  # Alembic's default name
#: the newest revision in ``alembic/versions`` (a unit test holds the two equal): a node whose
#: catalog is at it starts without importing Alembic
HEAD = "0024"


def _engine(url: str, password: str | None) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    sa_url = "postgresql+psycopg://" + url.split("://", 1)[1]
    args: dict[str, Any] = {"password": password} if password else {}
    return create_engine(sa_url, poolclass=NullPool, connect_args=args)


def _config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Any) -> str | None:
    """The revision a PostgreSQL catalog is at (None: not created yet), read through ``conn``."""
    exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()[0]
    if not exists:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def ensure(conn: Any, url: str, *, password: str | None = None) -> str:
    """The catalog at ``url`` at the newest revision (migrated if it is not); its revision."""
    if current_revision(conn) == HEAD:
        return HEAD
    return upgrade(url, password=password)


def _empty(connection: Any) -> bool:
    """No table in the catalog's schema yet (nor Alembic's version table): a new catalog."""
    from sqlalchemy import text

    found = connection.execute(text("SELECT count(*) FROM pg_catalog.pg_tables "
                                    "WHERE schemaname = current_schema()")).scalar_one()
    return int(found) == 0


def _create_at_head(connection: Any) -> None:
    """A new catalog made as the newest revision leaves it, in one transaction, and stamped at
    ``HEAD``: the model's tables and indexes, the tag trigger and the tables' storage settings
    (what the baseline and every later revision leave on an empty schema; a test holds the two
    layouts equal, statement for statement), without replaying the revisions one by one."""
    connection.exec_driver_sql(_head_ddl())


@functools.cache
def _head_ddl() -> str:
    """The statements of :func:`_create_at_head` as one script (compiled once per process)."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from pbx_recorder.catalog.schema_model import POSTGRES_TAG_TRIGGER, STORAGE_SETTINGS, metadata

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)))
        statements += [str(CreateIndex(index).compile(dialect=dialect))
                       for index in sorted(table.indexes, key=lambda i: str(i.name))]
    statements += [f"ALTER TABLE {table} SET ({settings})" for table, settings in STORAGE_SETTINGS.items()]
    # Alembic's version table as its stamp makes it (the test compares the two layouts)
    statements += [f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
                   f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))",
                   f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('{HEAD}')"]
    return ";\n".join(statements) + ";\n" + POSTGRES_TAG_TRIGGER


def upgrade(url: str, *, password: str | None = None) -> str:
    """Bring the catalog at ``url`` to the newest revision; return it."""
    from alembic import command
    from sqlalchemy import text

    engine = _engine(url, password)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            try:
                connection.commit()
                if _empty(connection):
                    _create_at_head(connection)
                else:
                    command.upgrade(_config(connection), "head")
                connection.commit()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                connection.commit()
    except Exception as exc:
        if isinstance(exc, CatalogError):
            raise
        raise CatalogError(f"catalog migration failed: {exc}") from exc
    finally:
        engine.dispose()
    return HEAD
