"""Keyset batches over a catalog table: bounded memory for whole-catalog operations.

``verify``, ``ledger verify``, retention, migration, erasure and holds read tables that hold
millions of rows.  They never ``fetchall()`` a table: they read ``batch`` rows at a time,
ordered by SQLite's ``rowid`` and resumed after the last one seen::

    SELECT rowid, <columns> FROM <table> WHERE rowid > :last AND (<filter>) ORDER BY rowid LIMIT :batch

Each batch is one short statement (no read transaction held across batches, so writers are
not blocked and a crash loses at most one batch of progress), and its cost does not depend on
how far into the table it is (the rowid B-tree is searched, not skipped through as OFFSET
would).  ``after`` lets an interrupted pass continue where it stopped.  Table and column names
come from this code base, never from input; values are bound.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from pbx_recorder.catalog import engine

DEFAULT_BATCH = 500


def batches(conn: sqlite3.Connection, table: str, columns: Sequence[str], *, where: str = "",
            params: Sequence[Any] = (), batch: int = DEFAULT_BATCH,
            after: int = 0) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """Lists of ``(rowid, row)`` of at most ``batch`` rows, in rowid order, after rowid ``after``."""
    size = max(1, int(batch))
    cols = ", ".join(columns)
    cond = f" AND ({where})" if where else ""
    sql = f"SELECT rowid, {cols} FROM {table} WHERE rowid > ?{cond} ORDER BY rowid LIMIT ?"
    last = int(after)
    while True:
        got = conn.execute(sql, (last, *params, size)).fetchall()
        if not got:
            return
        yield [(int(r[0]), dict(zip(columns, r[1:], strict=True))) for r in got]
        if len(got) < size:
            return
        last = int(got[-1][0])


def rows(conn: sqlite3.Connection, table: str, columns: Sequence[str], *, where: str = "",
         params: Sequence[Any] = (), batch: int = DEFAULT_BATCH, after: int = 0) -> Iterator[dict[str, Any]]:
    """The rows of :func:`batches`, one at a time."""
    for chunk in batches(conn, table, columns, where=where, params=params, batch=batch, after=after):
        for _, row in chunk:
            yield row


def columns_of(conn: sqlite3.Connection, table: str) -> list[str]:
    """The table's column names (older catalogs lack later columns)."""
    return [c for c in engine.table_columns(conn, table) if c != "rowid"]


def count(conn: sqlite3.Connection, table: str, where: str = "", params: Sequence[Any] = ()) -> int:
    """Rows matching ``where`` (for a progress total: SQLite counts without handing rows over)."""
    cond = f" WHERE {where}" if where else ""
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}{cond}", tuple(params)).fetchone()[0])
