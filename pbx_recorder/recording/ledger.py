"""Append-only, hash-chained ledger of recording lifecycle events (catalog table ``ledger``).

Each row's hash covers the previous row's hash and the row itself::

    entry = canonical_json({"seq", "at", "event", "recording_id", "payload"})
    hash  = sha256(bytes.fromhex(prev_hash) || entry)        (hex)
    genesis prev_hash = "0" * 64

The link is the previous row (by seq): a row written since schema 13 stores ``prev_hash`` as ''
(64 bytes a row it would only repeat; ``verify_chain`` recomputes its hash over the previous
row's), an older row keeps the value it was written with, which must still be that hash.

``seq`` is assigned here as one more than the highest ever issued (the row maximum or
SQLite's AUTOINCREMENT counter, whichever is larger), so a deleted row anywhere, including
at the tail, leaves a visible gap that ``verify_chain`` names.  ``append`` runs inside the
caller's transaction: the audit trail commits (or rolls back) together with the change it
records.  SQLite serializes writers, so two appenders cannot fork the chain (on PostgreSQL
the caller must hold a lock, e.g. ``LOCK TABLE ledger IN EXCLUSIVE MODE``).

Deleting audio never deletes ledger rows; ``deleted``/``erased`` payloads carry hashes and
reasons only, no personal data.

``daily_root(conn, day)`` is the *chain head* hash at the end of that UTC day: the hash of
the last row (by seq) whose ``at`` is before the next midnight UTC (genesis zeros if none).
Because every hash commits to all earlier rows, publishing that one value (e-mail, RFC 3161
timestamp, a public log) anchors the whole history up to that day.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from pbx_recorder import audit_key
from pbx_recorder.catalog import engine
from pbx_recorder.errors import CatalogError
from pbx_recorder.recording.manifest import canonical_json

GENESIS = "0" * 64
_string = json.encoder.encode_basestring  # (C-accelerated when available, as json.dumps uses it)
EVENTS = frozenset({"stored", "migrated", "held", "released", "deleted", "erased", "restored", "rekeyed",
                    "call_sealed", "call_removed",  # these two: pbx_recorder.recording.call_seal
                    "reclassed",  # retention set-class: the new class and retain_until
                    # legal holds themselves (lifecycle.holds: id, scope, a hash of the value)
                    "hold_added", "hold_rekeyed", "hold_released"})


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    what: str
    expected: str = ""
    found: str = ""
    recording_id: str = ""

    def __str__(self) -> str:
        text = f"ledger seq {self.seq}: {self.what}"
        if self.expected or self.found:
            text += f" (expected {self.expected or '-'}, found {self.found or '-'})"
        return text


def entry_bytes(seq: int, at: float, event: str, recording_id: str, payload: Any,
                keyed: bool = False) -> bytes:
    """The bytes a row's hash covers; a keyed row's say so (``"keyed": true``: its MAC removed
    later breaks the hash), an unkeyed row's are those of every row before keying."""
    entry = {"seq": seq, "at": at, "event": event, "recording_id": recording_id, "payload": payload}
    if keyed:
        entry["keyed"] = True
    return canonical_json(entry)


def entry_bytes_of_text(seq: int, at: float, event: str, recording_id: str, payload_text: bytes,
                        keyed: bool = False) -> bytes:
    """:func:`entry_bytes` for a payload already in canonical JSON (``append`` has it): the
    entry's canonical JSON with that text spliced in, keys in their sorted order, instead of
    decoding the payload and encoding it again.  The same bytes (``test_fast_paths_agree``)."""
    if not math.isfinite(at) or type(seq) is not int:
        # (raises as it did)
        return entry_bytes(seq, at, event, recording_id, json.loads(payload_text), keyed)
    # json's own encoders for these scalars (``canonical_json`` is ensure_ascii=False: the string
    # encoder without ASCII escaping; a float is its repr; an int its decimal digits)
    return b"".join((b'{"at":', float.__repr__(float(at)).encode(), b',"event":', _string(event).encode(),
                     b',"keyed":true' if keyed else b"", b',"payload":', payload_text, b',"recording_id":',
                     _string(recording_id).encode(), b',"seq":', str(seq).encode(), b"}"))


