"""Settling fresh calls: their number entries move from the small fresh indexes into the big ones
in one statement (schema 25, ``catalog.schema_fresh_numbers``).

A writer on SQLite inserts each new call marked fresh (``calls.fresh = 1``), so its number entries
land in ``calls_caller_fresh`` / ``calls_callee_fresh``, a few thousand entries whose pages stay
few.  :class:`Settler` counts what its writer inserted; every :data:`CHECK_EVERY` calls it counts
the fresh calls (a read of one small index) and from :data:`SETTLE_AT` on settles them all with one
``UPDATE`` inside the writer's transaction: the big indexes take 20,000 calls' entries at once and
each of their newest pages is written once for many calls.  The update commits or rolls back with
the transaction it runs in; a crash leaves calls fresh, which every read finds as before
(``protected_rows.in_both_parts``), and the next check settles them.

Searches cost the same either way: each part is one range of its own index.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pbx_recorder.catalog import engine
from pbx_recorder.catalog.schema_fresh_numbers import COLUMN, FRESH, SETTLED, fresh_index

#: fresh calls from which a check settles them (the fresh caller index then holds about 250 pages
#: of 8 KiB: a 1,000-call transaction dirties most of them, fewer than a big index's 1,000)
SETTLE_AT = 20_000
#: calls a writer inserts between two checks
CHECK_EVERY = 2_000
#: the index the count and the update walk (every fresh row has an entry in it)
_WALK = fresh_index("caller")


def _calls(conn: Any) -> str:
    """``calls``, on SQLite read through the fresh index (PostgreSQL has no ``INDEXED BY``)."""
    return "calls" if engine.is_postgres(conn) else f"calls INDEXED BY {_WALK}"


def fresh_count(conn: Any, cap: int = SETTLE_AT) -> int:
    """How many calls are fresh, counted up to ``cap`` (SQLite: a walk of the fresh index)."""
    row = conn.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {_calls(conn)} WHERE {FRESH} LIMIT ?) AS f",
                       (int(cap),)).fetchone()
    return int(row[0])


def settle(conn: Any) -> int:
    """Mark every fresh call settled (inside the caller's transaction); how many were."""
    cursor = conn.execute(f"UPDATE {_calls(conn)} SET {SETTLED} WHERE {FRESH}")
    return max(0, int(getattr(cursor, "rowcount", 0) or 0))


class Settler:
    """One catalog's fresh-call bookkeeping: whether its writers insert calls fresh (SQLite with
    schema 25; ``enabled`` False writes every call settled, as before: the bench's baseline), and
    the count of calls inserted since the last check."""

    def __init__(self, columns: list[str], postgres: bool) -> None:
        self.enabled = COLUMN in columns and not postgres
        self._since_check = 0
        self._lock = threading.Lock()
        #: settles run, calls they settled and the seconds they took (the bench and the tests read them)
        self.settles = 0
        self.settled = 0
        self.seconds = 0.0

    def column(self) -> dict[str, int]:
        """What a new call's insert binds besides its row: the fresh mark, or nothing."""
        return {COLUMN: 1} if self.enabled else {}

    def inserted(self, conn: Any) -> None:
        """A fresh call was inserted through ``conn`` (its transaction still open): check now and
        then, settle when enough are fresh."""
        with self._lock:
            self._since_check += 1
            if self._since_check < CHECK_EVERY:
                return
            self._since_check = 0
        started = time.perf_counter()
        if fresh_count(conn) >= SETTLE_AT:
            moved = settle(conn)
            with self._lock:
                self.settles += 1
                self.settled += moved
                self.seconds += time.perf_counter() - started
