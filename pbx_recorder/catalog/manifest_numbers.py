"""The data step of schema 12: the numbers of manifests stored under schema 11 before it, sealed.

From schema 11 until schema 12 a recording's row kept no copy of its signed manifest's numbers,
and nothing else in the catalog held a number only the manifest named (``catalog.extra_numbers``):
its index row in ``call_numbers`` could not be re-made by ``keys rotate-index``.  Migration 12 (and
Alembic ``0012``) leaves a marker in ``catalog_settings`` (``manifest_numbers_pass``, with the time
it ran, ``upto``) on a catalog that has recordings; :func:`run` (``pbx-recorder catalog migrate``)
walks the rows with a manifest hash created until then, in ``recording_id`` batches, and for each
stored one reads its signed manifest from its tier (decrypted with the recording's data key),
checks it against ``manifest_sha256`` and its Ed25519 signature first, then, in one transaction
per batch: indexes its numbers under the current index key (a rotation run before this step had
dropped them: they are back) and seals those the call's row does not hold.  Storage is read
between the batches' transactions, never inside one.

Resumable: the cursor is saved with each batch.  A manifest that cannot be read now (an archive
class not restored, a tier down, a missing key ring) or does not verify is listed (at most
:data:`MAX_LISTED` ids; more, and the next run walks everything again) and tried again by the next
run; the step is done when the walk has ended with none left.  Until then ``keys rotate-index``
refuses to start (``pending``).  Rows of recordings that are gone (erased, expired) have nothing
left to read and are passed over.  Nothing here logs a number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pbx_recorder.catalog import extra_numbers, named_rows, step_state
from pbx_recorder.catalog.manifest_shrink import STORED_STATES
from pbx_recorder.catalog.protected_rows import (
    MANIFEST_FIELDS,
    MANIFEST_TOKEN,
    NumberProtection,
    named_digits,
)
from pbx_recorder.errors import CryptoError, NotFound, StorageError
from pbx_recorder.recording import manifest_copy, stored_manifest
from pbx_recorder.recording.signing import verify_manifest
from storage.base import Tier
from storage.hashing import digests_equal
from storage.keyring import KeyRing

log = logging.getLogger(__name__)

STATE = "manifest_numbers_pass"
DEFAULT_BATCH = 200
MAX_LISTED = 10_000


@dataclass
class Report:
    read: int = 0  # signed manifests read from storage and verified
    sealed: int = 0  # calls that got numbers their row does not hold
    gone: int = 0  # rows of recordings no longer stored (nothing to read)
    unread: list[str] = field(default_factory=list)  # "<recording id>: why", tried again next run
    done: bool = False


def load_state(conn: Any) -> dict[str, Any] | None:
    return step_state.load(conn, STATE)


def pending(conn: Any) -> str:
    """'' when no manifest stored under schema 11 waits for this step; else what waits."""
    state = load_state(conn)
    if state is None or state.get("done"):
        return ""
    left = len(state.get("unread", []))
    if state.get("walked") and not state.get("overflow"):
        return f"{left} signed manifest(s) stored under schema 11 could not be read or verified yet"
    return "the signed manifests stored under schema 11 have not all been read back yet"


def _needs_reading(row: Mapping[str, Any]) -> bool:
    copy = manifest_copy.parse(row.get("manifest"))
    # a copy written without number protection keeps its numbers (the data step sealed them)
    return not any(f in copy for f in (*MANIFEST_FIELDS, MANIFEST_TOKEN))


def _read(row: Mapping[str, Any], tiers: Mapping[str, Tier], keyring: KeyRing | None,
          public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The row's stored signed manifest, verified; ValueError naming what is wrong."""
    tier = tiers.get(str(row.get("tier") or ""))
    if tier is None:
        raise ValueError(f"tier {row.get('tier')!r} is not configured")
    try:
        signed = stored_manifest.read_signed(row, tier, keyring)
    except (StorageError, NotFound, CryptoError) as exc:  # (ObjectNotRestored, KeyRingNeeded among them)
        raise ValueError(f"not readable ({type(exc).__name__}: {exc})") from exc
    if not digests_equal(manifest_copy.signed_sha256(signed), str(row["manifest_sha256"])):
        raise ValueError("the stored manifest differs from the catalog's hash of it")
    if not row.get("signature") or not verify_manifest(signed, str(row["signature"]), public_key):
        raise ValueError("the stored manifest's signature does not verify")
    if signed.get("recording_id") != row["recording_id"] or signed.get("call_id") != row["call_id"]:
        raise ValueError("the stored manifest is another recording's")
    return signed


