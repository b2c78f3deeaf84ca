"""The data step that re-derives the numbers only a recording's signed manifest names, from the
manifest itself (the named-numbers pass reads what the catalog holds; this reads storage).

Where such numbers are: a signed manifest holds a part of its call's CDR as it was when the call
ended (``recording.manifest.CDR_FIELDS``: ``src``, ``dst``, ``agent``, ``queue``, ``accountcode``
and times; never ``channel``, ``dstchannel``, ``lastdata``, ``userfield``, ``clid``), the dialed
``callee_num`` and the DID.  The call's row holds the whole CDR.  So a manifest names a number
its call's row does not only when the row changed after the manifest was made: a later CDR
(``cdr_late``) became the call's.  Every writer keeps such a number, sealed, in
``call_extra_numbers`` (``catalog.extra_numbers``: at store time since schema 12, by the schema-12
step for rows stored under schema 11, by the schema-11 shrink for older copies) - but as the digits
the number finder of its day found.  Until this version the finder glued a number to what
followed it in a dial string (``agent`` ``SIP/<number>-00000001`` gave ``<number>00000001``) or to
the escape of a CJK character before it.  Digits cannot be cut apart again, so
``named_numbers_pass`` indexes kept numbers as they were kept, and ``erase --caller <number>`` did
not find such a call.

:func:`run` (``pbx-recorder catalog migrate``) reads back the signed manifests of the calls that
keep extra numbers, and only of those: a call without a ``call_extra_numbers`` row has no number a
manifest of it names that its row does not (at 10 M calls: the calls with a late CDR, not every
manifest in every tier).  Walked in ``call_id`` batches: the batch's stored manifests are read
from their tier (decrypted with the recording's data key) and checked against ``manifest_sha256``
and their Ed25519 signature first (``manifest_numbers.gather``; a row whose catalog copy still
holds its numbers is left to ``named_numbers_pass``, which reads it locally), outside any
transaction; then, in one transaction per batch, today's finder's numbers get the index rows they
lack (a number indexed under either key while a key rotation runs is not indexed again) and are
kept sealed with the call's extra numbers when its row does not name them (so ``keys
rotate-index`` re-makes them).  A call erased between the read and the write gets nothing back.

Resumable: the cursor is saved with each batch.  A manifest that cannot be read now (an archive
class not restored, a tier down) or does not verify, or a call whose tokens do not open, is
counted and named (ids only, at most :data:`step_walk.MAX_NAMED`); the step is done only when a walk ended
with none (the next run walks again).  Once done it is not run again, unless ``--force``.  Nothing
here logs a number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pbx_recorder.catalog import extra_numbers, manifest_numbers, named_rows, step_walk
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.errors import CryptoError
from storage.base import Tier
from storage.keyring import KeyRing

log = logging.getLogger(__name__)

STATE = "manifest_named_pass"
DEFAULT_BATCH = 200


@dataclass
class Report:
    calls: int = 0  # calls with extra numbers walked
    read: int = 0  # signed manifests read back and verified
    indexed: int = 0  # calls that got index rows they lacked
    rows: int = 0  # index rows added
    unread: int = 0  # manifests not read or not verified (tried again by the next run)
    failed: int = 0  # calls whose tokens did not open
    errors: list[str] = field(default_factory=list)  # "<id>: why" (at most step_walk.MAX_NAMED)
    done: bool = False
    skipped: bool = False  # done by an earlier run



def pending(conn: Any) -> bool:
    """Has this step still to run over this catalog?"""
    return step_walk.pending(conn, STATE)



def _recordings(conn: Any, call_ids: list[str]) -> list[dict[str, Any]]:
    """The rows of the calls' recordings whose signed manifest is stored apart (schema 11 on)."""
    marks = ",".join("?" * len(call_ids))
    cur = conn.execute(f"SELECT * FROM recordings WHERE call_id IN ({marks}) AND manifest_sha256 <> '' "
                       "ORDER BY recording_id", call_ids)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]


def _read(conn: Any, call_ids: list[str], tiers: Mapping[str, Tier], keyring: KeyRing | None,
          public_key: Ed25519PublicKey, report: Report) -> dict[str, set[str]]:
    """Call id -> the numbers (digits) its stored signed manifests name, by today's finder."""
    seen = manifest_numbers.Report()
    found, _ = manifest_numbers.gather(_recordings(conn, call_ids), tiers, keyring, public_key, seen)
    report.read += seen.read
    report.unread += len(seen.unread)
    for line in seen.unread:
        step_walk.name(report.errors, line)
    named: dict[str, set[str]] = {}
    for call_id, digits in found:
        named.setdefault(call_id, set()).update(digits)
    return named


def _write(conn: Any, numbers: NumberProtection, named: dict[str, set[str]], report: Report) -> None:
    """Index and keep what the batch's manifests name (in the caller's transaction)."""
    for call_id, digits in sorted(named.items()):
        if conn.execute("SELECT 1 FROM call_extra_numbers WHERE call_id = ?", (call_id,)).fetchone() is None:
            continue  # erased (or forgotten) since it was read: nothing comes back
        have = named_rows.indexed(conn, call_id)  # its own caller and callee, and its index rows
        lacking = {numbers.index.full_of_digits(d) for d in digits if have.isdisjoint(numbers.index.fulls(d))}
        try:
            kept = digits - extra_numbers.row_digits(conn, numbers, call_id)
            extra_numbers.add(conn, numbers, call_id, kept)
        except CryptoError as exc:  # one altered row must not stop the others
            report.failed += 1
            step_walk.name(report.errors, f"{call_id}: {exc}")
            continue
        if lacking:
            named_rows.insert(conn, call_id, lacking)
            report.indexed += 1
            report.rows += len(lacking)


def run(conn: Any, numbers: NumberProtection, tiers: Mapping[str, Tier], keyring: KeyRing | None,
        public_key: Ed25519PublicKey, *, batch: int = DEFAULT_BATCH, force: bool = False,
        progress: Callable[[str, int], None] | None = None) -> Report:
    """Index the numbers only a signed manifest names, read from storage; see the module doc."""
    report = Report()
    # (storage is read before the batch's transaction, never inside one)
    step_walk.run(
        conn, STATE, report, force=force, label="manifest numbers", progress=progress,
        ids=lambda cursor: [str(r[0]) for r in conn.execute(
            "SELECT call_id FROM call_extra_numbers WHERE call_id > ? ORDER BY call_id LIMIT ?",
            (cursor, batch)).fetchall()],
        read=lambda ids: _read(conn, ids, tiers, keyring, public_key, report) if ids else {},
        write=lambda named: _write(conn, numbers, named, report),
        left=lambda: report.unread + report.failed)
    for line in report.errors:
        log.warning("manifest numbers not re-derived: %s", line)
    log.info("manifest numbers data step: %d calls, %d manifests read, %d calls got %d index rows, "
             "%d unread, %d not opened, done=%s", report.calls, report.read, report.indexed, report.rows,
             report.unread, report.failed, report.done)
    return report
