"""The catalog on SQLite: calls, recordings, live-call snapshots, audit log, search.

One connection per thread (``threading.local``), WAL, ``busy_timeout``, foreign keys.
Only parameterized SQL; column names come from the schema itself (``PRAGMA
table_info``), never from input.  JSON columns are encoded/decoded here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from pbx_recorder import audit_trail
from pbx_recorder.catalog.queries import (
    COUNT_CAP,
    MAX_LIMIT,
    CallFilters,
    Count,
    Cursor,
    build_count,
    build_search,
    decode_cursor,
    encode_cursor,
    time_range,
)
from pbx_recorder.catalog.schema import apply_migrations
from pbx_recorder.errors import CallIdCollision, CatalogError, NotFound
from storage import file_modes

JSON_COLUMNS = {"uniqueids", "consent", "tags", "cdr", "flags", "manifest", "detail", "objects"}
BUSY_TIMEOUT_MS = 5000


def _encode(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS and not isinstance(value, str):
        return json.dumps(value, sort_keys=True, default=list)
    return value


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():
        value = row[key]
        if key in JSON_COLUMNS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass  # keep the raw text: a broken JSON cell must not hide the row
        out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of a search: its rows, the cursor of the next page (None: last page), the count."""

    rows: list[dict[str, Any]]
    next_cursor: str | None
    count: Count | None = None


@dataclass(frozen=True, slots=True)
class StoredRecording:
    """One recording as the shipper has stored it: its catalog row (as ``Shipper._catalog_row``
    builds it), and the manifest and ship record its ``after_store`` hooks see."""

    row: Mapping[str, Any]
    manifest: Any
    record: Any = None


#: an ``after_store`` hook (``pbx_recorder.shipper.AfterStore``): signing, the ledger's ``stored`` entry ...
AfterStoreHook = Callable[[Any, str, Any, Any], Any]


