"""Shipper: spool entry -> tier.put -> tier.verify -> catalog row 'verified' -> spool entry removed.

A file leaves the spool only after the stored copy verified and the catalog says so.
Idempotent by recording id; one claim per recording (``claimer``); per-entry
exponential backoff on a transient failure (the entry stays in the spool).  A permanent
refusal by the storage server (``StorageRefused``: a 4xx such as InvalidArgument) is not
retried: the entry stays in the spool, parked until the daemon restarts (after the cause is
fixed), the catalog row goes to state ``ship_failed`` with the server's message in its flags,
and the ``pbxrec_ship_refused`` gauge and an ERROR line say so.

Extension points (used by other modules without editing this file):
  * ``prepare_stages``: ``(path, manifest) -> (path, manifest)`` applied to each file before
    ``put`` (transcode, encrypt).  Write outputs next to the input (inside the spool entry:
    removed with it) and record what was done in ``manifest.processing`` (known keys
    ``format``, ``encrypted``, ``key_id``, ``wrapped_key``, ``storage_class`` go to the catalog).
    A stage that leaves the input in place and says so (``storage.transcode.Transcoder`` with
    ``keep_original``: ``processing.transcode[<file>].original_kept``) gets that original stored
    too, under ``<rid>-original`` (after the stages that follow it, e.g. encryption).  A stage
    with ``takes_role = True`` (``storage.envelope.EncryptStage``) is also told which object of
    the recording the file becomes (``role=``, a ``recording_objects`` role) and binds it in.
  * ``after_store``: ``hook(catalog, recording_id, manifest, record)`` called once the stored
    copy verified and the row is in the catalog with state 'stored' (e.g.
    ``signing.SignAfterStore``, a ledger append).  A returned mapping is merged into the row.
    Only after every hook succeeded is the row marked 'verified' and the spool entry removed;
    a hook that raises leaves both for a retry, so hooks must be idempotent.  When every hook
    says it needs no row (``before_row``: signing, the ledger's ``stored`` entry) they run first
    and the row is written once, ``verified`` (``Catalog.store_recording``).  The row's writes
    and these hooks are one catalog transaction (``Catalog.grouped``: other threads' writes may
    share it); a hook marked ``after_commit`` (``chain_head.ChainHeadHook``: it publishes the
    signed ledger head) runs only once that transaction has committed.
  * ``claimer``: ``claim(recording_id) -> bool`` / ``release(recording_id)``.
  * ``arrival_checks``: ``check(catalog, entry) -> bool`` asked before anything is prepared or
    stored; False: the entry is removed from the spool unstored (outcome ``destroyed``; e.g.
    ``lifecycle.late_copies``: a recording of a subject erased while its call was live).
  * ``tier_for_region``: ``(region) -> Tier``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pbx_recorder.catalog import Catalog
from pbx_recorder.catalog.many_calls import StoredRecording
from pbx_recorder.core.naming import storage_key
from pbx_recorder.errors import (
    IntegrityError,
    ObjectNotRestored,
    RecorderError,
    StorageRefused,
    TierUnavailable,
)
from pbx_recorder.metrics import NullMetrics, ship_failure_reason
from pbx_recorder.recording import recording_objects
from pbx_recorder.recording.manifest import Manifest
from pbx_recorder.recording.spool import Spool, SpoolEntry
from storage import atomic
from storage.base import PutOptions, StoredObject, Tier
from storage.hashing import digests_equal, hash_file

log = logging.getLogger(__name__)

PrepareStage = Callable[[Path, Manifest], tuple[Path, Manifest]]
DONE_STATES = ("verified", "migrated")
CATALOG_PROCESSING_KEYS = ("format", "encrypted", "key_id", "wrapped_key", "storage_class")
SEALED_MANIFEST_EXT = "jsonpbxr"  # the manifest sidecar in the PBXR envelope (recording's data key)
# Archive classes cannot be read back before a restore: for them the checksum the tier
# checked during put() is the verification (the tier raises IntegrityError on mismatch).
# Which classes those are is the tier's to say (``is_archive_class``, configurable); this
# is the default for tiers that do not.
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
REFUSED_FLAG = "ship_refused"


def _is_archive(tier: Tier, storage_class: str) -> bool:
    check = getattr(tier, "is_archive_class", None)
    return bool(check(storage_class)) if callable(check) else storage_class.upper() in ARCHIVE_CLASSES


class Claimer(Protocol):
    def claim(self, recording_id: str) -> bool: ...

    def release(self, recording_id: str) -> None: ...


class InProcessClaimer:
    """Default claimer: a set guarded by a lock (one process)."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, recording_id: str) -> bool:
        with self._lock:
            if recording_id in self._held:
                return False
            self._held.add(recording_id)
            return True

    def release(self, recording_id: str) -> None:
        with self._lock:
            self._held.discard(recording_id)


