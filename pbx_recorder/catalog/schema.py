"""Catalog schema: the single source of truth for table layout.

SQLite by default (PostgreSQL-compatible types where it costs nothing).  Migrations are
an ordered list; ``apply_migrations`` runs the missing ones inside a transaction and
records them in ``schema_version``.  The scripts live by subject in ``schema_calls``,
``schema_numbers``, ``schema_console``, ``schema_due``, ``schema_last4`` and
``schema_filters``, ``schema_agent``, ``schema_tag_writes``, ``schema_rule_tags`` and
``schema_access_seal``, ``schema_audit_mac``, ``schema_qa_seal``, ``schema_ledger_mac``,
``schema_fresh_numbers``;
:data:`MIGRATIONS` puts them in their shipped order.
Add a new migration at the end (in the list :data:`MIGRATIONS` ends with, or a new one appended
after it), and as an Alembic revision for PostgreSQL: never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from pbx_recorder.catalog.schema_access_seal import ACCESS_ROWS_SEALED
from pbx_recorder.catalog.schema_agent import AGENT_INDEX_MERGED
from pbx_recorder.catalog.schema_audit_mac import AUDIT_ROWS_KEYED
from pbx_recorder.catalog.schema_calls import CALLS_AND_LIFECYCLE
from pbx_recorder.catalog.schema_console import SERVICE_AND_CONSOLE
from pbx_recorder.catalog.schema_due import RECORDINGS_DUE
from pbx_recorder.catalog.schema_filters import FILTERS_CARRIED
from pbx_recorder.catalog.schema_fresh_numbers import NUMBERS_STAGED
from pbx_recorder.catalog.schema_last4 import NUMBERS_BY_LAST4
from pbx_recorder.catalog.schema_ledger_mac import LEDGER_ROWS_KEYED
from pbx_recorder.catalog.schema_numbers import (
    CALL_NUMBERS_WITHOUT_OWN,
    MANIFEST_COPY_AND_EXTRA_NUMBERS,
    NUMBERS_PROTECTED,
)
from pbx_recorder.catalog.schema_qa_seal import QA_ROWS_SEALED
from pbx_recorder.catalog.schema_rule_tags import RULE_TAGS_RECORDED
from pbx_recorder.catalog.schema_tag_writes import TAGS_WRITTEN_WITH_THE_ROW

#: the shipped ladder, in order: 1-5, 6, 7-10, 11-13, 14, 15, 16-17, 18, 19, 20, 21, 22, 23, 24, 25 (each
#: file says what its migrations add)
MIGRATIONS: list[str] = [*CALLS_AND_LIFECYCLE, *NUMBERS_PROTECTED, *SERVICE_AND_CONSOLE,
                         *MANIFEST_COPY_AND_EXTRA_NUMBERS, *CALL_NUMBERS_WITHOUT_OWN, *RECORDINGS_DUE,
                         *NUMBERS_BY_LAST4, *FILTERS_CARRIED, *AGENT_INDEX_MERGED,
                         *TAGS_WRITTEN_WITH_THE_ROW, *RULE_TAGS_RECORDED, *ACCESS_ROWS_SEALED,
                         *AUDIT_ROWS_KEYED, *QA_ROWS_SEALED, *LEDGER_ROWS_KEYED, *NUMBERS_STAGED]


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring ``conn`` to the newest schema; return the resulting version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    current = row[0] or 0
    for number, script in enumerate(MIGRATIONS, start=1):
        if number <= current:
            continue
        with conn:
            conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number});")
        current = number
    return current


def ensure_schema(conn: Any, target: str | Path) -> str:
    """The catalog behind ``conn`` at the newest schema, whichever engine holds it; its version."""
    from pbx_recorder.catalog import engine

    if engine.is_postgres(conn):
        from pbx_recorder.catalog import pg_schema

        url = str(getattr(conn, "url", "") or target)
        return pg_schema.ensure(conn, url, password=engine.password_of(url))
    return str(apply_migrations(conn))