def entry_hash(prev_hash: str, seq: int, at: float, event: str, recording_id: str, payload: Any,
               keyed: bool = False) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + entry_bytes(seq, at, event, recording_id, payload, keyed)
                          ).hexdigest()


#: a ledger row's MAC (``mac`` column, schema 24): HMAC-SHA256 over the row's hash under the
#: catalog's key (:mod:`pbx_recorder.audit_key`: derived from ``web.secret_key_file``), this domain
#: first so that no audit row's MAC is one
MAC_PREFIX = "l1."
_MAC_DOMAIN = b"pbx-recorder ledger row v1\x00"


def row_mac(key: bytes, row_hash: str) -> str:
    return MAC_PREFIX + hmac.new(key, _MAC_DOMAIN + bytes.fromhex(row_hash), hashlib.sha256).hexdigest()


def mac_holds(key: bytes, row_hash: str, stored: str) -> bool:
    try:
        return hmac.compare_digest(row_mac(key, row_hash), str(stored or ""))
    except ValueError:  # a hash that is not hex
        return False


def _issued_max(conn: sqlite3.Connection) -> int:
    return engine.issued_max(conn, "ledger")


#: connections (by id) inside :func:`appending`: the chain head their appends have reached (its
#: position, hash and whether it is keyed; None: not read yet in this transaction)
_HEADS: dict[int, tuple[int, str, bool] | None] = {}
#: connections (by id) inside :func:`appending`: the rows' key, looked up once for the batch
_ROW_KEYS: dict[int, bytes | None] = {}


@contextmanager
def appending(conn: sqlite3.Connection) -> Iterator[None]:
    """Many appends in the caller's write transaction (``Catalog.write_calls``): the chain head is
    read once, at the first append, and carried from one append to the next, instead of read
    back before each.  Sound because the transaction holds the catalog's write lock (SQLite's
    ``BEGIN IMMEDIATE``, PostgreSQL's advisory lock, taken by the first append) and every ledger
    row of the transaction is written by :func:`append`.  PostgreSQL's issued counter is noted
    once, as the block ends (in the same transaction)."""
    key = id(conn)
    if key in _HEADS or not conn.in_transaction:
        yield
        return
    _HEADS[key] = None
    _ROW_KEYS[key] = audit_key.for_connection(conn)  # once for the batch, not per append
    try:
        yield
        head = _HEADS[key]
        if head is not None:
            engine.note_issued(conn, "ledger", head[0])
    finally:
        _HEADS.pop(key, None)
        _ROW_KEYS.pop(key, None)


def reread_head(conn: sqlite3.Connection) -> None:
    """Inside :func:`appending`, after a ``ROLLBACK TO SAVEPOINT``: the head carried may name
    entries that were rolled back; the next append links to the head as it now is."""
    if _HEADS.get(id(conn)) is not None:
        _HEADS[id(conn)] = _head(conn)


def _head(conn: sqlite3.Connection) -> tuple[int, str, bool]:
    """(the last seq issued, the hash the next row links to, whether that row is keyed)."""
    head = conn.execute("SELECT seq, hash, mac FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    return (max(head[0] if head else 0, _issued_max(conn)), head[1] if head else GENESIS,
            bool(head[2]) if head else False)


