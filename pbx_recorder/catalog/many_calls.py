"""The catalog's writes of many calls at once: one transaction for a block of work
(``transaction``), group commit of the per-call writes of several threads (``grouped``), and the
bulk path (``write_calls``).  A mixin of :class:`~pbx_recorder.catalog.repository.Catalog`: it
writes through the Catalog's own per-call methods (``upsert_call``, ``_insert_new``,
``_protect_recording`` ...), so the bulk path writes what the per-call path writes."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pbx_recorder.catalog import batch_reads, engine, gc_pause
from pbx_recorder.errors import CatalogError, PreparedMismatch

if TYPE_CHECKING:
    from pbx_recorder.catalog.group_commit import GroupCommit
    from pbx_recorder.recording import sign_ahead  # (imported when turned on: not at every CLI start)

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredRecording:
    """One recording as the shipper has stored it: its catalog row (as ``Shipper._catalog_row``
    builds it), and the manifest and ship record its ``after_store`` hooks see."""

    row: Mapping[str, Any]
    manifest: Any
    record: Any = None


#: an ``after_store`` hook (``pbx_recorder.recording.shipper.AfterStore``): signing, the ledger's
#: ``stored`` entry ...
AfterStoreHook = Callable[[Any, str, Any, Any], Any]


class ManyCalls:
    """Catalog methods that write many calls or recordings in one transaction."""

    #: ``enable_sign_ahead``: on or off, and the helper (one batch at a time holds it)
    _sign_ahead_on = False
    _sign_ahead: sign_ahead.SignAhead | None = None

    if TYPE_CHECKING:  # what they use of the Catalog
        clock: Callable[[], float]
        sealer: Callable[[sqlite3.Connection, str], None] | None
        numbers: Any
        _sign_ahead_lock: threading.Lock

        def seal_form(self) -> Any: ...
        group_commit: GroupCommit
        _local: threading.local

        def _conn(self) -> sqlite3.Connection: ...
        def shared_writer(self) -> sqlite3.Connection | None: ...
        def upsert_call(self, row: Mapping[str, Any]) -> None: ...
        def upsert_recording(self, row: Mapping[str, Any]) -> None: ...
        def _insert_new(self, table: str, key: str, row: Mapping[str, Any],
                        defaults: Mapping[str, Any]) -> None: ...
        def _protect_recording(self, recording_id: str, row: Mapping[str, Any],
                               signed_sha256: str | None = None) -> Mapping[str, Any]: ...

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction for everything done in the block (this thread's connection):
        the repository's methods, the sealer and the ledger append inside it, one commit."""
        conn = self._conn()
        if conn.in_transaction:
            raise CatalogError("a catalog transaction is already open on this connection")
        with engine.write_transaction(conn):
            yield conn

    def grouped(self, work: Callable[[], T]) -> T:
        """``work()`` (one call's or recording's writes, through this catalog) in one transaction
        that other threads' units may share (``catalog.group_commit``); its result once committed."""
        return self.group_commit.run(work)

    def write_calls(self, calls: Iterable[tuple[Mapping[str, Any], Sequence[StoredRecording]]],
                    after_store: Sequence[AfterStoreHook] = (), *, sign_ahead_now: bool | None = None) -> int:
        """Bulk write path: many finished calls with their stored recordings in ONE transaction.

        Per call exactly what the daemon and the shipper write one call at a time: the call row
        (collision check, seal, ``call_sealed`` ledger entry), each recording row ``stored``,
        the ``after_store`` hooks (manifest signature, the ledger's ``stored`` entry ...) with
        their returned fields merged, then ``verified``.  All or nothing; returns how many calls.

        Hooks marked ``after_commit`` (``ChainHeadHook``: it signs and publishes the ledger head)
        run for each recording once the transaction has committed, never inside it.

        When every hook says it does not need the recording's row (``before_row``: signing, the
        ledger's ``stored`` entry), the hooks run first (the ledger's order is the same: the call's
        entry, then the recording's) and each recording row is written once, in its final form.

        On SQLite the batch is a transaction of its own taken as group commit's leader
        (``GroupCommit.run_alone``), through the catalog's writer connection (``shared_writer``);
        inside the caller's transaction when the caller has one open.  On PostgreSQL it is this
        thread's own transaction, pipelined.  On both, the batch's stored call rows (collision
        checks) and its recordings' ledger entries are read once for the whole batch
        (``batch_reads``): on PostgreSQL the batch then waits for the server a fixed number of
        times, not three times a call.

        With ``enable_sign_ahead`` a helper process makes the batch's signatures ahead
        (``recording.sign_ahead``); ``sign_ahead_now`` False: not for this batch."""
        # hooks that publish what the transaction wrote (``ChainHeadHook``): after the commit only
        later = [hook for hook in after_store if getattr(hook, "after_commit", False)]
        after_store = [hook for hook in after_store if hook not in later]
        batch = list(calls)
        try:
            with self._signed_ahead(batch, after_store, sign_ahead_now is not False):
                return self._write_batch(batch, after_store, later)
        except PreparedMismatch as exc:
            # a checked result of the helper was not the writer's own: nothing of the batch was
            # committed (one transaction); the helper is dropped and the writer writes it alone
            log.error("bulk write: %s; the helper is stopped and the batch written again without it", exc)
            with self._sign_ahead_lock:
                if self._sign_ahead is not None:  # (kept, broken: no new helper is started)
                    self._sign_ahead.give_up(str(exc))
            return self._write_batch(batch, after_store, later)

    def _write_batch(self, batch: Sequence[tuple[Mapping[str, Any], Sequence[StoredRecording]]],
                     after_store: Sequence[AfterStoreHook], later: Sequence[AfterStoreHook]) -> int:
        stored: list[StoredRecording] = []

        def rows(read_once: bool) -> int:
            stored.clear()
            done = 0
            with self._reads_once(batch, after_store, read_once):
                for call, recordings in batch:
                    self.upsert_call(call)
                    for rec in recordings:
                        if later:
                            stored.append(rec)
                        self.store_recording(rec, after_store, written_call=call.get("call_id"))
                    done += 1
            return done

        def alone() -> int:
            with self._naming_once():
                return rows(True)

        if self.shared_writer() is not None:
            # SQLite: a transaction of its own through the catalog's one writer connection and
            # its warm page cache, taken as group commit's leader (not a unit: a savepoint would
            # journal every page the batch writes)
            done = self.group_commit.run_alone(alone)
        else:  # PostgreSQL (the cache is the server's): this thread's transaction, pipelined
            done = self._pipelined_batch(rows)
        for rec in stored:
            for hook in later:
                hook(self, str(rec.row["recording_id"]), rec.manifest, rec.record)
        return done

    def enable_sign_ahead(self, on: bool = True) -> None:
        """Bulk writes (``write_calls``) of this catalog have their signatures made ahead by a
        helper process (``recording.sign_ahead``); off: the writer signs (the default)."""
        self._sign_ahead_on = on
        if not on:
            self.close_sign_ahead()

    def close_sign_ahead(self) -> None:
        helper, self._sign_ahead = self._sign_ahead, None
        if helper is not None:
            helper.close()

    def presigned(self, kind: str, ident: str, data: bytes) -> str | None:
        """Inside ``write_calls``: the signature the helper made ahead for ``data`` as job
        ``(kind, ident)`` (exactly these bytes, by the key the job names), else None."""
        made = getattr(self._local, "presigned", None)
        return None if made is None else made.take(kind, ident, data)

    def premade_manifest(self, recording_id: str, manifest: Any) -> sign_ahead.PreparedManifest | None:
        """Inside ``write_calls``: the helper's signature and bytes' hash of this very manifest
        object, sent as ``recording_id`` (``SignAfterStore`` takes them), else None."""
        made = getattr(self._local, "presigned", None)
        return None if made is None else made.take_manifest(recording_id, manifest)

    def _prepared_call(self, row: Mapping[str, Any]) -> sign_ahead.PreparedCall | None:
        """Inside ``write_calls``: what the helper made of this very call row as a new call (its
        token columns, opened fields and seal), else None."""
        made = getattr(self._local, "presigned", None)
        return None if made is None else made.take_call(str(row["call_id"]), row)

    def _presigned_seal(self, call_id: str) -> Callable[[bytes], str | None] | None:
        made = getattr(self._local, "presigned", None)
        return None if made is None else made.signer("seal", call_id)  # (sign_ahead.SEAL)

    @contextmanager
    def _signed_ahead(self, batch: Sequence[tuple[Mapping[str, Any], Sequence[StoredRecording]]],
                      hooks: Sequence[AfterStoreHook], wanted: bool = True) -> Iterator[None]:
        """The batch's signatures asked of the helper (when on, and no other batch of this
        catalog has it), taken by the writer as it comes to them (``presigned``)."""
        if not (wanted and self._sign_ahead_on) or not self._sign_ahead_lock.acquire(blocking=False):
            yield
            return
        from pbx_recorder.recording.sign_ahead import MANIFEST, SEAL

        try:
            # chosen (or made) under the lock: writers in several threads once each made a helper
            # at the same time, and the ones the catalog did not keep ran on unwaited for
            helper = self._helper_for(hooks)
            if helper is None:
                yield
                return
            jobs: list[sign_ahead.Job] = []
            for call, recordings in batch:
                if call.get("call_id"):
                    jobs.append((SEAL, str(call["call_id"]), dict(call)))
                jobs.extend((MANIFEST, str(r.row["recording_id"]), r.manifest)
                            for r in recordings if r.row.get("recording_id"))
            made = helper.batch(jobs)
            self._local.presigned = made
            try:
                yield
            finally:
                self._local.presigned = None
                if made is not None:
                    made.finish()
        finally:
            self._sign_ahead_lock.release()

    def _helper_for(self, hooks: Sequence[AfterStoreHook]) -> sign_ahead.SignAhead | None:
        """The helper for this catalog's sealer key and the hooks' manifest key (a new one when
        they changed); None when it failed before or there is nothing it could sign."""
        from pbx_recorder.recording import sign_ahead

        seal_key = getattr(self.sealer, "key", None)
        form = self.seal_form() if seal_key is not None else None
        manifest_key = sign_ahead.manifest_key_of(hooks)
        seal_key = seal_key if form is not None else None
        if seal_key is None and manifest_key is None:
            return None
        helper = self._sign_ahead
        if helper is not None and helper.broken:
            return None
        # the number keys as they are now (the ring asked again: a retired key fails here, closed)
        number_keys = self._number_keys() if form is not None and form.protected else None
        if helper is None or not helper.serves_all(seal_key, manifest_key, form, number_keys):
            self.close_sign_ahead()
            helper = self._sign_ahead = sign_ahead.SignAhead(seal_key, manifest_key, form, number_keys,
                                                             self.numbers)
        return helper

    def _number_keys(self) -> sign_ahead.NumberKeys | None:
        """What a helper needs to make new calls' tokens and blind indexes as this catalog does."""
        numbers = self.numbers
        if numbers is None:
            return None
        key_id, aes_key, check = numbers.cipher.current_key_material()
        return key_id, aes_key, check, numbers.index.write_key()

    def _pipelined_batch(self, rows: Callable[[bool], int]) -> int:
        """PostgreSQL: ``rows`` in this thread's transaction, pipelined, its reads made once for
        the batch; again with each call read on its own when a new row did not go in
        (:class:`~pbx_recorder.catalog.batch_reads.StandInMoved`: the first try is rolled back)."""
        from pbx_recorder.recording import ledger  # (not at import: the ledger imports the catalog package)

        def attempt(read_once: bool) -> int:
            # (the collector off: the pipeline keeps the batch's cursors alive, gc_pause says why)
            with (gc_pause.paused(), self.transaction() as conn, engine.pipelined(conn),
                  ledger.appending(conn), self._naming_once()):
                return rows(read_once)

        try:
            return attempt(True)
        except batch_reads.StandInMoved:
            return attempt(False)

    @contextmanager
    def _reads_once(self, batch: Sequence[tuple[Mapping[str, Any], Sequence[StoredRecording]]],
                    hooks: Sequence[AfterStoreHook], read_once: bool) -> Iterator[None]:
        """Inside the batch's transaction: the call rows of its collision checks and the ledger
        entries its hooks read, read once for all its calls; on PostgreSQL the new rows'
        ``RETURNING`` answers read at its end (``batch_reads``).  Off (``read_once`` False) or
        inside an enclosing batch: each call reads on its own."""
        from pbx_recorder.recording import ledger

        if not read_once or getattr(self._local, "known", None) is not None:
            yield
            return
        conn = self._conn()
        known = batch_reads.KnownReads(
            calls=batch_reads.calls_by_id(conn, (str(c["call_id"]) for c, _ in batch if c.get("call_id"))),
            inserts=[] if engine.is_postgres(conn) else None)
        rids = [str(r.row["recording_id"]) for _, recs in batch for r in recs if r.row.get("recording_id")]
        entries = (ledger.entries_known(conn, rids)
                   if any(getattr(h, "reads_ledger_entries", False) for h in hooks) else nullcontext())
        self._local.known = known
        try:
            with entries:
                yield
                known.check_inserts()
        finally:
            self._local.known = None

    def store_recording(self, rec: StoredRecording, after_store: Sequence[AfterStoreHook],
                        written_call: Any = None) -> None:
        """One stored recording's catalog writes, in the caller's transaction (each recording of
        :meth:`write_calls`; the shipper's unit of group commit): the row ``stored``, the hooks
        with their returned fields merged, then ``verified``.  When every hook says it does not
        need the row (``before_row``: signing, the ledger's ``stored`` entry) the hooks run first
        and the row is written once, in its final form (the rows end up the same; inside the
        transaction nobody else sees the ``stored`` state).  ``written_call``: the id of the call
        row this transaction has just written (no stand-in call row is needed for it)."""
        rid = str(rec.row["recording_id"])
        if all(getattr(hook, "before_row", False) for hook in after_store):
            merged = self._run_hooks(after_store, rid, rec)
            final = {**rec.row, **merged, "state": "verified"}
            if final.get("call_id") and final["call_id"] == written_call:
                # its call row was just written: no stand-in row, and the insert itself says
                # whether the recording is new (a retried batch updates it)
                self._insert_new("recordings", "recording_id",
                             self._protect_recording(rid, final, merged.get("manifest_sha256")),
                             {"state": "spooled", "created_at": self.clock()})
            else:
                self.upsert_recording(final)
            return
        self.upsert_recording({**rec.row, "state": "stored"})
        merged = self._run_hooks(after_store, rid, rec)
        # the hooks' fields and the final state in one row write (the rows end up the same as
        # with one write per hook)
        self.upsert_recording({"recording_id": rid, **merged, "state": "verified"})

    def _run_hooks(self, after_store: Sequence[AfterStoreHook], rid: str,
                   rec: StoredRecording) -> dict[str, Any]:
        """The ``after_store`` hooks of one recording, in order; their returned fields merged."""
        merged: dict[str, Any] = {}
        for hook in after_store:
            extra = hook(self, rid, rec.manifest, rec.record)
            if isinstance(extra, Mapping) and extra:
                merged.update(extra)
        return merged

    @contextmanager
    def _naming_once(self) -> Iterator[None]:
        """Within one transaction (``write_calls``): the numbers a call names in its row, CDR and
        manifest are found and indexed once (the rows ``call_numbers`` gets are the same)."""
        self._local.named = [None, [], set()]
        try:
            yield
        finally:
            self._local.named = None
