"""The data step that gives each sealed call row older versions wrote without one its
``call_sealed`` ledger entry.

Why: the ledger records a call's first seal (``recording.call_seal.SEALED_EVENT``) since the seal's
ledger entry exists; rows sealed before that have none.  Two checks stand on that entry: the
operator service's four-eyes check (``call_seal.call_seal_problem``) takes a bare unsealed row
for a sealed row replaced by an insider only when the ledger says the call was sealed, and
``verify`` (``call_seal.vanished_calls``) finds a sealed row deleted by hand only through it.  So
for an older call an insider with catalog write could put an unsealed stand-in (no rule, no tags)
in place of the sealed row and the service would play it without a grant; or delete the row and
nothing would say so.

:func:`run` (``pbx-recorder catalog migrate``) walks the calls that have a seal in ``call_id``
batches.  For each batch it reads which of them the ledger names in no ``call_sealed`` or
``call_removed`` entry, checks each such row's current seal with the signing key's public half
(its numbers opened and matched against their blind indexes, as ``verify`` does), and in one
transaction per batch re-reads those rows and the ledger and appends a ``call_sealed`` entry
(payload ``{"by": "catalog migrate"}``) for each row that is still as it was checked and still
has no entry.  Never entered, counted and named (ids only, at most :data:`step_walk.MAX_NAMED`), and the
step stays open until a walk ends without one: a row whose seal does not verify (``verify``
reports it; the service already asks for a grant for it), and a sealed row whose last entry is
its removal (the recorder writes ``call_sealed`` with every row it seals anew, so that is an
erased or removed call's old row put back by hand; ``verify`` reports it too).  Resumable: the
cursor is saved with each batch.  Nothing here logs a number.

A stand-in put in place of an older sealed row, or an older sealed row deleted, BEFORE this step
ran stays as undetectable as it was: the step enters the rows it finds sealed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pbx_recorder.catalog import step_walk
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.recording import ledger
from pbx_recorder.recording.call_seal import REMOVED_EVENT, SEALED_EVENT, ledger_id, seal_problem

log = logging.getLogger(__name__)

STATE = "sealed_entries_pass"
DEFAULT_BATCH = 500
#: the payload of the entries this step writes (a call sealed by the recorder has none)
PAYLOAD = {"by": "catalog migrate"}


@dataclass
class Report:
    calls: int = 0  # sealed call rows walked
    recorded: int = 0  # of them given their call_sealed entry
    broken: int = 0  # without an entry whose seal does not verify (or whose numbers do not open)
    resurrected: int = 0  # sealed rows whose last entry is their removal: not entered
    changed: int = 0  # changed by another writer during the walk (tried again next run)
    errors: list[str] = field(default_factory=list)  # "<id>: why" (at most step_walk.MAX_NAMED)
    done: bool = False
    skipped: bool = False  # done by an earlier run

    @property
    def left(self) -> int:
        return self.broken + self.resurrected + self.changed


def pending(conn: Any) -> bool:
    """Has this step still to run over this catalog?"""
    return step_walk.pending(conn, STATE)



def last_entries(conn: Any, ids: list[str]) -> dict[str, str]:
    """Call id -> the event of its last ``call_sealed`` / ``call_removed`` ledger entry (absent:
    none), for ``ids`` (the ledger's recording index, one query)."""
    if not ids:
        return {}
    keys = {ledger_id(c): c for c in ids}
    last: dict[str, str] = {}
    cur = conn.execute(f"SELECT recording_id, event FROM ledger WHERE recording_id IN "
                       f"({','.join('?' * len(keys))}) AND event IN (?, ?) ORDER BY seq",
                       (*keys, SEALED_EVENT, REMOVED_EVENT))
    for key, event in cur.fetchall():
        last[keys[str(key)]] = str(event)
    return last


def _read(conn: Any, ids: list[str], public_key: Ed25519PublicKey, numbers: NumberProtection | None,
          report: Report) -> dict[str, dict[str, Any]]:
    """The rows of ``ids`` that the ledger names in no seal entry and whose seal verifies (outside
    any transaction); the others that cannot be entered counted and named."""
    last = last_entries(conn, ids)
    for call_id in sorted(c for c, event in last.items() if event == REMOVED_EVENT):
        report.resurrected += 1
        step_walk.name(report.errors,
                       f"{call_id}: sealed row present after the ledger recorded its removal; no ledger "
                       "entry written (see `pbx-recorder verify`)")
    out = {}
    for call_id, row in sorted(step_walk.call_rows(conn, [c for c in ids if c not in last]).items()):
        try:
            _, why = seal_problem(row, public_key, numbers)
        except (TypeError, ValueError) as exc:  # a cell no writer of ours makes
            why = f"the row cannot be checked ({type(exc).__name__})"
        if why:
            report.broken += 1
            step_walk.name(report.errors,
                           f"{call_id}: {why}; no ledger entry written (see `pbx-recorder verify`)")
        else:
            out[call_id] = row
    return out


def _write(conn: Any, checked: dict[str, dict[str, Any]], now: float, report: Report) -> None:
    """The entries of the ``checked`` rows still as they were read and still without a seal entry
    (in the caller's transaction)."""
    ids = sorted(checked)
    still = step_walk.call_rows(conn, ids, lock=True)
    entered = last_entries(conn, ids)
    with ledger.appending(conn):
        for call_id in ids:
            row = still.get(call_id)
            if row is None or call_id in entered:
                continue  # erased since, or sealed by the recorder meanwhile (its entry is there)
            if row != checked[call_id]:
                report.changed += 1
                step_walk.name(report.errors,
                               f"{call_id}: changed while it was read (tried again by the next run)")
                continue
            ledger.append(conn, SEALED_EVENT, ledger_id(call_id), PAYLOAD, now)
            report.recorded += 1


def run(conn: Any, numbers: NumberProtection | None, public_key: Ed25519PublicKey, *,
        batch: int = DEFAULT_BATCH, force: bool = False, clock: Callable[[], float] = time.time,
        progress: Callable[[str, int], None] | None = None) -> Report:
    """Give older sealed rows their ``call_sealed`` entry; see the module's text."""
    report = Report()
    step_walk.run(
        conn, STATE, report, force=force, label="sealed calls' ledger entries", progress=progress,
        ids=lambda cursor: [str(r[0]) for r in conn.execute(
            "SELECT call_id FROM calls WHERE call_id > ? AND seal != '' ORDER BY call_id LIMIT ?",
            (cursor, batch)).fetchall()],
        read=lambda ids: _read(conn, ids, public_key, numbers, report),
        write=lambda checked: _write(conn, checked, clock(), report) if checked else None,
        left=lambda: report.left)
    for line in report.errors:
        log.warning("call_sealed entry not written: %s", line)
    log.info("sealed-entries data step: %d sealed calls walked, %d given their call_sealed entry, %d with a "
             "broken seal, %d present after their removal, %d changed, done=%s", report.calls,
             report.recorded, report.broken, report.resurrected, report.changed, report.done)
    return report
