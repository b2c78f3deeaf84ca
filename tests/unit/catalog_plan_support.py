"""Query-plan helpers for the catalog-at-scale tests: which statements ran, and how SQLite plans them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

# tiny bookkeeping tables SQLite or the schema keep a handful of rows in: a scan of them is free
SMALL_TABLES = {"sqlite_sequence", "schema_version", "sqlite_stat1"}


def plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...] | list[object] = ()) -> list[str]:
    """The EXPLAIN QUERY PLAN lines of ``sql`` (the ``detail`` column)."""
    return [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()]


def big_scans(lines: list[str]) -> list[str]:
    """Plan lines that read a whole table (or a whole index without a key) of a table that grows."""
    out = []
    for line in lines:
        if not line.startswith("SCAN "):
            continue
        table = line.split()[1]
        # json_each (named or by an alias): a table-valued function over one bound cell; the
        # catalog has no virtual table of its own
        if table not in SMALL_TABLES and not table.startswith("json_each") and " VIRTUAL TABLE" not in line:
            out.append(line)
    return out


@contextmanager
def traced(conn: sqlite3.Connection) -> Iterator[list[str]]:
    """Every statement ``conn`` runs inside the block, with its values inlined by SQLite."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def lookups(statements: list[str]) -> list[str]:
    """The statements of a trace that look rows up (SELECT / UPDATE / DELETE), trigger comments left out."""
    keep = ("SELECT", "UPDATE", "DELETE")
    return [s for s in statements if s.lstrip().upper().startswith(keep)]


#: what a number page's plan sorts, each at most a page of rows (``queries._page``): an arm's keys
#: (``SCAN a0`` / ``SCAN a1``) and the page's own rows, read by their keys
PAGE_SORTED = ("SCAN a", "SEARCH calls USING INDEX sqlite_autoindex_calls_1 (call_id=?)")


def range_sorts(lines: list[str]) -> list[str]:
    """Sorts in a plan other than of a number page's arms or its rows (:data:`PAGE_SORTED`): what
    would sort a whole index range."""
    page_sort = "USE TEMP B-TREE FOR ORDER BY"
    return [ln for prev, ln in zip(["", *lines[:-1]], lines, strict=True)
            if "TEMP B-TREE" in ln and not (prev.startswith(PAGE_SORTED) and ln == page_sort)]
