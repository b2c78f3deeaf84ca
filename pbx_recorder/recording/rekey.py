"""Master-key rotation: re-wrap every recording's data key, never touch the audio.

For each encrypted recording whose ``key_id`` is not the new one, the DEK is unwrapped
with its current master key and wrapped with the new one; the row update and a ``rekeyed``
ledger entry commit together, one transaction per batch.  The update is conditional on the
old (key_id, wrapped_key), so a concurrent writer is never overwritten.  Rows whose old
key is missing are reported, not fatal.  Afterwards the old key can be retired, but only once
:func:`still_under_other_keys` finds nothing: the pass pages by ``recording_id``, and a row another
node stores meanwhile can sort behind the cursor (ids start with the node name), so "the pass
finished" does not mean "no row needs the old key".
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pbx_recorder.catalog import engine
from pbx_recorder.catalog.number_protection import PREFIX, is_token, token_key_id
from pbx_recorder.catalog.protected_rows import MANIFEST_TOKEN
from pbx_recorder.errors import CatalogError, CryptoError
from pbx_recorder.recording import ledger
from storage.envelope import rewrap
from storage.keyring import KeyRing

log = logging.getLogger(__name__)


@dataclass
class RotationReport:
    new_key_id: str
    generated: bool = False
    rewrapped: int = 0
    already: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (recording_id, reason)
    by_old_key: dict[str, int] = field(default_factory=dict)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction for autocommit (isolation_level=None) and legacy connections alike."""
    if conn.in_transaction:
        yield conn  # the caller's transaction
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def rotate(conn: sqlite3.Connection, keyring: KeyRing, new_key_id: str, *, now: float,
           batch_size: int = 200, generate: bool = True) -> RotationReport:
    report = RotationReport(new_key_id)
    if not keyring.has(new_key_id):
        if not generate:
            raise CryptoError(f"master key {new_key_id!r} does not exist")
        keyring.generate(new_key_id)
        report.generated = True
    report.already = conn.execute("SELECT COUNT(*) FROM recordings WHERE encrypted = 1 AND key_id = ?",
                                  (new_key_id,)).fetchone()[0]
    last = ""
    while True:
        batch = conn.execute(
            "SELECT recording_id, key_id, wrapped_key FROM recordings WHERE encrypted = 1 "
            "AND wrapped_key != '' AND key_id != ? AND recording_id > ? ORDER BY recording_id LIMIT ?",
            (new_key_id, last, batch_size)).fetchall()
        if not batch:
            return report
        last = batch[-1][0]
        try:
            with transaction(conn):
                for rid, old_id, wrapped in batch:
                    _rekey_one(conn, keyring, report, rid, old_id, wrapped, now)
        except engine.db_errors() as exc:
            raise CatalogError(f"key rotation batch ending at {last} failed: {exc}") from exc
        log.info("key rotation to %s: %d re-wrapped so far", new_key_id, report.rewrapped)


def _rekey_one(conn: sqlite3.Connection, keyring: KeyRing, report: RotationReport, rid: str, old_id: str,
               wrapped: str, now: float) -> None:
    try:
        new_wrapped = rewrap(wrapped, old_id, keyring, report.new_key_id)
    except CryptoError as exc:
        report.failed.append((rid, str(exc)))
        log.error("recording %s: cannot re-wrap data key: %s", rid, exc)
        return
    cur = conn.execute("UPDATE recordings SET key_id = ?, wrapped_key = ? "
                       "WHERE recording_id = ? AND key_id = ? AND wrapped_key = ?",
                       (report.new_key_id, new_wrapped, rid, old_id, wrapped))
    if cur.rowcount != 1:
        report.failed.append((rid, "row changed during rotation; run again"))
        return
    ledger.append(conn, "rekeyed", rid, {"from_key_id": old_id, "to_key_id": report.new_key_id,
                                         "wrapped_key_sha256": ledger.wrapped_key_digest(new_wrapped)}, now)
    report.rewrapped += 1
    report.by_old_key[old_id] = report.by_old_key.get(old_id, 0) + 1


#: (table, key column, token column) of the catalog values that hold one number token each
_TOKEN_COLUMNS = (("calls", "call_id", "numbers"), ("live_calls", "call_id", "state"),
                  ("call_extra_numbers", "call_id", "numbers"),
                  ("holds", "hold_id", "value"),  # a query hold's query (caller holds: no token)
                  ("saved_searches", "name", "query"))


def still_under_other_keys(conn: sqlite3.Connection, key_id: str, *,
                           batch_size: int = 1000) -> dict[str, int]:
    """How many catalog values still need a master key other than ``key_id``, per kind (only
    kinds with some): recordings whose data key is wrapped under another key, and number tokens
    (``calls``, ``live_calls``, ``call_extra_numbers``, a manifest's sealed numbers) written under
    another key.  Counted fresh, right before a retirement; any count > 0 forbids it."""
    found: dict[str, int] = {}
    n = conn.execute("SELECT COUNT(*) FROM recordings WHERE encrypted = 1 AND wrapped_key != '' "
                     "AND key_id != ?", (key_id,)).fetchone()[0]
    if n:
        found["recordings (data keys)"] = int(n)
    # a token is "pn1:<key id>:...": the prefix is compared, not LIKE'd ('_' is a LIKE wildcard)
    mine, any_token = f"{PREFIX}:{key_id}:", f"{PREFIX}:"
    for table, _, column in _TOKEN_COLUMNS:
        n = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE substr({column}, 1, ?) = ? "
                         f"AND substr({column}, 1, ?) != ?",
                         (len(any_token), any_token, len(mine), mine)).fetchone()[0]
        if n:
            found[f"{table}.{column} (number tokens)"] = int(n)
    n = _manifests_under_other_keys(conn, key_id, batch_size)
    if n:
        found["recordings.manifest (number tokens)"] = n
    return found


def _manifests_under_other_keys(conn: sqlite3.Connection, key_id: str, batch_size: int) -> int:
    """Manifests are JSON texts: read the ones that hold a token at all, page by page."""
    last, count = "", 0
    while True:
        rows = conn.execute("SELECT recording_id, manifest FROM recordings WHERE recording_id > ? "
                            "AND manifest LIKE ? ORDER BY recording_id LIMIT ?",
                            (last, f"%{PREFIX}:%", batch_size)).fetchall()
        if not rows:
            return count
        last = rows[-1][0]
        for _, manifest in rows:
            try:
                m = json.loads(manifest) if isinstance(manifest, str) else manifest
            except ValueError:
                continue
            token = m.get(MANIFEST_TOKEN) if isinstance(m, dict) else None
            if is_token(token) and token_key_id(str(token)) != key_id:
                count += 1
