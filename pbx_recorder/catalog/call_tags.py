"""A new call's tags into ``call_tags``, written with the call row (SQLite, from schema 19:
:mod:`pbx_recorder.catalog.schema_tag_writes` says why there is no insert trigger).  The row
stored is the source: the tags, time and copied columns are read back from it, matched as the
triggers match them (a cell that is not JSON tags nothing; a null element is skipped)."""

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
#: every call's tags (rows written by raw SQL, not through the catalog); idempotent
COPY_ALL = _FROM_CALLS

#: one stored call's tags, as ``COPY_ALL`` reads them (a read: it changes no page)
TAGS_OF = ("SELECT j.value\n"
           "    FROM calls c, json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END) j\n"
           "    WHERE j.value IS NOT NULL AND c.call_id = ?")
#: one tag of one stored call, its other columns from the call's row.  One row per statement: an
#: ``INSERT ... SELECT`` joined with ``json_each`` may write several rows, and SQLite copies every
#: page such a statement changes to a statement journal first (in a 1,000-call batch it outgrew
#: memory and went to a temporary file: 8.5 KB written there a call, issue 11's write path); a
#: statement that inserts one row by the call's primary key keeps none.
COPY_TAG = (f"INSERT OR IGNORE INTO call_tags (call_id, tag, started_at, {_COLUMNS})\n"
            f"    SELECT c.call_id, ?, c.started_at, {', '.join('c.' + col for col in TAG_COPIES)}\n"
            "    FROM calls c WHERE c.call_id = ?")

#: a tags cell that names no tag (the column's default, an empty list): nothing to copy
_NO_TAGS = (None, "", "[]")


def copy_new_call(conn: Any, call_id: str, tags_cell: Any) -> None:
    """After the catalog inserted call ``call_id``: its tags into ``call_tags`` (none to copy when
    ``tags_cell``, the value bound for the row's ``tags``, names none; on PostgreSQL the server's
    trigger copied them)."""
    if tags_cell not in _NO_TAGS and not engine.is_postgres(conn):
        _copy_one(conn, call_id)


def copy_calls(conn: Any, call_ids: Iterable[str]) -> None:
    """The tags of calls ``call_ids`` (rows inserted by raw SQL on SQLite: a bulk loader's batch)."""
    if not engine.is_postgres(conn):
        for call_id in call_ids:
            _copy_one(conn, call_id)


def _copy_one(conn: Any, call_id: str) -> None:
    """SQLite: call ``call_id``'s tags, read from its stored row, one row per tag (``COPY_TAG``)."""
    tags = [row[0] for row in conn.execute(TAGS_OF, (call_id,))]
    if tags:
        conn.executemany(COPY_TAG, ((tag, call_id) for tag in tags))


def copy_all(conn: Any) -> int:
    """Every call's tags into ``call_tags`` (calls inserted by raw SQL on SQLite); the rows added.
    On PostgreSQL none: the server's trigger copied them as the rows went in."""
    if engine.is_postgres(conn):
        return 0
    return int(conn.execute(COPY_ALL).rowcount)