class Catalog:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time,
                 sealer: Callable[[sqlite3.Connection, str], None] | None = None) -> None:
        self.path = str(path)
        self.clock = clock
        self.sealer = sealer  # pbx_recorder.call_seal.CallSealer: seals every call row written here
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        if self.path != ":memory:":
            try:
                file_modes.prepare_sqlite(self.path)  # 0600 before SQLite creates it (and its WAL)
            except OSError as exc:
                raise CatalogError(f"cannot create catalog {self.path}: {exc.strerror}") from exc
        conn = self._conn()
        with self._lock:
            apply_migrations(conn)
        self._columns = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")]
                         for t in ("calls", "recordings")}

    # -- connections -------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                       check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA secure_delete=ON")  # an erased row leaves no bytes in free pages
            except sqlite3.Error as exc:
                raise CatalogError(f"cannot open catalog {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def _exec(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn().execute(sql, params)
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog query failed: {exc}") from exc

    def _upsert(self, table: str, key: str, row: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
        allowed = self._columns[table]
        unknown = set(row) - set(allowed)
        if unknown:
            raise CatalogError(f"unknown {table} columns: {sorted(unknown)}")
        data = {**defaults, **row}
        cols = [c for c in allowed if c in data]
        values = [_encode(c, data[c]) for c in cols]
        updates = ", ".join(f"{c}=excluded.{c}" for c in cols if c != key and (c in row or c == "updated_at"))
        sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
               f"ON CONFLICT({key}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING"))
        self._exec(sql, values)

    def _update(self, table: str, key: str, key_value: str, row: Mapping[str, Any]) -> None:
        allowed = self._columns[table]
        cols = [c for c in allowed if c in row and c != key]
        if set(row) - set(allowed):
            raise CatalogError(f"unknown {table} columns: {sorted(set(row) - set(allowed))}")
        if cols:
            self._exec(f"UPDATE {table} SET {', '.join(c + '=?' for c in cols)} WHERE {key} = ?",
                       [*(_encode(c, row[c]) for c in cols), key_value])

    # -- calls -------------------------------------------------------------------
    def upsert_call(self, row: Mapping[str, Any]) -> None:
        """Insert or update a call row.  A row belongs to one call: an update whose
        ``started_at`` differs from the stored one is another call that got the same id (a
        linkedid reused after a PBX restart) and is refused (:class:`CallIdCollision`), so
        no call ever overwrites another's row."""
        if not row.get("call_id"):
            raise CatalogError("call row without call_id")
        conn = self._conn()
        own = not conn.in_transaction
        try:
            if own:
                conn.execute("BEGIN IMMEDIATE")  # the check, the row and its seal land together
            existing = conn.execute("SELECT started_at FROM calls WHERE call_id = ?",
                                    (row["call_id"],)).fetchone()
            theirs, ours = (existing["started_at"] if existing else None), row.get("started_at")
            if theirs is not None and ours is not None and abs(float(theirs) - float(ours)) > 0.001:
                raise CallIdCollision(f"call id {row['call_id']} already holds the call that started at "
                                      f"{theirs}; the row of the call that started at {ours} was not "
                                      "written over it")
            self._upsert("calls", "call_id", row, {"updated_at": self.clock()})
            if self.sealer is not None:
                self.sealer(conn, str(row["call_id"]))
            if own:
                conn.execute("COMMIT")
        except BaseException as exc:
            if own and conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise CatalogError(f"catalog query failed: {exc}") from exc
            raise

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        row = self._exec("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return _decode(row) if row else None

    def search(self, filters: CallFilters, *, now: float | None = None,
               tz: tzinfo | None = None) -> list[dict[str, Any]]:
        """The first page (or the page after ``filters.after``), newest first."""
        return self.search_page(filters, now=now, tz=tz, count=False).rows

    def search_page(self, filters: CallFilters, *, now: float | None = None, tz: tzinfo | None = None,
                    count: bool = True, count_cap: int = COUNT_CAP) -> SearchPage:
        """A page of calls, the cursor of the next one, and (``count``) how many match in all.

        Each page is one index range read (keyset, no OFFSET); rows without a start time come
        after all others, paged by call id."""
        at = self.clock() if now is None else now
        limit = max(1, min(int(filters.limit), MAX_LIMIT))
        try:
            cursor = decode_cursor(filters.after) if filters.after else None
            sql, params = build_search(filters, at, tz, cursor=cursor, probe=True)
            rows = self._exec(sql, params).fetchall()
            unbounded = time_range(filters, at, tz) == (None, None)
            if len(rows) <= limit and unbounded and cursor is not None and cursor.started_at is not None:
                # the keyset range stops at the last timed row: the untimed ones follow
                sql, params = build_search(filters, at, tz, cursor=Cursor(None, ""), probe=True)
                rows += self._exec(sql, params).fetchall()[: limit + 1 - len(rows)]
            total = None
            if count:
                sql, params = build_count(filters, at, tz, count_cap)
                n = int(self._exec(sql, params).fetchone()[0])
                total = Count(min(n, count_cap), exact=n <= count_cap)
        except ValueError as exc:
            raise CatalogError(str(exc)) from exc
        page = [_decode(r) for r in rows[:limit]]
        more = len(rows) > limit
        last = page[-1] if page else None
        next_cursor = (encode_cursor(Cursor(last["started_at"], str(last["call_id"]))) if more and last
                       else None)
        return SearchPage(page, next_cursor, total)

    # -- recordings --------------------------------------------------------------
    def upsert_recording(self, row: Mapping[str, Any]) -> None:
        """Insert or update a recording; a placeholder call row is created if missing."""
        rid, call_id = row.get("recording_id"), row.get("call_id")
        if not rid:
            raise CatalogError("recording row without recording_id")
        if call_id:
            self._exec("INSERT OR IGNORE INTO calls (call_id, updated_at) VALUES (?, ?)",
                       (call_id, self.clock()))
        elif not self._has_recording(str(rid)):
            raise CatalogError(f"new recording {rid} without call_id")
        if self._has_recording(str(rid)):
            self._update("recordings", "recording_id", str(rid), row)
        else:
            self._upsert("recordings", "recording_id", row, {"state": "spooled", "created_at": self.clock()})

    def _has_recording(self, recording_id: str) -> bool:
        """Existence only (no manifest JSON decoded: the write path asks this several times a call)."""
        found = self._exec("SELECT 1 FROM recordings WHERE recording_id = ?", (recording_id,)).fetchone()
        return found is not None

    def get_recording(self, recording_id: str) -> dict[str, Any] | None:
        row = self._exec("SELECT * FROM recordings WHERE recording_id = ?", (recording_id,)).fetchone()
        return _decode(row) if row else None

    def recordings_for_call(self, call_id: str) -> list[dict[str, Any]]:
        rows = self._exec("SELECT * FROM recordings WHERE call_id = ? ORDER BY created_at, recording_id",
                          (call_id,)).fetchall()
        return [_decode(r) for r in rows]

    def mark_state(self, recording_id: str, state: str, **fields: Any) -> None:
        if not self._has_recording(recording_id):
            raise NotFound(f"no recording {recording_id}")
        self._update("recordings", "recording_id", recording_id, {"state": state, **fields})

    def recordings_in_state(self, state: str, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._exec("SELECT * FROM recordings WHERE state = ? ORDER BY created_at LIMIT ?",
                          (state, limit)).fetchall()
        return [_decode(r) for r in rows]

    # -- many calls at once ---------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction for everything done in the block (this thread's connection):
        the repository's methods, the sealer and the ledger append inside it, one commit."""
        conn = self._conn()
        if conn.in_transaction:
            raise CatalogError("a catalog transaction is already open on this connection")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog query failed: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise CatalogError(f"catalog query failed: {exc}") from exc
            raise

    def write_calls(self, calls: Iterable[tuple[Mapping[str, Any], Sequence[StoredRecording]]],
                    after_store: Sequence[AfterStoreHook] = ()) -> int:
        """Bulk write path: many finished calls with their stored recordings in ONE transaction.

        Per call exactly what the daemon and the shipper write one call at a time: the call row
        (collision check, seal, ``call_sealed`` ledger entry), each recording row ``stored``,
        the ``after_store`` hooks (manifest signature, the ledger's ``stored`` entry ...) with
        their returned fields merged, then ``verified``.  All or nothing; returns how many calls."""
        done = 0
        with self.transaction():
            for call, recordings in calls:
                self.upsert_call(call)
                for rec in recordings:
                    rid = str(rec.row["recording_id"])
                    self.upsert_recording({**rec.row, "state": "stored"})
                    merged: dict[str, Any] = {}
                    for hook in after_store:
                        extra = hook(self, rid, rec.manifest, rec.record)
                        if isinstance(extra, Mapping) and extra:
                            merged.update(extra)
                    # the hooks' fields and the final state in one row update (the shipper makes
                    # two: the rows end up the same)
                    self._update("recordings", "recording_id", rid, {**merged, "state": "verified"})
                done += 1
        return done

    # -- live calls --------------------------------------------------------------
    def save_live_call(self, call_id: str, snapshot: Mapping[str, Any] | str) -> None:
        text = snapshot if isinstance(snapshot, str) else json.dumps(snapshot, sort_keys=True)
        self._exec("INSERT INTO live_calls (call_id, state, updated_at) VALUES (?, ?, ?) "
                   "ON CONFLICT(call_id) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at",
                   (call_id, text, self.clock()))

    def load_live_calls(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for row in self._exec("SELECT call_id, state FROM live_calls ORDER BY call_id"):
            try:
                out[row["call_id"]] = json.loads(row["state"])
            except ValueError:
                out[row["call_id"]] = row["state"]
        return out

    def delete_live_call(self, call_id: str) -> None:
        self._exec("DELETE FROM live_calls WHERE call_id = ?", (call_id,))

    def write_live_calls(self, changes: Mapping[str, str | None]) -> None:
        """Many live-call snapshots (None = the call is over) in ONE transaction (one commit)."""
        conn, now = self._conn(), self.clock()
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                for call_id, text in changes.items():
                    if text is None:
                        conn.execute("DELETE FROM live_calls WHERE call_id = ?", (call_id,))
                    else:
                        conn.execute(
                            "INSERT INTO live_calls (call_id, state, updated_at) VALUES (?, ?, ?) ON CONFLICT"
                            "(call_id) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at",
                            (call_id, text, now),
                        )
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog query failed: {exc}") from exc

    # -- audit -------------------------------------------------------------------
    def audit(self, actor: str, role: str, action: str, target: str = "",
              detail: Mapping[str, Any] | None = None) -> None:
        """One audit row through the one writer (``pbx_recorder.audit_trail``: chained, numbers masked)."""
        audit_trail.record(self._conn(), actor=actor, role=role, action=action, target=target,
                           detail=detail, now=self.clock())

    def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        return audit_trail.entries(self._conn(), limit=limit)
