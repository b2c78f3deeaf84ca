"""A new call's tags into ``call_tags``, written with the call row (SQLite, from schema 19:
:mod:`pbx_recorder.catalog.schema_tag_writes` says why there is no insert trigger).  The row
stored is the source: the tags, time and copied columns are read back from it, matched as the
triggers match them (a cell that is not a JSON list tags nothing; a null element is skipped)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pbx_recorder.catalog import engine
from pbx_recorder.catalog.schema_filters import TAG_COPIES

_COLUMNS = ", ".join(TAG_COPIES)
_FROM_CALLS = (
    f"INSERT OR IGNORE INTO call_tags (call_id, tag, started_at, {_COLUMNS})\n"
    f"    SELECT c.call_id, j.value, c.started_at, {', '.join('c.' + col for col in TAG_COPIES)}\n"
    "    FROM calls c, json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END) j\n"
    "    WHERE j.value IS NOT NULL")
#: one call's tags, from its stored row
COPY_ONE = _FROM_CALLS + " AND c.call_id = ?"
#: every call's tags (rows written by raw SQL, not through the catalog); idempotent
COPY_ALL = _FROM_CALLS

#: a tags cell that names no tag (the column's default, an empty list): nothing to copy
_NO_TAGS = (None, "", "[]")


def copy_new_call(conn: Any, call_id: str, tags_cell: Any) -> None:
    """After the catalog inserted call ``call_id``: its tags into ``call_tags`` (none to copy when
    ``tags_cell``, the value bound for the row's ``tags``, names none; on PostgreSQL the server's
    trigger copied them)."""
    if tags_cell not in _NO_TAGS and not engine.is_postgres(conn):
        conn.execute(COPY_ONE, (call_id,))


def copy_calls(conn: Any, call_ids: Iterable[str]) -> None:
    """The tags of calls ``call_ids`` (rows inserted by raw SQL on SQLite: a bulk loader's batch)."""
    if not engine.is_postgres(conn):
        conn.executemany(COPY_ONE, ((call_id,) for call_id in call_ids))


def copy_all(conn: Any) -> int:
    """Every call's tags into ``call_tags`` (calls inserted by raw SQL on SQLite); the rows added.
    On PostgreSQL none: the server's trigger copied them as the rows went in."""
    if engine.is_postgres(conn):
        return 0
    return int(conn.execute(COPY_ALL).rowcount)
