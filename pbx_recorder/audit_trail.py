"""The audit log (catalog table ``audit_log``): its one writer, its chain check, its reader.

Every audit row goes through :func:`record`.  Rows are hash-chained like the ledger::

    entry = canonical_json({"id", "at", "actor", "role", "action", "target", "detail"})
    hash  = sha256(bytes.fromhex(prev_hash) || entry)        genesis prev_hash = "0" * 64

A row written by a process holding ``web.secret_key_file`` is *keyed*: its entry also holds
``"keyed": true`` and its ``mac`` column the HMAC of its hash (:mod:`pbx_recorder.audit_key`), so
a row written by hand after the last signed head is told apart (its MAC does not verify, or it is
not keyed after keyed rows), and removing a MAC breaks the row's hash.

``id`` is one more than the highest ever issued (row maximum or SQLite's AUTOINCREMENT counter),
so a removed row leaves a gap.  The chain head is signed outside the database by
``pbx_recorder.recording.chain_head`` (chain ``audit``), so truncation and a recomputed chain are caught
too.  Rows written before the chain existed (hash ``''``) are accepted only as a prefix.

No phone number is ever written in clear: number-bearing detail keys and any value that is a
bare number are masked (``pbx_recorder.core.masking``) before hashing, so erasure never has to
rewrite a chained row.  Appends run in the caller's transaction when there is one (an
autocommit connection gets its own ``BEGIN IMMEDIATE``, which also keeps two writers from
forking the chain); on a connection with implicit transactions the row is committed at once,
because an audit row must survive whatever the command does next.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pbx_recorder import audit_key
from pbx_recorder.catalog import engine
from pbx_recorder.core.masking import NUMBER_KEYS, mask_field, mask_text, mask_value
from pbx_recorder.errors import CatalogError
from pbx_recorder.recording.manifest import canonical_json

GENESIS = "0" * 64
_BARE_NUMBER_DIGITS = 5  # a bare value with at least this many digits and nothing else is a number


@dataclass(frozen=True, slots=True)
class AuditProblem:
    id: int
    what: str
    expected: str = ""
    found: str = ""

    def __str__(self) -> str:
        text = f"audit row {self.id}: {self.what}"
        if self.expected or self.found:
            text += f" (expected {self.expected or '-'}, found {self.found or '-'})"
        return text


def _is_bare_number(value: str) -> bool:
    digits = sum(ch.isdigit() for ch in value)
    return digits >= _BARE_NUMBER_DIGITS and all(ch.isdigit() or ch in "+ -()." for ch in value) \
        and value.count(".") == 0


def scrub(value: Any, key: str = "") -> Any:
    """``value`` with every number masked (number-bearing keys, bare numbers anywhere)."""
    if isinstance(value, Mapping):
        return {str(k): scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, key) for v in value]
    if key.lower() in NUMBER_KEYS:
        return mask_value(key, value)
    if isinstance(value, str):  # free text (a hold reason ...): phone-number-like runs masked
        return mask_field(value) if _is_bare_number(value) else mask_text(value)
    return value


def entry_bytes(row_id: int, at: float, actor: str, role: str, action: str, target: str,
                detail: Any, keyed: bool = False) -> bytes:
    entry = {"id": row_id, "at": at, "actor": actor, "role": role, "action": action, "target": target,
             "detail": detail}
    if keyed:  # (rows before keying hash as they always did)
        entry["keyed"] = True
    return canonical_json(entry)


def entry_hash(prev: str, row_id: int, at: float, actor: str, role: str, action: str, target: str,
               detail: Any, keyed: bool = False) -> str:
    return hashlib.sha256(bytes.fromhex(prev) + entry_bytes(row_id, at, actor, role, action, target, detail,
                                                            keyed)).hexdigest()


def _issued_max(conn: sqlite3.Connection) -> int:
    return engine.issued_max(conn, "audit_log")


def record(conn: sqlite3.Connection, *, actor: str, role: str, action: str, target: str = "",
           detail: Mapping[str, Any] | None = None, now: float) -> tuple[int, str]:
    """Append one audit row; returns (id, hash).  In a transaction of its own unless the caller
    has one open (a refused append rolls its own back: never left holding the write lock)."""

    def append() -> tuple[int, str]:
        row_id, prev, key = _next_link(conn)
        values = _entry(row_id, prev, key, now, actor, role, action, target, detail)
        conn.execute(INSERT, values)
        engine.note_issued(conn, "audit_log", row_id)
        return row_id, str(values[8])

    if not conn.in_transaction:
        with engine.write_transaction(conn, APPEND_FAILED):
            return append()
    try:
        engine.lock_writes(conn)
        return append()
    except engine.db_errors() as exc:
        raise CatalogError(f"{APPEND_FAILED}: {exc}") from exc


APPEND_FAILED = "audit log append failed"


INSERT = ("INSERT INTO audit_log (id, at, actor, role, action, target, detail, prev_hash, hash, mac) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _next_link(conn: sqlite3.Connection) -> tuple[int, str, bytes | None]:
    """Inside the write transaction: the next row's id, the hash it links to, and the audit key
    (None: this process has none; refused when the rows are keyed already)."""
    head = conn.execute("SELECT id, hash, mac FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev = head[1] if head and head[1] else GENESIS
    row_id = max(head[0] if head else 0, _issued_max(conn)) + 1
    key = audit_key.for_connection(conn)
    if key is None and head is not None and head[2]:
        # fail closed: an unkeyed row after keyed ones is what a forged row looks like
        raise CatalogError("audit log append refused: the audit rows are keyed and this process "
                           "has no key (web.secret_key_file unreadable or not configured here: "
                           "run as the recorder's account with its configuration)")
    return row_id, prev, key


def _body(detail: Mapping[str, Any] | None) -> Any:
    """A row's detail as stored: numbers scrubbed, through JSON (what is hashed is what is read)."""
    return json.loads(json.dumps(scrub(dict(detail or {})), sort_keys=True, default=str))