@dataclass(frozen=True, slots=True)
class ShipRecord:
    """What an ``after_store`` hook sees."""

    recording_id: str
    call_id: str
    manifest: Manifest
    tier: Tier
    objects: tuple[StoredObject, ...]  # audio files in manifest order, kept originals, the manifest last
    roles: tuple[str, ...] = ()  # recording_objects role of each entry of ``objects``

    @property
    def primary(self) -> StoredObject:
        return self.objects[0]


AfterStore = Callable[[Catalog, str, Manifest, ShipRecord], Any]


@dataclass
class ShipSummary:
    shipped: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # catalog had it verified: spool cleaned
    retrying: list[str] = field(default_factory=list)  # failed this time, kept in the spool
    waiting: list[str] = field(default_factory=list)  # in backoff, not tried
    refused: list[str] = field(default_factory=list)  # refused for good: parked, not retried
    claimed_elsewhere: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)  # an arrival check refused it: removed unstored


def object_keys(manifest: Manifest, ext_of: Sequence[str]) -> list[str]:
    """Storage keys for the audio files (first = primary) and the manifest (last)."""
    started = manifest.recorded_from or manifest.created_at
    rid, cid, region = manifest.recording_id, manifest.call_id, manifest.region
    keys = [storage_key(cid, rid if i == 0 else f"{rid}-{manifest.files[i].role or i}", started, ext, region)
            for i, ext in enumerate(ext_of)]
    keys.append(storage_key(cid, rid, started, "json", region))
    return keys


def original_key(manifest: Manifest, index: int, ext: str) -> str:
    """Key of the kept (untranscoded) original of file ``index``: ``<rid>-original`` for the primary."""
    started = manifest.recorded_from or manifest.created_at
    rid = manifest.recording_id
    stem = f"{rid}-original" if index == 0 else f"{rid}-{manifest.files[index].role or index}-original"
    return storage_key(manifest.call_id, stem, started, ext, manifest.region)


def _original_kept(manifest: Manifest, name: str) -> bool:
    entry = (manifest.processing.get("transcode") or {}).get(name)
    return isinstance(entry, Mapping) and entry.get("original_kept") is True


def _ext(path: Path) -> str:
    return path.suffix.lstrip(".").lower() or "bin"


def _run_stage(stage: PrepareStage, path: Path, manifest: Manifest, role: str) -> tuple[Path, Manifest]:
    """Apply one prepare stage; one that binds the object's role (encryption) is told it."""
    if getattr(stage, "takes_role", False):
        return stage(path, manifest, role=role)  # type: ignore[call-arg]
    return stage(path, manifest)


def object_role(manifest: Manifest, index: int) -> str:
    """The ``recording_objects`` role of audio file ``index``: the primary, else a leg."""
    if index == 0:
        return recording_objects.AUDIO
    return recording_objects.leg_role(index, manifest.files[index].role)


