"""The reads of the bulk path made once per batch instead of once per call.

``Catalog.write_calls`` writes each call through the per-call methods, which read before they
write: the collision check reads the call's stored row, the ledger's ``stored`` hook reads the
recording's entries (a retry appends no second one), and on PostgreSQL the new row's
``INSERT ... RETURNING`` says whether it went in.  On PostgreSQL each of those reads is a round
trip that empties the pipeline (three a call: the bulk path's main cost there after its own
Python).  Inside a batch they are made once for all its calls instead:

* :func:`calls_by_id`: every call's stored row (or None) in one statement per ``CHUNK`` ids,
  served once each (``KnownReads.stored_call``); a second write of the same call in the batch
  reads the table again, so it sees the first.
* the ledger's entries of the batch's recordings: ``ledger.entries_known``.
* the ``RETURNING`` answers of new rows are collected and read at the batch's end
  (``KnownReads.check_inserts``): a row that did not go in (a pipeline's stand-in row that is not
  bare appeared meanwhile) raises :class:`StandInMoved`, the transaction is rolled back, and the
  batch is written again with each call read on its own (the per-call path's read-back).

All of it runs inside the batch's write transaction, which holds the catalog's write lock: no
other writer that takes it can change what was read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pbx_recorder.errors import CatalogError

#: ids per prefetch statement (well under SQLite's and PostgreSQL's bound-parameter limits)
CHUNK = 500


class StandInMoved(CatalogError):
    """A new call row of a batch did not go in: another connection's row holds its id."""


def chunks(keys: Sequence[str], size: int = CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(keys), size):
        yield keys[start:start + size]


def calls_by_id(conn: Any, call_ids: Iterable[str]) -> dict[str, Any]:
    """Each id's stored call row, None where the catalog has none."""
    found: dict[str, Any] = dict.fromkeys(call_ids)
    for chunk in chunks(list(found)):
        sql = f"SELECT * FROM calls WHERE call_id IN ({', '.join('?' * len(chunk))})"
        for row in conn.execute(sql, list(chunk)).fetchall():
            found[str(row["call_id"])] = row
    return found


@dataclass
class KnownReads:
    """What a batch read up front (``Catalog._local.known``), each answer served once."""

    calls: dict[str, Any] = field(default_factory=dict)
    #: (call id, the cursor of its INSERT ... RETURNING) not read yet; None: read each at once
    inserts: list[tuple[str, Any]] | None = None

    def stored_call(self, conn: Any, call_id: str) -> Any:
        if call_id in self.calls:
            return self.calls.pop(call_id)
        return conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()

    def check_inserts(self) -> None:
        """Read the collected ``RETURNING`` answers (one wait for all of them)."""
        for call_id, cursor in self.inserts or ():
            if cursor.fetchone() is None:
                raise StandInMoved(f"call {call_id}: another row took its id during the batch")
        if self.inserts is not None:
            self.inserts.clear()
