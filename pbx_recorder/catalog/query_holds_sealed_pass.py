"""``catalog migrate`` (and ``keys rotate``): query holds' stored queries sealed under the current
catalog key, each change a ``hold_rekeyed`` ledger entry.

Before this version a query hold kept its query in clear in ``holds.value`` (its number filters as
blind indexes since schema 15, but ``agent``, ``did`` and the other free fields as typed: a remote
agent's dial string names a number).  A new hold stores one token bound to the hold id
(``lifecycle.query_hold_rows.sealed``).  This pass seals the rows in clear and seals again a token
written under a key other than the current one (``keys rotate`` runs it, so the old key can be
retired: ``recording.rekey.still_under_other_keys`` counts these tokens too).

Holds are tamper-evident: the ledger keeps the SHA-256 of each hold's stored value and ``verify``
compares.  Rewriting the value is therefore one transaction with a ``hold_rekeyed`` entry of the
new value's digest (``lifecycle.holds.note_rekeyed``), the writer ``keys rotate-index`` already
uses for caller holds.  A row whose value does not match the ledger's digest now (edited by hand)
or that has no ledger entry is left as it is and named: sealing it would write a fresh digest
over the edit and hide it from ``verify``.  The holds of a catalog from before hold entries get
theirs first (``HoldManager.record_old_holds``), so every sealed row has a ledger entry to follow.
The holds table is small: one transaction for the whole pass; a token under the current key is
only read, so a second run changes nothing.  The hold's audit rows from before keep what the audit
writer kept then (numbers masked there).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pbx_recorder.catalog import engine
from pbx_recorder.catalog.number_protection import is_token, token_key_id
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.errors import CryptoError

log = logging.getLogger(__name__)


@dataclass
class Report:
    read: int = 0  # query holds read
    sealed: int = 0  # in clear before, sealed now
    resealed: int = 0  # a token under another key, sealed again under the current one
    left: list[str] = field(default_factory=list)  # "<hold id>: why" (not changed: see verify)


def _needs(value: str, current: str) -> bool:
    return not is_token(value) or token_key_id(value) != current


def pending(conn: Any, numbers: NumberProtection | None) -> bool:
    """Is a query hold still in clear, or sealed under a key other than the current one?"""
    if numbers is None:
        return False
    current = numbers.cipher.current_key_id
    values = conn.execute("SELECT value FROM holds WHERE scope = 'query'").fetchall()
    return any(_needs(str(v), current) for (v,) in values)


def run(conn: Any, numbers: NumberProtection, *, now: float | None = None) -> Report:
    """Seal every query hold in clear, and seal again each token under another key (see the
    module doc: a row the ledger contradicts is left and named in ``Report.left``)."""
    from pbx_recorder.lifecycle.holds import HoldManager, note_rekeyed
    from pbx_recorder.lifecycle.journal import Tx
    from pbx_recorder.lifecycle.query_hold_rows import opened, seal_text
    from pbx_recorder.recording.verify_bindings import hold_ledger, hold_value_digest

    now = time.time() if now is None else now
    report = Report()
    current = numbers.cipher.current_key_id
    HoldManager(conn, {}, hash_key=b"", numbers=numbers).record_old_holds()
    with Tx(conn):
        said = hold_ledger(conn)
        holds = conn.execute("SELECT hold_id, value, value4 FROM holds WHERE scope = 'query' "
                             "ORDER BY hold_id").fetchall()
        for hold_id, value, value4 in holds:
            hold_id, value, value4 = str(hold_id), str(value or ""), str(value4 or "")
            report.read += 1
            if not _needs(value, current):
                continue
            entry = said.get(hold_id)
            if entry is None or entry["value_sha256"] != hold_value_digest(value, value4):
                report.left.append(f"{hold_id}: its value differs from the ledger (run verify)"
                                   if entry else f"{hold_id}: no ledger entry (run verify)")
                continue
            try:
                text = opened(numbers, hold_id, value)
            except CryptoError as exc:
                report.left.append(f"{hold_id}: {exc}")
                continue
            token = seal_text(numbers, hold_id, text)
            conn.execute("UPDATE holds SET value = ? WHERE hold_id = ?", (token, hold_id))
            note_rekeyed(conn, hold_id, token, value4, now,
                         sealed_under=current, was="token" if is_token(value) else "clear")
            if is_token(value):
                report.resealed += 1
            else:
                report.sealed += 1
    if report.sealed:
        engine.compact(conn)  # (SQLite: the WAL loses the pages before; secure_delete zeroed the cells)
    log.info("query holds: %d read, %d sealed, %d sealed again under %s, %d left (%s)", report.read,
             report.sealed, report.resealed, current, len(report.left), "; ".join(report.left))
    return report