def _entry(row_id: int, prev: str, key: bytes | None, now: float, actor: str, role: str, action: str,
           target: str, detail: Mapping[str, Any] | None, body: Any = None) -> tuple[Any, ...]:
    """The values of one row (:data:`INSERT`'s order), numbers scrubbed, linked to ``prev``
    (``body``: the detail through :func:`_body` already)."""
    clean_target = str(scrub(str(target or "")))
    body = _body(detail) if body is None else body
    digest = entry_hash(prev, row_id, float(now), actor, role, action, clean_target, body, key is not None)
    return (row_id, float(now), actor, role, action, clean_target, canonical_json(body).decode("utf-8"), prev,
            digest, audit_key.mac(key, digest) if key is not None else "")


BATCH_ROWS = 500  # rows of record_many a transaction: the writers of the catalog wait for no longer


def record_many(conn: sqlite3.Connection, entries: Iterable[tuple[str, Mapping[str, Any]]], *, actor: str,
                role: str, action: str, now: float, after_batch: Callable[[int], None] | None = None) -> int:
    """One audit row per (target, detail) of ``entries``, each chained exactly as :func:`record`
    chains one, :data:`BATCH_ROWS` rows a transaction (an export's hundreds of thousands of
    per-call rows neither hold the write lock for long nor take a transaction each); the count.
    A batch that fails is rolled back whole (the ones before it stay).  ``after_batch`` gets the
    count so far after each committed batch.  Never inside a caller's transaction (its batches
    are their own: a failure would roll the caller's work back with them)."""
    if conn.in_transaction:
        raise CatalogError("audit record_many inside an open transaction")
    n = 0
    batch: list[tuple[str, Mapping[str, Any]]] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= BATCH_ROWS:
            n += _record_batch(conn, batch, actor, role, action, now)
            batch = []
            if after_batch is not None:
                after_batch(n)
    return n + (_record_batch(conn, batch, actor, role, action, now) if batch else 0)


def _record_batch(conn: sqlite3.Connection, batch: list[tuple[str, Mapping[str, Any]]], actor: str,
                  role: str, action: str, now: float) -> int:
    with engine.write_transaction(conn, APPEND_FAILED):
        row_id, prev, key = _next_link(conn)
        rows = []
        bodies: dict[int, Any] = {}  # one scrub for a detail the rows share (an export's)
        for target, detail in batch:
            body = bodies.get(id(detail))
            if body is None:
                body = bodies[id(detail)] = _body(detail)
            rows.append(_entry(row_id, prev, key, now, actor, role, action, target, detail, body))
            prev, row_id = rows[-1][8], row_id + 1
        conn.executemany(INSERT, rows)
        engine.note_issued(conn, "audit_log", row_id - 1)
    return len(batch)