def append(conn: sqlite3.Connection, event: str, recording_id: str, payload: Mapping[str, Any] | None,
           now: float) -> tuple[int, str]:
    """Append one event in the caller's transaction; returns (seq, hash)."""
    if event not in EVENTS:
        raise CatalogError(f"unknown ledger event {event!r}")
    text = canonical_json(dict(payload or {}))  # what is hashed is what is stored
    own = conn.isolation_level is None and not conn.in_transaction  # autocommit conn: own txn
    batched = not own and id(conn) in _HEADS
    try:
        if own:
            conn.execute("BEGIN IMMEDIATE")
        cached = _HEADS.get(id(conn)) if batched else None
        if cached is None:
            if not own:
                engine.lock_writes(conn)
            cached = _head(conn)
        last, prev, head_keyed = cached
        key = _ROW_KEYS[id(conn)] if batched else audit_key.for_connection(conn)
        if key is None and head_keyed:  # fail closed: an unkeyed row after keyed ones is a forgery's mark
            raise CatalogError("the ledger's rows are keyed and this process has no key for them "
                               "(web.secret_key_file unreadable or not set here): nothing appended")
        seq = last + 1
        entry = entry_bytes_of_text(seq, float(now), event, recording_id, text, key is not None)
        digest = hashlib.sha256(bytes.fromhex(prev) + entry).hexdigest()
        conn.execute("INSERT INTO ledger (seq, at, event, recording_id, payload, prev_hash, hash, mac) "
                     "VALUES (?, ?, ?, ?, ?, '', ?, ?)",  # (the link is the previous row: no prev_hash)
                     (seq, float(now), event, recording_id, text.decode("utf-8"), digest,
                      row_mac(key, digest) if key is not None else ""))
        if batched:
            _HEADS[id(conn)] = (seq, digest, key is not None)
        else:
            engine.note_issued(conn, "ledger", seq)
        if own:
            conn.execute("COMMIT")
    except engine.db_errors() as exc:
        if own and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise CatalogError(f"ledger append failed: {exc}") from exc
    return seq, digest


def verify_chain(conn: sqlite3.Connection) -> list[Problem]:
    """Recompute every hash in seq order; name each broken link (the first one is what counts)."""
    return verify_chain_from(conn)[0]


def verify_chain_from(conn: sqlite3.Connection, after_seq: int = 0, after_hash: str = GENESIS,
                      on_row: Callable[[int, str, list[Problem]], None] | None = None
                      ) -> tuple[list[Problem], int, str]:
    """:func:`verify_chain` for the rows after ``after_seq`` (whose hash must be ``after_hash``:
    an incremental pass starts from the last row a previous pass recomputed); returns the
    problems and the (seq, hash) of the last row recomputed.  Streams: one row in memory."""
    problems: list[Problem] = []
    prev, expected_seq = after_hash, after_seq + 1
    key = audit_key.for_connection(conn)
    keyed_before = False  # a keyed row met: every later one must be keyed
    if after_seq:
        found = conn.execute("SELECT hash, mac FROM ledger WHERE seq = ?", (after_seq,)).fetchone()
        if found is None or found[0] != after_hash:
            problems.append(Problem(after_seq, "row differs from the one the last verified pass recomputed "
                                    "(chain rewritten or truncated)", after_hash,
                                    found[0] if found else "absent"))
        keyed_before = bool(found[1]) if found is not None else False
    # a row below the first position is outside what the stream below reads (every pass)
    problems += [Problem(int(seq), "row outside the chain (a position the ledger never gives)", "", "",
                         str(rid))
                 for seq, rid in conn.execute("SELECT seq, recording_id FROM ledger WHERE seq <= 0 "
                                              "ORDER BY seq LIMIT 20").fetchall()]
    rows = conn.execute("SELECT seq, at, event, recording_id, payload, prev_hash, hash, mac "
                        "FROM ledger WHERE seq > ? ORDER BY seq", (after_seq,))
    for seq, at, event, rid, payload_text, prev_hash, stored_hash, stored_mac in rows:
        keyed = bool(stored_mac)
        if keyed and key is not None and not mac_holds(key, str(stored_hash), str(stored_mac)):
            problems.append(Problem(seq, "row's MAC does not verify (not written by the recorder: an "
                                    "entry made by hand)", "", "", rid))
        elif keyed_before and not keyed:
            problems.append(Problem(seq, "row without a MAC after keyed rows (written by hand, or by a "
                                    "process without the key)", "", "", rid))
        keyed_before = keyed_before or keyed
        if seq != expected_seq:
            problems.append(Problem(expected_seq, f"rows missing before seq {seq}",
                                    str(expected_seq), str(seq)))
        if prev_hash != "" and prev_hash != prev:  # (a row without one links to the previous row)
            problems.append(Problem(seq, "prev_hash does not link to the previous row", prev, prev_hash, rid))
        try:
            payload = json.loads(payload_text)
        except ValueError:
            problems.append(Problem(seq, "payload is not JSON", recording_id=rid))
            payload = payload_text
        if event not in EVENTS:
            problems.append(Problem(seq, "unknown event", "|".join(sorted(EVENTS)), str(event), rid))
        link = prev if prev_hash == "" and _is_hex64(prev) else prev_hash if _is_hex64(prev_hash) else GENESIS
        computed = entry_hash(link, seq, float(at), event, rid, payload, keyed)
        if computed != stored_hash:
            problems.append(Problem(seq, "row content does not match its hash", computed, stored_hash, rid))
        prev, expected_seq = stored_hash, seq + 1
        if on_row is not None:  # (seq, its hash, the problems so far): progress and resume points
            on_row(seq, stored_hash, problems)
    issued = _issued_max(conn)
    if issued >= expected_seq:
        problems.append(Problem(expected_seq, "rows removed from the end of the ledger",
                                f"last seq {issued}", f"last seq {expected_seq - 1}"))
    return problems, expected_seq - 1, prev


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _is_hex64(text: str) -> bool:
    return isinstance(text, str) and _HEX64.fullmatch(text) is not None


