"""Hot -> cold migration: batched, resumable, verify-before-delete, per-region targets.

A recording is several objects (``recording_objects.objects_of``: audio, legs, kept
original, manifest sidecar); they move together, each keeping its key, in five steps,
each leaving a valid copy behind:

1. journal ``lifecycle_moves`` row, step ``copying``  (catalog still points at the source)
2. copy EVERY object to the destination tier, hashing while streaming; verify each there
3. one transaction: recordings row -> destination (tier, storage_key, storage_class,
   objects, migrated_at, state 'migrated'), journal step ``switched``, ledger ``migrated``
4. delete every object from the source
5. drop the journal row

A crash before 3 (even between two objects) leaves the source valid and complete (a
re-run copies everything again; ``journal.copies`` finds the partial destination copies
for erasure/retention); after 3 both copies exist and ``resume`` deletes every leftover
source object.  A source that Object Lock forbids deleting (retention, legal hold) is
contained per recording: the move stands, the source copy is kept (reported in
``Progress.kept_sources``) and its journal row makes a later run delete it once allowed.
Same tier with only a class change (S3, same bucket) uses the tier's ``change_storage_class``
instead of copying (or, where a bucket lifecycle rule moves the class, only switches the
catalog: ``transitions.follow`` records the class once the rule has acted).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pbx_recorder import scan
from pbx_recorder.core import retention
from pbx_recorder.errors import IntegrityError, ObjectNotRestored, PolicyRefusal, RecorderError, StorageError
from pbx_recorder.lifecycle import due_rows
from pbx_recorder.lifecycle.journal import LedgerAppend, Tx, default_ledger, rows
from pbx_recorder.recording.recording_objects import RecordingObject, objects_of, to_json
from storage.base import PutOptions, Tier
from storage.hashing import digests_equal, hash_stream

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    hot: str
    cold: str | None
    storage_class: str = ""  # destination class ("" = the tier's default)


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    kept_sources: list[str] = field(default_factory=list)  # "rid: why" for sources Object Lock keeps

    def line(self) -> str:
        return (
            f"migrated {self.done}/{self.total} ({self.bytes / 1e6:.1f} MB), "
            f"failed {self.failed}, skipped {self.skipped}"
            + (f", source kept for {len(self.kept_sources)} (Object Lock)" if self.kept_sources else "")
        )


ProgressFn = Callable[[Progress], None]


def same_location(a: Tier, b: Tier) -> bool:
    """The same object store location: one tier object, or two S3 tiers on one bucket+prefix+endpoint."""
    if a is b:
        return True

    def where(t: Tier) -> tuple[Any, ...] | None:
        bucket = getattr(t, "bucket", None)
        if bucket is None:
            return None
        meta = getattr(getattr(t, "client", None), "meta", None)
        endpoint = str(getattr(meta, "endpoint_url", None) or "").rstrip("/").lower()
        return type(t), bucket, getattr(t, "prefix", ""), endpoint

    if where(a) is not None and where(a) == where(b):
        return True
    roots = getattr(a, "root", None), getattr(b, "root", None)
    if roots[0] is None or roots[1] is None:
        return False
    try:  # two local tiers on one folder (a bind mount, a symlink the config did not see)
        return os.path.samefile(roots[0], roots[1])
    except OSError:
        return False


def may_be_one_location(a: Tier, b: Tier) -> bool:
    """Two S3 tiers naming one bucket and prefix, whatever their endpoints say (``http://minio:9000``
    and ``http://minio:9000/``, a region given or taken by default: one server, or two): a copy
    between them may be the object itself, and the source delete after it every version of it."""
    bucket = getattr(a, "bucket", None)
    return (bucket is not None and bucket == getattr(b, "bucket", None)
            and getattr(a, "prefix", "") == getattr(b, "prefix", ""))


class _RowGone(Exception):
    """The recording's catalog row disappeared or changed during its migration (an erasure, a deletion,
    a disposal by retention, another run's move)."""


class _MovedAlready(Exception):
    """Another run moved the recording to the same place meanwhile: the copy there is its copy
    (same keys), neither dropped nor switched again; the other run deletes the source."""


class Migrator:
    def __init__(
        self,
        conn: sqlite3.Connection,
        tiers: Mapping[str, Tier],
        *,
        default: Target,
        regions: Mapping[str, Target] | None = None,
        classes: Mapping[str, retention.ClassPolicy] | None = None,
        batch_size: int = 200,
        ledger: LedgerAppend | None = None,
    ) -> None:
        self.conn = conn
        self.tiers = tiers
        self.default = default
        self.regions = dict(regions or {})
        self.classes = dict(classes or {})
        self.batch_size = max(1, int(batch_size))
        self.ledger = ledger or default_ledger()

    # -- decisions ---------------------------------------------------------------------
    def target_for(self, rec: Mapping[str, Any]) -> Target:
        return self.regions.get(str(rec.get("region") or ""), self.default)

    def hot_rows(self) -> list[dict[str, Any]]:
        hot_names = {self.default.hot} | {t.hot for t in self.regions.values()}
        marks = ",".join("?" * len(hot_names))
        return rows(
            self.conn,
            f"SELECT * FROM recordings WHERE state IN ('stored','verified') "
            f"AND tier IN ({marks}) ORDER BY created_at, recording_id",
            sorted(hot_names),
        )

    def candidates(self, now: float) -> list[dict[str, Any]]:
        """Recordings due for cold storage now (the core's ``retention.migration_candidates``:
        class cold_after_days reached; expired unheld ones are left to disposal)."""
        return [r for chunk in self.iter_candidates(now) for r in chunk]

    def iter_candidates(self, now: float, *, batch: int | None = None,
                        progress: Callable[[int], None] | None = None) -> Iterator[list[dict[str, Any]]]:
        """:meth:`candidates` in batches, streamed (memory O(batch)): only the index ranges of
        recordings on a hot tier old enough for their class's ``cold_after_days`` are read
        (``due_rows.migration_due``: per state and class, oldest first), so ``progress`` (rows
        read per batch) counts only rows that could be due and a pass takes seconds at 10 M calls
        when few are."""
        hot_names = sorted({self.default.hot} | {t.hot for t in self.regions.values()})
        for chunk in due_rows.migration_due(self.conn, scan.columns_of(self.conn, "recordings"), self.classes,
                                            hot_names, now, batch=batch or self.batch_size):
            hot = [r for r in chunk if self.target_for(r).cold and r["tier"] == self.target_for(r).hot]
            due = {c.recording_id for c in retention.migration_candidates(hot, self.classes, now)}
            if progress is not None:
                progress(len(chunk))
            found = [r for r in hot if r["recording_id"] in due]
            if found:
                yield found

    # -- running -----------------------------------------------------------------------
    def run(
        self,
        now: float,
        *,
        limit: int | None = None,
        dry_run: bool = False,
        progress: ProgressFn | None = None,
    ) -> Progress:
        prog = Progress()
        if not dry_run:
            self.resume(now, prog)
        if not dry_run:  # a counting pass first (catalog only: cheap beside copying) for an exact total
            due = sum(len(chunk) for chunk in self.iter_candidates(now))
            prog.total = due if limit is None else min(due, limit)
        left = limit
        for chunk in self.iter_candidates(now):  # moved as found: memory O(batch) at any catalog size
            todo = chunk if left is None else chunk[:left]
            if dry_run:
                prog.total += len(todo)
                prog.skipped += len(todo)
            else:
                self._run_batch(todo, now, prog)
                if progress:
                    progress(prog)
            if left is not None:
                left -= len(todo)
                if left <= 0:
                    break
        return prog

    def _fail(self, prog: Progress, rec: Mapping[str, Any], exc: RecorderError) -> None:
        prog.failed += 1
        prog.errors.append(f"{rec['recording_id']}: {exc}")
        log.error("migration failed call=%s rec=%s: %s", rec["call_id"], rec["recording_id"], exc)

    def _run_batch(self, batch: list[dict[str, Any]], now: float, prog: Progress) -> None:
        """The five steps for a whole batch: one transaction per step instead of per recording."""
        moves = []
        for rec in batch:
            t = self.target_for(rec)
            if not t.cold or (rec["tier"] == t.cold and not t.storage_class):
                prog.skipped += 1
            elif self._same_tier(rec, t):
                try:
                    prog.done += int(self.migrate_one(rec, now, t))
                except RecorderError as exc:
                    self._fail(prog, rec, exc)
            else:
                moves.append((rec, t))
        with Tx(self.conn):
            for rec, t in moves:
                self._journal(rec, t, now)
        copied = []
        for rec, t in moves:
            try:
                copied.append((rec, t, *self._copy(rec, t)))
            except RecorderError as exc:
                self._fail(prog, rec, exc)
        gone: list[Any] = []
        elsewhere: list[Any] = []
        with Tx(self.conn):  # committed before any source is deleted
            for rec, t, cls, objs in copied:
                try:
                    self._switch(rec, t.cold or "", rec["storage_key"], cls, now, same_tier=False,
                                 objects=objs)
                except _RowGone:  # (nothing of it written: the other switches stand)
                    gone.append((rec, t, cls, objs))
                except _MovedAlready:
                    elsewhere.append((rec, t, cls, objs))
        for rec, t, _cls, objs in gone:
            self._drop_copies(rec, t.cold or "", objs)
        for rec, _t, _cls, objs in (c for c in copied if c not in gone and c not in elsewhere):
            self._delete_source(
                {"recording_id": rec["recording_id"], "src_tier": rec["tier"], "src_key": rec["storage_key"]},
                prog,
            )
            prog.done += 1
            prog.bytes += sum(int(o.get("size") or 0) for o in objs) or int(rec.get("size") or 0)

    def resume(self, now: float, prog: Progress | None = None) -> int:
        """Finish moves a crash (or Object Lock) interrupted after the catalog switch: delete
        leftover sources; returns how many were finished."""
        finished = 0
        for m in rows(self.conn, "SELECT * FROM lifecycle_moves WHERE step='switched'"):
            finished += int(self._delete_source(m, prog))
        return finished

    def _same_tier(self, rec: Mapping[str, Any], t: Target) -> bool:
        """Source and destination are one S3 bucket+prefix: a class change replaces the copy."""
        src, dst = self._tier(rec["tier"]), self._tier(t.cold or "")
        return hasattr(src, "change_storage_class") and same_location(src, dst)

    def migrate_one(self, rec: Mapping[str, Any], now: float, target: Target | None = None) -> bool:
        """Move one recording to its cold tier.  False when there is nothing to do."""
        t = target or self.target_for(rec)
        if not t.cold or (rec["tier"] == t.cold and not t.storage_class):
            return False
        key = rec["storage_key"]
        if self._same_tier(rec, t):  # S3, same bucket: only the storage class changes
            cls = t.storage_class or str(getattr(self._tier(t.cold), "storage_class", "") or "")
            if not cls or cls == rec.get("storage_class"):
                return False
            src = self._tier(rec["tier"])
            if getattr(self._tier(t.cold), "class_transition", "direct") == "lifecycle":
                # the bucket's rule moves the objects; the catalog follows (transitions.follow)
                info = src.stat(key)
                return self._switched(rec, t.cold, key, info.storage_class if info else "", now)
            for obj in objects_of(rec):  # every object of the recording changes class
                if obj.sha256 or src.stat(obj.key) is not None:  # (skip derived keys never stored)
                    src.change_storage_class(obj.key, cls)  # type: ignore[attr-defined]
            return self._switched(rec, t.cold, key, cls, now)
        with Tx(self.conn):
            self._journal(rec, t, now)
        cls, objs = self._copy(rec, t)
        try:
            self._switch(rec, t.cold, key, cls, now, same_tier=False, objects=objs)
        except _RowGone:
            self._drop_copies(rec, t.cold, objs)
            return False
        except _MovedAlready:
            return False
        self._delete_source({"recording_id": rec["recording_id"], "src_tier": rec["tier"], "src_key": key})
        return True

    def _switched(self, rec: Mapping[str, Any], tier: str, key: str, storage_class: str, now: float) -> bool:
        """The catalog follows a class change in place (same bucket); False when the row changed
        meanwhile (erased, disposed of, moved): nothing to follow."""
        try:
            self._switch(rec, tier, key, storage_class, now, same_tier=True)
        except (_RowGone, _MovedAlready):
            return False
        return True

    def _drop_copies(self, rec: Mapping[str, Any], tier: str, objects: list[dict[str, Any]]) -> None:
        """The recording was erased or deleted while its objects were being copied (the erasure
        removed both ends it saw; this copy finished after it): remove what this run put on the
        destination, so no copy of erased audio outlives its row (in a deployment without
        encryption it would stay readable), and the journal row."""
        rid = rec["recording_id"]
        dst = self._tier(tier)
        left = []
        for obj in objects:
            try:
                dst.delete(str(obj["key"]))
            except (PolicyRefusal, StorageError) as exc:  # (Object Lock in compliance mode ...)
                left.append(f"{obj['key']}: {exc}")
        with Tx(self.conn):
            self.conn.execute("DELETE FROM lifecycle_moves WHERE recording_id=?", (rid,))
        if left:
            log.error("rec=%s was erased or deleted during its migration; copies left on %s: %s",
                      rid, tier, "; ".join(left))
        else:
            log.warning("rec=%s was erased or deleted during its migration: its copies on %s removed",
                        rid, tier)

    def _journal(self, rec: Mapping[str, Any], t: Target, now: float) -> None:
        self.conn.execute(
            "INSERT INTO lifecycle_moves (recording_id, src_tier, src_key, dst_tier, dst_key,"
            " sha256, step, at) VALUES (?,?,?,?,?,?,'copying',?) ON CONFLICT (recording_id) DO UPDATE SET"
            " src_tier=excluded.src_tier, src_key=excluded.src_key, dst_tier=excluded.dst_tier,"
            " dst_key=excluded.dst_key, sha256=excluded.sha256, step=excluded.step, at=excluded.at",
            (
                rec["recording_id"],
                rec["tier"],
                rec["storage_key"],
                t.cold,
                rec["storage_key"],
                rec["sha256"],
                now,
            ),
        )

    def _copy(self, rec: Mapping[str, Any], t: Target) -> tuple[str, list[dict[str, Any]]]:
        """Copy every object to the destination and verify each there; returns the primary's
        stored storage class and the ``objects`` list for the catalog switch."""
        rid, cid = rec["recording_id"], rec["call_id"]
        src, dst = self._tier(rec["tier"]), self._tier(t.cold or "")
        if same_location(src, dst) or may_be_one_location(src, dst):  # the copy would be the source
            raise StorageError(f"tiers {src.name} and {t.cold} are (or may be) one location: moving {rid} "
                               "there would delete its only copy (a storage-class change on one bucket "
                               "needs the same endpoint on both tiers)", call_id=cid)
        cls, out = "", []
        for obj in objects_of(rec):
            placed = self._copy_object(rec, obj, src, dst, t)
            if placed is None:
                continue
            stored_cls, entry = placed
            cls = cls or stored_cls
            out.append(entry)
        log.info("copied call=%s rec=%s %d object(s) %s -> %s (verified)", cid, rid, len(out), rec["tier"],
                 t.cold)
        return cls or t.storage_class, to_json(out)

    def _copy_object(
        self, rec: Mapping[str, Any], obj: RecordingObject, src: Tier, dst: Tier, t: Target
    ) -> tuple[str, dict[str, Any]] | None:
        rid, cid = rec["recording_id"], rec["call_id"]
        sha = obj.sha256
        if not sha:  # derived for an older row: copy it only if it exists, hash it from the source
            if src.stat(obj.key) is None:
                return None
            with src.open(obj.key) as stream:
                sha, _ = hash_stream(stream)
        with src.open(obj.key) as stream:
            stored = dst.put(
                obj.key,
                stream,
                sha256=sha,
                options=PutOptions(
                    metadata={"call_id": cid, "recording_id": rid, "sha256": sha},
                    storage_class=t.storage_class,
                    legal_hold=bool(rec.get("legal_hold")),
                ),
            )
        if not self._verified(dst, obj.key, sha, stored.sha256):
            raise IntegrityError(
                f"destination {t.cold} does not verify for {rid} ({obj.role}); source kept", call_id=cid
            )
        entry = {"key": obj.key, "role": obj.role, "sha256": sha, "size": stored.size,
                 "version_id": stored.version_id}
        return stored.storage_class or t.storage_class, entry

    @staticmethod
    def _verified(dst: Tier, key: str, sha: str, put_sha: str) -> bool:
        """Read back and hash; for archive classes (not readable) trust put's checked hash + stat."""
        if not sha:
            return False
        try:
            return dst.verify(key, sha)
        except ObjectNotRestored:
            info = dst.stat(key)
            return bool(
                info and digests_equal(put_sha, sha) and (not info.sha256 or digests_equal(info.sha256, sha))
            )

    def _switch(
        self,
        rec: Mapping[str, Any],
        tier: str,
        key: str,
        storage_class: str,
        now: float,
        *,
        same_tier: bool,
        objects: list[dict[str, Any]] | None = None,
    ) -> None:
        rid = rec["recording_id"]
        with Tx(self.conn):
            # compare-and-set on what this run read: a row disposed of by retention meanwhile (kept
            # as 'expired', its objects deleted) or moved by another run is not brought back to
            # life as 'migrated' on this copy, which would outlive a certified disposal; a legal
            # hold placed or released meanwhile: the copy carries the old one (the next run copies
            # with the hold as it is then)
            switched = self.conn.execute(
                "UPDATE recordings SET tier=?, storage_key=?, storage_class=?, migrated_at=?,"
                " state='migrated'"
                " WHERE recording_id=? AND state=? AND tier=? AND storage_key=?"
                " AND COALESCE(legal_hold, 0)=?",
                (tier, key, storage_class, now, rid,
                 rec.get("state"), rec.get("tier"), rec.get("storage_key"), int(rec.get("legal_hold") or 0)),
            )
            if switched.rowcount == 0:  # erased, deleted, disposed of or moved meanwhile: no `migrated` entry
                now_at = self.conn.execute("SELECT tier, storage_key FROM recordings WHERE recording_id=?",
                                           (rid,)).fetchone()
                if now_at is not None and (now_at[0], now_at[1]) == (tier, key):
                    raise _MovedAlready(rid)  # the same move finished by another run: its copy stands
                raise _RowGone(rid)
            if objects is not None:  # the copied objects, as verified on the destination (same keys)
                self.conn.execute(
                    "UPDATE recordings SET objects=? WHERE recording_id=?",
                    (json.dumps(objects, sort_keys=True), rid),
                )
            if not same_tier:
                self.conn.execute("UPDATE lifecycle_moves SET step='switched' WHERE recording_id=?", (rid,))
            self.ledger(
                self.conn,
                "migrated",
                rid,
                {
                    "call_id": rec["call_id"],
                    "from": rec["tier"],
                    "to": tier,
                    "key": key,
                    "storage_class": storage_class,
                    "sha256": rec["sha256"],
                },
                now,
            )

    def _delete_source(self, move: Mapping[str, Any], prog: Progress | None = None) -> bool:
        """Delete every object of the recording from the move's source tier, then the journal row.
        False (journal row kept for a later run) when that cannot be done now."""
        rid, src_name = move["recording_id"], move["src_tier"]
        found = rows(self.conn, "SELECT * FROM recordings WHERE recording_id=?", (rid,))
        keys = [o.key for o in objects_of(found[0])] if found else []
        keys = list(dict.fromkeys([move["src_key"], *keys]))
        if found and found[0]["tier"] == src_name:  # the catalog still points here: not a finished move
            log.warning("source delete skipped rec=%s: the catalog still points at %s", rid, src_name)
            return False
        try:
            src = self._tier(src_name)
            for k in keys:
                src.delete(k)
        except PolicyRefusal as exc:  # retention / hold on the source: the move stands, the copy stays
            log.warning("source kept rec=%s on %s: %s (deleted by a later run once allowed)", rid, src_name,
                        exc)
            if prog is not None:
                prog.kept_sources.append(f"{rid}: {exc}")
            return False
        except StorageError as exc:  # both copies stay; the journal row makes the next run retry
            log.warning("source delete failed rec=%s: %s", rid, exc)
            return False
        with Tx(self.conn):
            self.conn.execute("DELETE FROM lifecycle_moves WHERE recording_id=?", (rid,))
        return True

    def _tier(self, name: str) -> Tier:
        try:
            return self.tiers[name]
        except KeyError:
            raise StorageError(f"no tier named {name!r} in storage.tiers") from None
