"""The catalog (SQLite, or PostgreSQL behind ``engine``): its connections and the per-call writes
of calls and recordings, sealed and with their numbers protected.  Searching is
``call_search.CallSearch``, writes of many calls ``many_calls.ManyCalls``, live-call snapshots
``live_calls.LiveCalls``: mixins of :class:`Catalog`.

One connection per thread (``threading.local``), WAL, ``busy_timeout``, foreign keys.
Only parameterized SQL; column names come from the schema itself (``PRAGMA
table_info``), never from input.  JSON columns go through ``json_columns``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pbx_recorder.catalog import (
    call_tags,
    engine,
    extra_numbers,
    fresh_numbers,
    named_rows,
    seal_ahead,
    stored_form,
)
from pbx_recorder.catalog.call_search import CallSearch
from pbx_recorder.catalog.call_search import SearchPage as SearchPage  # (where callers import it)
from pbx_recorder.catalog.group_commit import GroupCommit
from pbx_recorder.catalog.json_columns import decode_row, encode_column
from pbx_recorder.catalog.live_calls import LiveCalls
from pbx_recorder.catalog.many_calls import AfterStoreHook as AfterStoreHook  # (where callers import them)
from pbx_recorder.catalog.many_calls import ManyCalls
from pbx_recorder.catalog.many_calls import StoredRecording as StoredRecording
from pbx_recorder.catalog.protected_rows import (
    CALL_FIELDS,
    CLEAR_DEFAULTS,
    CLEAR_MANIFEST_FIELDS,
    NumberProtection,
    call_token_text,
)
from pbx_recorder.catalog.schema import ensure_schema
from pbx_recorder.errors import CallIdCollision, CatalogError, NotFound
from pbx_recorder.recording import manifest_copy
from storage import file_modes

if TYPE_CHECKING:
    from pbx_recorder.recording import sign_ahead

#: SQLite's answer to an INSERT whose primary key is taken
_KEY_TAKEN = getattr(sqlite3, "SQLITE_CONSTRAINT_PRIMARYKEY", 1555)


class Catalog(CallSearch, ManyCalls, LiveCalls):
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time,
                 sealer: Callable[[sqlite3.Connection, str], None] | None = None,
                 numbers: NumberProtection | None = None) -> None:
        self.path = str(path)  # a file (SQLite) or a postgresql:// URL (engine.is_url)
        self.clock = clock
        self.sealer = sealer  # pbx_recorder.recording.call_seal.CallSealer: seals every call row written here
        # pbx_recorder.catalog.protected_rows: numbers encrypted on write, opened on read (None:
        # a catalog without keys, numbers in clear as before schema 6)
        self.numbers = numbers
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        # PostgreSQL connections are pooled: held weakly here, so a thread that ends (a server's
        # worker, a test client's portal) gives its connection back to the pool with it
        self._pooled: weakref.WeakSet[Any] = weakref.WeakSet()
        self._writer: sqlite3.Connection | None = None  # the group-commit leaders' (shared_writer)
        self._sign_ahead_lock = threading.Lock()  # ``enable_sign_ahead``: one batch at a time
        self.group_commit = GroupCommit(self)  # per-call writes of several threads, one transaction
        if self.path != ":memory:" and not engine.is_url(self.path):
            try:
                file_modes.prepare_sqlite(self.path)  # 0600 before SQLite creates it (and its WAL)
            except OSError as exc:
                raise CatalogError(f"cannot create catalog {self.path}: {exc.strerror}") from exc
        conn = self._conn()
        with self._lock:
            ensure_schema(conn, self.path)
        self._columns = {t: [c for c in engine.table_columns(conn, t) if c != "rowid"]
                         for t in ("calls", "recordings")}
        #: new calls inserted fresh and settled in batches (SQLite, schema 25: ``fresh_numbers``)
        self.fresh = fresh_numbers.Settler(self._columns["calls"], engine.is_postgres(conn))
        # the columns the call seal covers, their kinds and defaults (``_write_sealed``); None: the
        # sealer cannot seal from values (or an old schema): rows are read back to be sealed
        self._sealed_form: dict[str, stored_form.Column] | None = None
        columns = getattr(sealer, "columns", None)
        if getattr(sealer, "seal_of", None) is not None and columns and "seal" in self._columns["calls"]:
            self._sealed_form = stored_form.describe(conn, "calls", columns)

    # -- connections -------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = engine.connect(self.path, timeout=engine.BUSY_TIMEOUT_MS / 1000)
            self._local.conn = conn
            with self._lock:
                if engine.is_postgres(conn):
                    self._pooled.add(conn)
                else:
                    self._all.append(conn)
        return conn  # type: ignore[no-any-return]

    def shared_writer(self) -> sqlite3.Connection | None:
        """SQLite: the one connection every group-commit leader of this process writes through,
        with the larger page cache :data:`engine.WRITER_CACHE_KIB` and ``engine.tune_writer``'s
        settings (None on PostgreSQL, whose cache is the server's, and for ``:memory:``).  In WAL
        mode a commit by another connection empties a connection's whole page cache at its next
        transaction: leaders writing through their own threads' connections each started from an
        empty cache, and read every index page a call touches again, one group after the other.
        One leader at a time uses it (``GroupCommit``)."""
        if self.path == ":memory:" or engine.is_postgres(self._conn()):
            return None
        with self._lock:
            if self._writer is None:
                writer = engine.connect(self.path, timeout=engine.BUSY_TIMEOUT_MS / 1000,
                                        cache_kib=engine.WRITER_CACHE_KIB)
                engine.tune_writer(writer)
                self._writer = writer
                self._all.append(self._writer)
            return self._writer

    def release(self) -> None:
        """Give this thread's PostgreSQL connection back to its pool (a SQLite connection is kept:
        it holds nothing shared).  For a server whose worker threads outnumber the pool: each
        request releases what it took."""
        conn = getattr(self._local, "conn", None)
        if conn is None or not engine.is_postgres(conn):
            return
        self._local.conn = None
        with self._lock:
            self._pooled.discard(conn)
        conn.close()

    def close(self) -> None:
        self.close_sign_ahead()
        with self._lock:
            for conn in [*self._all, *self._pooled]:
                conn.close()
            self._all.clear()
            self._pooled = weakref.WeakSet()
            self._writer = None
        self._local = threading.local()

    def _exec(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn().execute(sql, params)
        except engine.db_errors() as exc:
            raise CatalogError(f"catalog query failed: {exc}") from exc

    def _upsert(self, table: str, key: str, row: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
        cols, values = self._bound(table, row, defaults)
        updates = ", ".join(f"{c}=excluded.{c}" for c in cols if c != key and (c in row or c == "updated_at"))
        sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
               f"ON CONFLICT({key}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING"))
        self._exec(sql, values)

    def _insert_new(self, table: str, key: str, row: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
        """As :meth:`_upsert`, for a row expected to be new: on SQLite a plain ``INSERT`` (an
        upsert copies every page it changes to a statement journal first: ``schema_tag_writes``),
        the upsert when the key turns out to be taken (a retried batch); on PostgreSQL the upsert."""
        conn = self._conn()
        if engine.is_postgres(conn):
            self._upsert(table, key, row, defaults)
            return
        cols, values = self._bound(table, row, defaults)
        try:
            conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                         values)
        except sqlite3.IntegrityError as exc:
            # the key taken: nothing was written (SQLite checks a row's constraints before it
            # changes a page); any other constraint is an error, as from the upsert
            if getattr(exc, "sqlite_errorcode", None) != _KEY_TAKEN:
                raise CatalogError(f"catalog query failed: {exc}") from exc
            self._upsert(table, key, row, defaults)
        except engine.db_errors() as exc:
            raise CatalogError(f"catalog query failed: {exc}") from exc

    def _bound(self, table: str, row: Mapping[str, Any],
               defaults: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
        """The columns of ``row`` over ``defaults`` (unknown ones refused) and their bound values."""
        allowed = self._columns[table]
        unknown = set(row) - set(allowed)
        if unknown:
            raise CatalogError(f"unknown {table} columns: {sorted(unknown)}")
        data = {**defaults, **row}
        cols = [c for c in allowed if c in data]
        return cols, [encode_column(c, data[c]) for c in cols]

    def _update(self, table: str, key: str, key_value: str, row: Mapping[str, Any]) -> None:
        allowed = self._columns[table]
        cols = [c for c in allowed if c in row and c != key]
        if set(row) - set(allowed):
            raise CatalogError(f"unknown {table} columns: {sorted(set(row) - set(allowed))}")
        if cols:
            self._exec(f"UPDATE {table} SET {', '.join(c + '=?' for c in cols)} WHERE {key} = ?",
                       [*(encode_column(c, row[c]) for c in cols), key_value])

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
            existing = self._stored_call(conn, str(row["call_id"]))
            theirs, ours = (existing["started_at"] if existing else None), row.get("started_at")
            if theirs is not None and ours is not None and abs(float(theirs) - float(ours)) > 0.001:
                raise CallIdCollision(f"call id {row['call_id']} already holds the call that started at "
                                      f"{theirs}; the row of the call that started at {ours} was not "
                                      "written over it")
            opened = None  # the protected fields in clear, as the stored token opens
            prepared = None  # inside write_calls with a helper: what it made of this very row, new
            if self.numbers is not None and any(f in row for f in CALL_FIELDS):
                prepared = self._prepared_call(row) if existing is None else None
                row, opened = self._protect_call(conn, row, existing, prepared)
            if not self._write_sealed(conn, row, existing, opened, prepared):
                self._upsert("calls", "call_id", row, {"updated_at": self.clock()})
                if "tags" in row:  # a new row's tags (schema 19; an updated row's: the trigger)
                    call_tags.copy_new_call(conn, str(row["call_id"]), encode_column("tags", row["tags"]))
                if self.sealer is not None:
                    self.sealer(conn, str(row["call_id"]))
            if own:
                conn.execute("COMMIT")
        except BaseException as exc:
            if own and conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, engine.db_errors()):
                raise CatalogError(f"catalog query failed: {exc}") from exc
            raise

    def _write_sealed(self, conn: sqlite3.Connection, row: Mapping[str, Any],
                      existing: sqlite3.Row | None, opened: Mapping[str, Any] | None = None,
                      prepared: sign_ahead.PreparedCall | None = None) -> bool:
        """Write the call row with its seal in the same statement, the seal computed from the
        values bound (``catalog.stored_form``: only where they are provably what ``verify`` reads
        back); False when that cannot be proved (the caller writes, reads back and seals).
        ``prepared``: the seal a helper made of this very row as a new call
        (``seal_ahead.new_call_sealed_bytes``: the same values, so the same bytes), taken as it
        is unless it is one the writer checks."""
        if self._sealed_form is None or "seal" in row or getattr(self.sealer, "seal_of", None) is None:
            return False
        postgres = engine.is_postgres(conn)
        if postgres and existing is not None:
            # PostgreSQL keeps the read-back for a row that exists: a writer that does not take the
            # catalog's lock may change it between the collision read and this write; SQLite's
            # BEGIN IMMEDIATE excludes every other writer
            return False
        allowed = self._columns["calls"]
        if set(row) - set(allowed):
            raise CatalogError(f"unknown calls columns: {sorted(set(row) - set(allowed))}")
        bound = seal_ahead.bound_columns(allowed, row, existing is not None, self.clock())
        if prepared is not None and not prepared.check and opened is not None and self._opens_as_sealer():
            bound["seal"] = prepared.seal
        else:
            base = dict(existing) if existing is not None else None
            stored = stored_form.read_back(self._sealed_form, bound, base)
            if stored is None:
                return False
            # a signature a helper made ahead for these very bytes (``write_calls``), else the sealer's
            made = None if prepared is not None else self._presigned_seal(str(row["call_id"]))
            if opened is not None and self._opens_as_sealer():
                # the sealer would open the token just made with the same keys: its fields are known
                bound["seal"] = self.sealer.seal_of(stored, opened, made)  # type: ignore[union-attr]
            else:
                bound["seal"] = self.sealer.seal_of(stored, made=made)  # type: ignore[union-attr]
            if prepared is not None:  # a checked one: the writer's own seal must be the helper's
                prepared.compare_seal(str(row["call_id"]), str(bound["seal"]))
        names = list(bound)
        if existing is None and postgres:
            if not self._insert_over_stand_in(conn, bound):
                return False  # a row that is not a bare stand-in appeared: nothing written, read back
        elif existing is None:  # (no other writer since the collision read: the write lock is held)
            # (not sealed: where the call's number entries wait)
            mark = {c: v for c, v in self.fresh.column().items() if c not in bound}
            names += list(mark)
            sql = f"INSERT INTO calls ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            values = {**bound, **mark}
            conn.execute(sql, [values[c] for c in names])
            call_tags.copy_new_call(conn, str(row["call_id"]), bound.get("tags"))  # (schema 19)
            if mark:
                self.fresh.inserted(conn)
        else:
            sql = f"UPDATE calls SET {', '.join(c + '=?' for c in names if c != 'call_id')} WHERE call_id = ?"
            conn.execute(sql, [*(bound[c] for c in names if c != "call_id"), row["call_id"]])
        if existing is None or not existing["seal"]:  # first seal of this row: its ledger entry
            self.sealer.sealed(conn, str(row["call_id"]))  # type: ignore[union-attr]
        return True

    def _opens_as_sealer(self) -> bool:
        """The sealer opens a row's token with this catalog's own number keys (``reveal`` is
        ``self.numbers.open_call``): the fields just sealed into it are what it would open."""
        reveal = getattr(self.sealer, "reveal", None)
        return self.numbers is not None and getattr(reveal, "__self__", 0) is self.numbers

    def seal_form(self) -> seal_ahead.SealForm | None:
        """What a new call's seal depends on besides the row (``catalog.seal_ahead``); None when
        this catalog does not seal from the values it binds."""
        if self._sealed_form is None or getattr(self.sealer, "seal_of", None) is None:
            return None
        protected = self._opens_as_sealer()
        if not protected and (self.numbers is not None or getattr(self.sealer, "reveal", None) is not None):
            return None  # a sealer that opens rows some other way: its bytes are not predicted
        return seal_ahead.SealForm(tuple(self._columns["calls"]), dict(self._sealed_form), protected)

    def _insert_over_stand_in(self, conn: sqlite3.Connection, bound: Mapping[str, Any]) -> bool:
        """PostgreSQL: insert a new call row with its seal.  The one writer that does not take the
        catalog's lock, the pipeline's stand-in row of a recording (``call_id``, ``updated_at``,
        defaults), may have inserted the row since the collision read; it is written over only
        while every sealed column this write does not bind still holds its default (the proposed
        row's value, ``excluded``) and it has no start time, so the row stored is the row sealed.
        False: another row is there, nothing was written.  Inside ``write_calls`` the answer is
        read with the batch's others at its end (``batch_reads.KnownReads.check_inserts``)."""
        assert self._sealed_form is not None
        names = list(bound)
        keep = [c for c in self._sealed_form if c not in bound]
        guard = " AND ".join(["calls.started_at IS NULL",
                              *(f"calls.{c} IS NOT DISTINCT FROM excluded.{c}" for c in keep)])
        sets = ", ".join(f"{c}=excluded.{c}" for c in names if c != "call_id")
        sql = (f"INSERT INTO calls ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
               f"ON CONFLICT (call_id) DO UPDATE SET {sets} WHERE {guard} RETURNING call_id")
        cursor = conn.execute(sql, [bound[c] for c in names])
        known = getattr(self._local, "known", None)
        if known is not None and known.inserts is not None:  # a batch reads every answer at its end
            known.inserts.append((str(bound["call_id"]), cursor))
            return True
        return cursor.fetchone() is not None

    def _stored_call(self, conn: sqlite3.Connection, call_id: str) -> sqlite3.Row | None:
        """The call's stored row for the collision check (inside ``write_calls``: read for the
        whole batch at its start, ``batch_reads``)."""
        known = getattr(self._local, "known", None)
        if known is not None:
            return known.stored_call(conn, call_id)  # type: ignore[no-any-return]
        return conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()  # type: ignore[no-any-return]

    def _protect_call(self, conn: sqlite3.Connection, row: Mapping[str, Any], existing: sqlite3.Row | None,
                      prepared: sign_ahead.PreparedCall | None = None,
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``row`` with its numbers merged with the stored ones, encrypted and indexed; and
        those fields as the stored token opens.  ``prepared``: a new call's token columns and
        opened fields a helper made of this very row (the same fields: no stored row to merge),
        taken as they are unless it is one the writer checks."""
        assert self.numbers is not None
        call_id = str(row["call_id"])
        current = self.numbers.open_call(decode_row(existing)) if existing is not None else {}
        plain = {f: row[f] if f in row else current.get(f, CLEAR_DEFAULTS[f]) for f in CALL_FIELDS}
        if prepared is not None and existing is None and not prepared.check:
            stored, opened = prepared.stored, prepared.opened
        else:
            stored, opened = self.numbers.seal_call_opened(call_id, plain)
            if prepared is not None:
                prepared.compare(self.numbers, call_id, call_token_text(plain)[0], stored, opened)
        own = {str(stored["caller_bi"]), str(stored["callee_bi"])} - {""}
        # a caller or callee the stored row had and this one does not keeps an index row
        before = (current.get("caller_num"), current.get("callee_num")) if existing is not None else ()
        self._index_named(conn, call_id, plain["caller_num"], plain["callee_num"], plain["cdr"], *before,
                          own=own, prepared=prepared if existing is None else None)
        if existing is not None:  # numbers the stored row named and this one drops stay indexed
            # only a number that just became the row's own can have an index row to drop
            named_rows.drop_own(conn, call_id, own - {existing["caller_bi"], existing["callee_bi"]})
            extra_numbers.after_call_write(conn, self.numbers, call_id, current, plain)
        return {**row, **stored}, opened

    def _index_named(self, conn: sqlite3.Connection, call_id: str, *values: Any,
                     own: set[str] | None = None,
                     prepared: sign_ahead.PreparedCall | None = None) -> set[str]:
        """Index the numbers ``values`` name, but the call's ``own`` caller and callee
        (``named_rows``; None: the stored row's); the digits of those indexed (inside
        ``write_calls`` only those the call's values in this transaction did not already name).
        ``prepared``: a new call's results made by the sign-ahead helper, whose ``named`` is the
        ``named_index`` of these very values: taken when none of them was indexed before in this
        transaction (made again and compared when it is one the writer checks)."""
        assert self.numbers is not None
        seen = getattr(self._local, "named", None)  # (call id, values indexed, indexes written or own)
        whole = True
        if seen is not None:  # inside write_calls: a value the call already had indexed is not searched again
            if seen[0] != call_id:
                seen[:] = [call_id, [], set()]
            kept = tuple(v for v in values if not any(v == old for old in seen[1]))
            whole, values = len(kept) == len(values), kept
            if own is not None:
                seen[2].update(own)
        if prepared is not None and whole and not prepared.check:
            found = prepared.named
        else:
            found = self.numbers.named_index(*values)
            if prepared is not None and whole:
                prepared.compare_named(call_id, found)
        if seen is not None:
            seen[1].extend(values)
            found = {d: bi for d, bi in found.items() if bi not in seen[2]}
            seen[2].update(found.values())
        if own is not None:
            found = {d: bi for d, bi in found.items() if bi not in own}
        elif seen is not None:  # the row written in this transaction put its own indexes in seen[2]
            own = set()
        named_rows.insert(conn, call_id, found.values(), own)
        return set(found)

    def _open_call(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.numbers.open_call(row) if self.numbers is not None else row

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (audit appends, the accounts of ``pbx_recorder.service``)."""
        return self._conn()

    # -- recordings --------------------------------------------------------------
    def upsert_recording(self, row: Mapping[str, Any]) -> None:
        """Insert or update a recording; a placeholder call row is created if missing."""
        rid, call_id = row.get("recording_id"), row.get("call_id")
        if not rid:
            raise CatalogError("recording row without recording_id")
        row = self._protect_recording(str(rid), row)
        if call_id:
            self._exec("INSERT INTO calls (call_id, updated_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                       (call_id, self.clock()))
        exists = self._has_recording(str(rid))
        if not call_id and not exists:
            raise CatalogError(f"new recording {rid} without call_id")
        if exists:
            self._update("recordings", "recording_id", str(rid), row)
        else:
            self._insert_new("recordings", "recording_id", row,
                             {"state": "spooled", "created_at": self.clock()})

    def _protect_recording(self, recording_id: str, row: Mapping[str, Any],
                           signed_sha256: str | None = None) -> Mapping[str, Any]:
        """Every number a signed manifest names indexed; the catalog keeps only its copy
        (``manifest_copy``: what display reads, the signed bytes' hash), the signed manifest being
        the object stored beside the audio.  Anything else given as a manifest: numbers sealed.
        ``signed_sha256``: the hash of the signed bytes, from the signing hook that just made them."""
        if "manifest" not in row:
            return row
        raw = row["manifest"]
        plain = self.numbers.open_manifest(recording_id, raw) if self.numbers is not None else raw
        signed = manifest_copy.parse(plain)
        call_id = row.get("call_id") or signed.get("call_id")
        if call_id and self.numbers is not None and signed:
            # the catalog keeps no copy of the manifest's numbers: those its call's row lacks are
            # sealed (catalog.extra_numbers) with their index rows, in one transaction
            conn, cid, seen = self._conn(), str(call_id), getattr(self._local, "named", None)
            if seen is not None and seen[0] == cid:  # write_calls indexed its row in this transaction
                named = self._index_named(conn, cid, signed.get("cdr"), signed.get("callee_num"))
                extra_numbers.add(conn, self.numbers, cid, named)
            else:  # the manifest's numbers found and hashed once: new index rows, and what to seal
                new, extra = extra_numbers.lacking(conn, self.numbers, cid, signed)
                with self.transaction() if extra and not conn.in_transaction else nullcontext():
                    named_rows.insert(conn, cid, new.values(), ())  # (lacking left out the row's own)
                    extra_numbers.add(conn, self.numbers, cid, extra)
        if signed.get("recording_id"):  # numbers in clear: erasure reads them here (number_lookup)
            copy, digest = manifest_copy.catalog_copy(signed, () if self.numbers else CLEAR_MANIFEST_FIELDS,
                                                      signed_sha256)
            return {**row, "manifest": copy, "manifest_sha256": digest}
        if self.numbers is None:
            return row
        return {**row, "manifest": self.numbers.seal_manifest(recording_id, plain)}

    def _open_recording(self, row: sqlite3.Row) -> dict[str, Any]:
        out = decode_row(row)
        if self.numbers is not None:
            out["manifest"] = self.numbers.open_manifest(str(out["recording_id"]), out.get("manifest"))
        return out

    def _has_recording(self, recording_id: str) -> bool:
        """Existence only (no manifest JSON decoded: the write path asks this several times a call)."""
        found = self._exec("SELECT 1 FROM recordings WHERE recording_id = ?", (recording_id,)).fetchone()
        return found is not None

    def get_recording(self, recording_id: str) -> dict[str, Any] | None:
        row = self._exec("SELECT * FROM recordings WHERE recording_id = ?", (recording_id,)).fetchone()
        return self._open_recording(row) if row else None

    def recordings_for_call(self, call_id: str) -> list[dict[str, Any]]:
        rows = self._exec("SELECT * FROM recordings WHERE call_id = ? ORDER BY created_at, recording_id",
                          (call_id,)).fetchall()
        return [self._open_recording(r) for r in rows]

    def mark_state(self, recording_id: str, state: str, **fields: Any) -> None:
        if not self._has_recording(recording_id):
            raise NotFound(f"no recording {recording_id}")
        row = self._protect_recording(recording_id, {"state": state, **fields})
        self._update("recordings", "recording_id", recording_id, row)

    def recordings_in_state(self, state: str, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._exec("SELECT * FROM recordings WHERE state = ? ORDER BY created_at LIMIT ?",
                          (state, limit)).fetchall()
        return [self._open_recording(r) for r in rows]

    def protect_numbers(self, **kw: Any) -> Any:
        """Schema 6 data step over this catalog (``catalog.number_migration.protect``)."""
        if self.numbers is None:
            return None
        from pbx_recorder.catalog.number_migration import protect

        with self._lock:
            return protect(self._conn(), self.numbers, **kw)