class Shipper:
    def __init__(self, spool: Spool, catalog: Catalog, tier_for_region: Callable[[str], Tier], *,
                 prepare_stages: Sequence[PrepareStage] = (), after_store: Sequence[AfterStore] = (),
                 claimer: Claimer | None = None, clock: Callable[[], float] = time.time,
                 backoff_base_s: float = 2.0, backoff_max_s: float = 300.0,
                 metrics: NullMetrics | None = None,
                 arrival_checks: Sequence[Callable[[Catalog, SpoolEntry], bool]] = ()) -> None:
        self.spool = spool
        self.catalog = catalog
        self.tier_for_region = tier_for_region
        self.prepare_stages = list(prepare_stages)
        self.after_store = list(after_store)
        if self.after_store:  # a recording stored under an active legal hold is held at once
            from pbx_recorder.lifecycle.holds import HoldOnStore

            self.after_store.append(HoldOnStore(clock))
        self.claimer = claimer or InProcessClaimer()
        self.clock = clock
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.metrics = metrics or NullMetrics()
        self.arrival_checks = list(arrival_checks)
        self._attempts: dict[str, int] = {}
        self._next_at: dict[str, float] = {}
        self.parked: dict[str, str] = {}  # recording id -> the permanent refusal (until restart)

    # -- one entry -----------------------------------------------------------------
    def _already_done(self, entry: SpoolEntry) -> bool:
        row = self.catalog.get_recording(entry.recording_id)
        if not row or row.get("state") not in DONE_STATES:
            return False
        if digests_equal(str(row.get("audio_sha256", "")), entry.manifest.audio_sha256):
            return True
        raise IntegrityError(f"recording {entry.recording_id} is already {row.get('state')} in the catalog "
                             "with a different audio hash: spool entry kept for an operator",
                             call_id=entry.manifest.call_id)

    def _prepare(self, entry: SpoolEntry) -> tuple[Manifest, list[tuple[Path, str | None]],
                                                   list[tuple[int, Path, str | None]]]:
        """Run the stages on every file; returns (manifest, [(path, expected sha)] in manifest
        order, [(file index, path, expected sha)] of originals a stage kept)."""
        manifest = entry.manifest
        prepared: list[tuple[Path, str | None]] = []
        originals: list[tuple[int, Path, str | None]] = []
        for index, f in enumerate(manifest.files):
            path = entry.file_path(f.name)
            original = path
            kept_after: int | None = None
            role = object_role(manifest, index)
            for n, stage in enumerate(self.prepare_stages):
                path, manifest = _run_stage(stage, path, manifest, role)
                if kept_after is None and path != original and _original_kept(manifest, f.name):
                    kept_after = n
            # untouched file: it must still hash as spooled; a stage output is hashed here
            prepared.append((path, f.sha256 if path == original else hash_file(path)))
            if kept_after is None:
                continue
            if not original.exists():
                raise IntegrityError(f"recording {manifest.recording_id}: the manifest says the original "
                                     f"{f.name} was kept but it is not in the spool entry",
                                     call_id=manifest.call_id)
            if not digests_equal(hash_file(original), f.sha256):
                raise IntegrityError(f"recording {manifest.recording_id}: kept original {f.name} no longer "
                                     "hashes as spooled", call_id=manifest.call_id)
            kept = original
            kept_role = recording_objects.original_role(index, f.role)
            for stage in self.prepare_stages[kept_after + 1:]:  # e.g. encryption: the original too
                kept, manifest = _run_stage(stage, kept, manifest, kept_role)
            originals.append((index, kept, f.sha256 if kept == original else hash_file(kept)))
        return manifest, prepared, originals

    def _store(self, entry: SpoolEntry) -> tuple[Manifest, Tier, list[tuple[str, StoredObject]]]:
        """Put + verify every object of the recording; returns ``[(role, stored object)]``:
        audio files in manifest order, kept originals, the manifest last."""
        manifest, prepared, originals = self._prepare(entry)
        tier = self.tier_for_region(manifest.region)
        keys = object_keys(manifest, [_ext(p) for p, _ in prepared])
        roles = [object_role(manifest, i) for i in range(len(manifest.files))]
        plan: list[tuple[str, str, Path, str | None]] = [
            (role, key, path, expected)
            for role, key, (path, expected) in zip(roles, keys, prepared, strict=False)]
        for index, path, expected in originals:
            plan.append((recording_objects.original_role(index, manifest.files[index].role),
                         original_key(manifest, index, _ext(path)), path, expected))
        manifest_file = entry.directory / ".ship-manifest.json"
        atomic.write_bytes(manifest_file, manifest.to_json())  # owner-only, like the whole spool
        manifest_key = keys[-1]
        for stage in self.prepare_stages:  # the encryption stage seals the sidecar (it holds numbers)
            seal = getattr(stage, "seal_sidecar", None)
            if seal is not None and manifest.processing.get("encrypted"):
                manifest_file = seal(manifest_file, manifest, role=recording_objects.MANIFEST)
                manifest_key = manifest_key[: -len("json")] + SEALED_MANIFEST_EXT
        plan.append((recording_objects.MANIFEST, manifest_key, manifest_file, None))
        meta = {"call_id": manifest.call_id, "recording_id": manifest.recording_id}
        opts = PutOptions(metadata=meta, storage_class=str(manifest.processing.get("storage_class", "")))
        stored: list[tuple[str, StoredObject]] = []
        for role, key, path, expected in plan:
            obj = tier.put(key, path, sha256=expected, options=opts)
            if not _is_archive(tier, obj.storage_class) and not _is_archive(tier, opts.storage_class):
                try:
                    ok = tier.verify(key, obj.sha256)
                except ObjectNotRestored:  # a class only the server knows is cold: put's check stands
                    ok = expected is None or digests_equal(obj.sha256, expected)
                if not ok:
                    raise IntegrityError(f"tier {tier.name}: {key} does not verify after put",
                                         call_id=manifest.call_id)
            elif expected is not None and not digests_equal(obj.sha256, expected):
                raise IntegrityError(f"tier {tier.name}: {key} stored with another hash",
                                     call_id=manifest.call_id)
            stored.append((role, obj))
        return manifest, tier, stored

    def _catalog_row(self, manifest: Manifest, tier: Tier,
                     stored: list[tuple[str, StoredObject]]) -> dict[str, Any]:
        primary = stored[0][1]
        row: dict[str, Any] = {
            "recording_id": manifest.recording_id, "call_id": manifest.call_id, "kind": manifest.kind,
            "mode": manifest.mode, "state": "verified", "tier": tier.name, "storage_key": primary.key,
            "storage_class": primary.storage_class, "sha256": primary.sha256,
            "audio_sha256": manifest.audio_sha256, "size": primary.size,
            "duration_s": manifest.files[0].duration_s if manifest.files else None,
            "format": primary.key.rsplit(".", 1)[-1], "manifest": manifest.to_dict(),
            "retention_class": manifest.retention_class, "region": manifest.region,
            "flags": list(manifest.flags), "created_at": manifest.created_at or self.clock(),
            "stored_at": self.clock(),
            "objects": recording_objects.to_json(
                {"key": o.key, "role": role, "sha256": o.sha256, "size": o.size, "version_id": o.version_id}
                for role, o in stored),
        }
        for key in CATALOG_PROCESSING_KEYS:
            if key in manifest.processing:
                value = manifest.processing[key]
                row[key] = int(value) if isinstance(value, bool) else value
        return row

    def ship_entry(self, entry: SpoolEntry) -> str:
        """Ship one entry; returns 'shipped' | 'already' | 'claimed' | 'destroyed'.  Raises on failure."""
        rid = entry.recording_id
        if not self.claimer.claim(rid):
            return "claimed"
        try:
            if self._already_done(entry):
                self.spool.remove(rid)
                log.info("recording %s (call %s) already verified in the catalog: spool cleaned",
                         rid, entry.manifest.call_id)
                return "already"
            if not all(check(self.catalog, entry) for check in self.arrival_checks):
                self.spool.remove(rid)
                log.info("recording %s (call %s) removed from the spool unstored (arrival check)", rid,
                         entry.manifest.call_id)
                return "destroyed"
            manifest, tier, stored = self._store(entry)
            row = self._catalog_row(manifest, tier, stored)
            record = ShipRecord(rid, manifest.call_id, manifest, tier, tuple(o for _, o in stored),
                                tuple(role for role, _ in stored))
            later = [hook for hook in self.after_store if getattr(hook, "after_commit", False)]
            hooks = [hook for hook in self.after_store if hook not in later]
            stored_rec = StoredRecording(row, manifest, record)
            # one transaction, shared with other threads' writes (group commit): the row, the hooks,
            # 'verified' (written once when every hook runs before the row: signing, the ledger)
            self.catalog.grouped(lambda: self.catalog.store_recording(stored_rec, hooks))
            for hook in later:  # committed: what they publish (the signed ledger head) stays
                hook(self.catalog, rid, manifest, record)
            self.spool.remove(rid)
            log.info("recording %s (call %s) stored in %s as %s and verified", rid, manifest.call_id,
                     tier.name, stored[0][1].key)
            return "shipped"
        finally:
            self.claimer.release(rid)

    # -- all entries ---------------------------------------------------------------
    def _backoff(self, rid: str, now: float) -> float:
        attempts = self._attempts.get(rid, 0) + 1
        self._attempts[rid] = attempts
        delay = min(self.backoff_base_s * 2.0 ** (attempts - 1), self.backoff_max_s)
        self._next_at[rid] = now + delay
        return delay

    def ship_once(self) -> ShipSummary:
        summary = ShipSummary()
        for entry in self.spool.pending():
            rid, call_id = entry.recording_id, entry.manifest.call_id
            now = self.clock()
            if rid in self.parked:
                summary.refused.append(rid)
                continue
            if self._next_at.get(rid, 0.0) > now:
                summary.waiting.append(rid)
                continue
            try:
                outcome = self.ship_entry(entry)
            except StorageRefused as exc:
                self._park(rid, call_id, exc)
                summary.refused.append(rid)
                continue
            except TierUnavailable as exc:
                delay = self._backoff(rid, now)
                log.warning("recording %s (call %s): tier unavailable (%s); retry in %.0fs",
                            rid, call_id, exc, delay)
                summary.retrying.append(rid)
                self.metrics.ship_failed(ship_failure_reason(exc))
                continue
            except (RecorderError, OSError, ValueError, LookupError, TypeError) as exc:
                delay = self._backoff(rid, now)
                log.error("recording %s (call %s): shipping failed: %s; kept in spool, retry in %.0fs",
                          rid, call_id, exc, delay)
                summary.retrying.append(rid)
                self.metrics.ship_failed(ship_failure_reason(exc))
                continue
            if outcome == "shipped":
                self.metrics.shipped()
            self._attempts.pop(rid, None)
            self._next_at.pop(rid, None)
            {"shipped": summary.shipped, "already": summary.already,
             "claimed": summary.claimed_elsewhere, "destroyed": summary.destroyed}[outcome].append(rid)
        return summary

    def _park(self, rid: str, call_id: str, exc: StorageRefused) -> None:
        """A permanent refusal: no retry; say so in the log, the metrics and the catalog."""
        self.parked[rid] = str(exc)
        log.error("recording %s (call %s): the storage server refused it for good, not retried: %s; "
                  "fix the tier's settings or the bucket (check-config --probe), then restart the daemon: "
                  "the recording is kept in the spool", rid, call_id, exc)
        self.metrics.ship_failed(ship_failure_reason(exc))
        self.metrics.ship_refused(len(self.parked))
        try:
            row = self.catalog.get_recording(rid) or {}
            flags = [f for f in row.get("flags") or [] if not str(f).startswith(REFUSED_FLAG)]
            self.catalog.mark_state(rid, "ship_failed", flags=[*flags, f"{REFUSED_FLAG}: {str(exc)[:500]}"])
        except RecorderError as cat_exc:
            log.error("recording %s: could not mark ship_failed in the catalog: %s", rid, cat_exc)

    async def run(self, stop_event: asyncio.Event, interval_s: float = 1.0) -> None:
        """Ship until ``stop_event`` is set (blocking work runs in a thread)."""
        while not stop_event.is_set():
            try:
                summary = await asyncio.to_thread(self.ship_once)
                if summary.shipped or summary.retrying:
                    log.info("shipper: %d shipped, %d retrying, %d waiting, %d refused", len(summary.shipped),
                             len(summary.retrying), len(summary.waiting), len(summary.refused))
            except (RecorderError, OSError) as exc:
                log.error("shipper pass failed: %s", exc)
            try:
                await asyncio.wait_for(stop_event.wait(), timeout=interval_s)
            except TimeoutError:
                pass