def day_bounds(day: str | date) -> tuple[float, float]:
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


def daily_root(conn: sqlite3.Connection, day: str | date) -> str:
    """Chain head hash at the end of UTC ``day`` (YYYY-MM-DD); genesis zeros if the ledger was empty."""
    try:
        _, end = day_bounds(day)
    except ValueError as exc:
        raise CatalogError(f"not a YYYY-MM-DD day: {day!r}") from exc
    row = conn.execute("SELECT hash FROM ledger WHERE at < ? ORDER BY seq DESC LIMIT 1", (end,)).fetchone()
    return row[0] if row else GENESIS


def stored_created_at(conn: sqlite3.Connection, recording_id: str) -> float | None:
    """The ``created_at`` the recording's first ``stored`` entry recorded (None: an entry written
    before session 45, or none): retention holds the row's own to it."""
    for event, text in conn.execute("SELECT event, payload FROM ledger WHERE recording_id = ? AND "
                                    "event = 'stored' ORDER BY seq LIMIT 1", (recording_id,)).fetchall():
        try:
            value = json.loads(text).get("created_at") if event == "stored" else None
        except (ValueError, AttributeError):
            return None
        return float(value) if isinstance(value, (int, float)) and value > 0 else None
    return None


def entries_for(conn: sqlite3.Connection, recording_id: str) -> list[dict[str, Any]]:
    known = _KNOWN_ENTRIES.get(id(conn))
    if known is not None and recording_id in known:  # read with its batch (entries_known), once
        return known.pop(recording_id)
    rows = conn.execute("SELECT seq, at, event, payload FROM ledger WHERE recording_id = ? ORDER BY seq",
                        (recording_id,)).fetchall()
    return [{"seq": r[0], "at": r[1], "event": r[2], "payload": r[3]} for r in rows]


#: connections (by id) inside :func:`entries_known`: the entries read up front, by recording
_KNOWN_ENTRIES: dict[int, dict[str, list[dict[str, Any]]]] = {}


@contextmanager
def entries_known(conn: sqlite3.Connection, recording_ids: Iterable[str]) -> Iterator[None]:
    """Inside a write transaction (``Catalog.write_calls``): the entries of ``recording_ids`` read
    in one statement per ``batch_reads.CHUNK`` ids, and :func:`entries_for` served from them, once
    each (a second look at a recording reads the table, so it sees what the batch appended)."""
    from pbx_recorder.catalog.batch_reads import chunks

    key = id(conn)
    if key in _KNOWN_ENTRIES or not conn.in_transaction:
        yield
        return
    known: dict[str, list[dict[str, Any]]] = {rid: [] for rid in recording_ids}
    for chunk in chunks(list(known)):
        rows = conn.execute("SELECT recording_id, seq, at, event, payload FROM ledger WHERE recording_id "
                            f"IN ({', '.join('?' * len(chunk))}) ORDER BY seq", list(chunk)).fetchall()
        for r in rows:
            known[str(r[0])].append({"seq": r[1], "at": r[2], "event": r[3], "payload": r[4]})
    _KNOWN_ENTRIES[key] = known
    try:
        yield
    finally:
        _KNOWN_ENTRIES.pop(key, None)