def verify_chain(conn: sqlite3.Connection, *,
                 stats: dict[str, int] | None = None) -> tuple[list[AuditProblem], int]:
    """Problems of the audit chain, and how many unchained rows precede it (written before it)."""
    problems, legacy, _, _ = verify_chain_from(conn, stats=stats)
    return problems, legacy


def _anchor_keyed(conn: sqlite3.Connection, after_id: int, after_hash: str, key: bytes | None,
                  problems: list[AuditProblem]) -> bool:
    """Whether the row a pass starts after is keyed, read from what its pinned hash covers (its
    ``mac`` column is not: a MAC cleared on it must not let the next rows pass unkeyed)."""
    row = conn.execute("SELECT at, actor, role, action, target, detail, prev_hash, mac FROM audit_log "
                       "WHERE id = ?", (after_id,)).fetchone()
    if row is None:
        return False
    at, actor, role, action, target, detail_text, prev_hash, row_mac = row
    try:
        detail = json.loads(detail_text)
        link = prev_hash if isinstance(prev_hash, str) and len(prev_hash) == 64 else GENESIS
        hashes = {keyed: entry_hash(link, after_id, float(at), actor, role, action, target, detail, keyed)
                  for keyed in (True, False)}
    except ValueError:
        hashes = {}
    keyed = hashes.get(True) == after_hash
    if not keyed and hashes.get(False) != after_hash:
        problems.append(AuditProblem(after_id, "row content does not match the hash the last pass "
                                     "recomputed", after_hash, ""))
    elif keyed and key is not None and not audit_key.holds(key, after_hash, str(row_mac or "")):
        problems.append(AuditProblem(after_id, "row's MAC does not verify (not written by the "
                                     "recorder with web.secret_key_file: by hand?)"))
    return keyed


