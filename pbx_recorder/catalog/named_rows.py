"""Rows of ``call_numbers``: the full-number blind indexes of the numbers a call names *besides*
its own caller and callee (schema 13).

Erasure and holds by number find a call through three index lookups, every one of which stays:
``calls.caller_bi``, ``calls.callee_bi`` and ``call_numbers.bi`` (``lifecycle.number_lookup``,
``lifecycle.tombstones``, ``catalog.index_rotation``).  Until schema 12 ``call_numbers`` also
repeated the row's own two indexes, which nearly every call names and nothing else: two rows and
two index entries a call (about 700 of its 5,200 bytes) in B-trees keyed by a random hash, the
inserts that slow the write path most as the catalog outgrows its cache.  Migration 13 deletes
those rows; a write adds a row only for a number that is not the call's own caller or callee:
a CDR's transfer target, a number only a recording's signed manifest names, and a caller or callee
an earlier version of the row had (so a row rewritten with another caller still finds the old one).

Every writer goes through :func:`insert`; nothing here logs a number.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: the row's own indexes, and the index rows it has: what a new number is checked against
_INDEXED = ("SELECT bi FROM call_numbers WHERE call_id = ? UNION ALL "
            "SELECT caller_bi FROM calls WHERE call_id = ? UNION ALL "
            "SELECT callee_bi FROM calls WHERE call_id = ?")


def own(conn: Any, call_id: str) -> set[str]:
    """The call's own full-number indexes (its stored ``caller_bi`` and ``callee_bi``)."""
    row = conn.execute("SELECT caller_bi, callee_bi FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    return {str(v) for v in row if v} if row is not None else set()


def indexed(conn: Any, call_id: str) -> set[str]:
    """Every full-number index a lookup finds the call by: its own two and its ``call_numbers`` rows."""
    return {str(r[0]) for r in conn.execute(_INDEXED, (call_id, call_id, call_id)) if r[0]}


def insert(conn: Any, call_id: str, indexes: Iterable[str], own_indexes: Iterable[str] | None = None) -> None:
    """``call_numbers`` rows for ``indexes`` of the call, but none for its own caller or callee
    (``own_indexes``: the row about to be written; None: read from the stored row).  A row the call
    has already stays."""
    wanted = {str(bi) for bi in indexes if bi}
    if not wanted:
        return
    wanted -= set(own_indexes) if own_indexes is not None else own(conn, call_id)
    if wanted:
        conn.executemany("INSERT INTO call_numbers (bi, call_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                         [(bi, call_id) for bi in sorted(wanted)])


def drop_own(conn: Any, call_id: str, own_indexes: Iterable[str]) -> None:
    """Delete index rows that repeat the call's own caller or callee (a row rewritten so that a
    number it named elsewhere is now its caller or callee; the row finds it now)."""
    values = sorted({str(v) for v in own_indexes if v})
    if values:
        marks = ",".join("?" * len(values))
        conn.execute(f"DELETE FROM call_numbers WHERE call_id = ? AND bi IN ({marks})", [call_id, *values])