def connection_of(catalog: Any) -> sqlite3.Connection:
    """The sqlite3 connection behind a ``Catalog`` (or the connection itself)."""
    if isinstance(catalog, sqlite3.Connection) or engine.is_postgres(catalog):
        return cast(sqlite3.Connection, catalog)  # a PostgreSQL connection has the same surface
    public = getattr(catalog, "connection", None)
    conn = public() if callable(public) else catalog._conn()  # until Catalog exposes one publicly
    if not isinstance(conn, sqlite3.Connection) and not engine.is_postgres(conn):
        raise CatalogError("catalog has no database connection")
    return cast(sqlite3.Connection, conn)


def wrapped_key_digest(wrapped: str) -> str:
    """What the ledger keeps of a recording's wrapped data key: its SHA-256 (never the key), so
    ``verify`` notices one recording's wrapped key copied onto another (the audio would become
    unreadable, which only ``--deep`` used to see)."""
    return hashlib.sha256(wrapped.encode("ascii", "replace")).hexdigest()


class StoredLedgerHook:
    """Shipper ``after_store`` hook: append a ``stored`` event (idempotent: a retry that finds a
    ``stored`` entry with the same hash appends nothing).  Payload: tier, key, sha256 of the
    stored bytes, size, audio_sha256, encrypted, key_id, the S3 version_id when there is one, the
    retention class and the recording's ``created_at`` (since session 45): hashes, locations and
    times, no personal data.  ``verify`` holds the catalog row to it."""

    #: it appends to the ledger only, never touches the recording's row: ``Catalog.write_calls``
    #: may run it before writing that row (the chain's order is the same)
    before_row = True
    #: it reads the recording's ledger entries: ``Catalog.write_calls`` reads a batch's at once
    reads_ledger_entries = True

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def __call__(self, catalog: Any, recording_id: str, manifest: Any, record: Any = None) -> None:
        conn = connection_of(catalog)
        primary = getattr(record, "primary", None)
        processing = dict(getattr(manifest, "processing", {}) or {})
        payload = {
            "tier": getattr(primary, "tier", ""), "key": getattr(primary, "key", ""),
            "sha256": getattr(primary, "sha256", ""), "size": getattr(primary, "size", 0),
            "audio_sha256": str(getattr(manifest, "audio_sha256", "")),
            "encrypted": bool(processing.get("encrypted", False)),
            "key_id": str(processing.get("key_id", "")),
            # the class it was stored with: verify holds the row's class to it (and set-class's entries)
            "retention_class": str(getattr(manifest, "retention_class", "") or ""),
        }
        created = float(getattr(manifest, "created_at", 0) or 0)
        if created > 0:  # what retention counts the class's period from (the row's copy is a plain column)
            payload["created_at"] = created
        wrapped = str(processing.get("wrapped_key", "") or "")
        if wrapped:
            payload["wrapped_key_sha256"] = wrapped_key_digest(wrapped)
        version_id = str(getattr(primary, "version_id", "") or "")
        if version_id:  # S3: what verify compares to notice a re-put object
            payload["version_id"] = version_id
        others = {str(o.key): str(o.sha256) for o in tuple(getattr(record, "objects", ()))[1:] if o.sha256}
        if others:  # legs, kept original, manifest sidecar: their hashes at store time
            payload["objects"] = others
        for e in entries_for(conn, recording_id):
            if e["event"] == "stored" and json.loads(e["payload"]).get("sha256") == payload["sha256"]:
                return None
        append(conn, "stored", recording_id, payload, self.clock())
        return None