def _rows(conn: Any, state: dict[str, Any], batch: int) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT * FROM recordings WHERE recording_id > ? AND manifest_sha256 <> '' AND "
                       "created_at <= ? ORDER BY recording_id LIMIT ?",
                       (state.get("cursor", ""), float(state.get("upto", 0)), batch))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]


def _listed(conn: Any, rids: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(rids), 500):
        part = rids[start:start + 500]
        marks = ",".join("?" * len(part))
        cur = conn.execute(f"SELECT * FROM recordings WHERE recording_id IN ({marks})", part)
        names = [d[0] for d in cur.description]
        out += [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
    return out


def gather(rows: list[dict[str, Any]], tiers: Mapping[str, Tier], keyring: KeyRing | None,
           public_key: Ed25519PublicKey, report: Report) -> tuple[list[tuple[str, set[str]]], list[str]]:
    """Read and verify the manifests of ``rows`` (no transaction open): (call id, the numbers its
    manifest names) of each, and the ids left unread.  (``catalog.manifest_named_pass`` reads
    those of the calls that keep extra numbers with it.)"""
    found: list[tuple[str, set[str]]] = []
    unread: list[str] = []
    states = set(STORED_STATES)
    for row in rows:
        rid = str(row["recording_id"])
        if str(row.get("state")) not in states:
            report.gone += 1
            continue
        if not _needs_reading(row):
            continue
        try:
            signed = _read(row, tiers, keyring, public_key)
        except ValueError as exc:
            unread.append(rid)
            report.unread.append(f"{rid}: {exc}")
            continue
        report.read += 1
        found.append((str(row["call_id"]), named_digits(signed.get("cdr"), signed.get("callee_num"))))
    return found, unread


def _commit(conn: Any, numbers: NumberProtection, found: list[tuple[str, set[str]]], state: dict[str, Any],
            report: Report) -> None:
    """Index and seal what one batch's verified manifests name, and the state after it: one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for call_id, digits in found:
            # (a rotation run before this step had dropped them; none for the row's own numbers)
            named_rows.insert(conn, call_id, numbers.named_index(*digits).values())
            extra = digits - extra_numbers.row_digits(conn, numbers, call_id)
            if extra - extra_numbers.of_call(conn, numbers, call_id):
                report.sealed += 1
            extra_numbers.add(conn, numbers, call_id, extra)
        conn.execute("UPDATE catalog_settings SET value = ? WHERE name = ?",
                     (json.dumps(state, sort_keys=True), STATE))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def run(conn: Any, numbers: NumberProtection, tiers: Mapping[str, Tier], keyring: KeyRing | None,
        public_key: Ed25519PublicKey, *, batch: int = DEFAULT_BATCH) -> Report:
    """Seal the numbers of the manifests stored under schema 11 before schema 12; see the module doc."""
    report = Report()
    state = load_state(conn)
    if state is None or state.get("done"):
        report.done = True
        return report
    if state.get("walked") and not state.get("overflow"):  # the walk ended: the listed ones again
        found, unread = gather(_listed(conn, [str(r) for r in state.get("unread", [])]), tiers, keyring,
                               public_key, report)
        state = {**state, "unread": unread, "done": not unread}
        _commit(conn, numbers, found, state, report)
    else:
        if state.get("walked"):  # more were unread than listed: walk everything again
            state = {**state, "cursor": "", "unread": [], "overflow": False, "walked": False}
        unread = [str(r) for r in state.get("unread", [])]
        overflow = bool(state.get("overflow"))
        while rows := _rows(conn, state, batch):
            found, more = gather(rows, tiers, keyring, public_key, report)
            unread += more
            overflow = overflow or len(unread) > MAX_LISTED
            state = {**state, "cursor": str(rows[-1]["recording_id"]), "unread": unread[:MAX_LISTED],
                     "overflow": overflow}
            _commit(conn, numbers, found, state, report)
        state = {**state, "walked": True, "cursor": "", "done": not unread and not overflow}
        _commit(conn, numbers, [], state, report)
    report.done = bool(state["done"])
    for line in report.unread[:20]:
        log.warning("signed manifest not read back: %s", line)
    log.info("schema 12 data step: %d signed manifests read, %d calls got sealed numbers, %d unread, done=%s",
             report.read, report.sealed, len(report.unread), report.done)
    return report