def verify_chain_from(conn: sqlite3.Connection, after_id: int = 0, after_hash: str = "", *,
                      stats: dict[str, int] | None = None, tail: bool = True,
                      on_row: Callable[[int, str, str], None] | None = None
                      ) -> tuple[list[AuditProblem], int, int, str]:
    """:func:`verify_chain` for the rows after ``after_id`` (a chained row whose hash a previous
    pass recomputed as ``after_hash``); also returns the (id, hash) of the last chained row
    recomputed, where the next incremental pass starts.  Streams: one row in memory.

    Keyed rows' MACs are checked with the key registered for this catalog
    (:func:`pbx_recorder.audit_key.for_connection`); ``stats`` (when given) gets ``keyed`` (keyed
    rows read) and ``unchecked`` (keyed rows whose MAC this process has no key to check).
    ``tail=False`` leaves out the check that no row was removed from the end (the chain-head
    signer: a row appended by another process between its scan and that check is no removal).
    ``on_row(id, action, hash)`` (when given) is called for each chained row with the hash this pass
    verified (``service.qa_evidence`` holds later reads, and the signed heads, to what it read)."""
    problems: list[AuditProblem] = []
    prev, expected_id, legacy, chained, keyed_seen = GENESIS, None, 0, False, False
    key = audit_key.for_connection(conn)
    counts = stats if stats is not None else {}
    counts.setdefault("keyed", 0)
    counts.setdefault("unchecked", 0)
    if after_id:
        found = conn.execute("SELECT hash FROM audit_log WHERE id = ?", (after_id,)).fetchone()
        if found is None or found[0] != after_hash:
            problems.append(AuditProblem(after_id, "row differs from the one the last verified pass "
                                         "recomputed (chain rewritten or truncated)", after_hash,
                                         str(found[0]) if found else "absent"))
        else:
            keyed_seen = _anchor_keyed(conn, after_id, after_hash, key, problems)
        prev, expected_id, chained = after_hash, after_id + 1, True
    # a row below the first id is outside what the stream below reads (every pass, incremental too)
    problems += [AuditProblem(int(row_id), "row outside the chain (an id the audit writer never gives)")
                 for (row_id,) in conn.execute("SELECT id FROM audit_log WHERE id <= 0 ORDER BY id "
                                               "LIMIT 20").fetchall()]
    rows = conn.execute("SELECT id, at, actor, role, action, target, detail, prev_hash, hash, mac "
                        "FROM audit_log WHERE id > ? ORDER BY id", (after_id,))
    for row_id, at, actor, role, action, target, detail_text, prev_hash, stored, row_mac in rows:
        if not stored and not chained:
            legacy += 1
            continue
        if not stored:
            problems.append(AuditProblem(row_id, "row outside the chain (not written by the audit writer)"))
            continue
        keyed = bool(row_mac)
        if keyed:
            counts["keyed"] += 1
            if key is None:
                counts["unchecked"] += 1
            elif not audit_key.holds(key, str(stored), str(row_mac)):
                problems.append(AuditProblem(row_id, "row's MAC does not verify (not written by the "
                                             "recorder with web.secret_key_file: by hand?)"))
        elif keyed_seen:
            problems.append(AuditProblem(row_id, "row without a MAC after keyed rows (written by hand, "
                                         "or by a process that could not read web.secret_key_file)"))
        keyed_seen = keyed_seen or keyed
        if chained and row_id != expected_id:
            problems.append(AuditProblem(int(expected_id or 0), f"rows missing before row {row_id}",
                                         str(expected_id), str(row_id)))
        chained = True
        if prev_hash != prev:
            problems.append(AuditProblem(row_id, "prev_hash does not link to the previous row", prev,
                                         str(prev_hash)))
        try:
            detail = json.loads(detail_text)
        except ValueError:
            problems.append(AuditProblem(row_id, "detail is not JSON"))
            detail = detail_text
        link = prev_hash if isinstance(prev_hash, str) and len(prev_hash) == 64 else GENESIS
        try:
            computed = entry_hash(link, row_id, float(at), actor, role, action, target, detail, keyed)
        except ValueError:
            computed = ""
        if computed != stored:
            problems.append(AuditProblem(row_id, "row content does not match its hash", computed,
                                         str(stored)))
        prev, expected_id = stored, row_id + 1
        if on_row is not None:
            on_row(int(row_id), str(action), str(stored))
    if tail and chained and _issued_max(conn) >= (expected_id or 0):
        problems.append(AuditProblem(int(expected_id or 0), "rows removed from the end of the audit log",
                                     f"last id {_issued_max(conn)}", f"last id {(expected_id or 1) - 1}"))
    last_id = int(expected_id) - 1 if chained and expected_id else 0
    return problems, legacy, last_id, (prev if chained else "")


def key_note(stats: dict[str, int]) -> str | None:
    """The note of a pass that read keyed rows it could not check (no key in this process)."""
    if not stats.get("unchecked"):
        return None
    return (f"{stats['unchecked']} keyed audit row(s) not checked: this process has no "
            "web.secret_key_file for the catalog (run it as the recorder's account)")


def entries(conn: sqlite3.Connection, *, actor: str | None = None, action: str | None = None,
            target: str | None = None, since: float | None = None, until: float | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """Audit rows, newest first, filtered (action: exact or a ``prefix*``)."""
    where: list[str] = []
    params: list[Any] = []
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if action:
        if action.endswith("*"):
            where.append("substr(action, 1, ?) = ?")
            params += [len(action) - 1, action[:-1]]
        else:
            where.append("action = ?")
            params.append(action)
    if target:
        where.append("target = ?")
        params.append(target)
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    if until is not None:
        where.append("at < ?")
        params.append(until)
    sql = "SELECT id, at, actor, role, action, target, detail FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(max(1, min(int(limit), 100_000)))
    out = []
    for row_id, at, who, role, act, tgt, detail_text in conn.execute(sql, params):
        try:
            detail = json.loads(detail_text)
        except ValueError:
            detail = detail_text
        out.append({"id": row_id, "at": at, "actor": who, "role": role, "action": act, "target": tgt,
                    "detail": detail})
    return out
