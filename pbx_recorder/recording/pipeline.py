"""Pipeline: what happens to a recording once the PBX is done with it.

``finalize``: wait until each file is closed -> audio duration + mismatch flag ->
manifest -> spool (the shipper takes it from there).  ``discard``: delete what the PBX
wrote (files and ``.closed`` markers), after it closed them so no marker appears later.
Both are contained per call: errors are logged with the call id and recording id and
never propagate to the daemon.

``FinalizeRecording.metadata`` keys are :class:`Manifest` field names (``linkedid``,
``uniqueids``, ``kind``, ``mode``, ``cdr``, ``consent``, ``rule``, ``tags``,
``retention_class``, ``region``, ``recorded_from``, ``recorded_to``, ``pauses``, ``flags``);
unknown keys are ignored.  No or empty ``cdr`` -> flag ``cdr_missing``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from pbx_recorder.catalog import Catalog
from pbx_recorder.core.commands import DiscardRecording, FinalizeRecording
from pbx_recorder.errors import RecorderError
from pbx_recorder.recording import audio, audio_quality
from pbx_recorder.recording.closure import Closure, marker_path, wait_closed
from pbx_recorder.recording.manifest import Manifest, ManifestFile, cdr_subset
from pbx_recorder.recording.spool import Spool, SpoolEntry

log = logging.getLogger(__name__)

_LIST_FIELDS = {"uniqueids", "tags", "flags"}
_MANIFEST_FIELDS = {f.name for f in fields(Manifest)} - {"recording_id", "call_id", "files", "schema",
                                                           "created_at", "processing"}


def file_role(path: str, mode: str) -> str:
    stem = Path(path).stem
    if mode == "dual" and stem.endswith("-rx"):
        return "read"
    if mode == "dual" and stem.endswith("-tx"):
        return "write"
    return "stereo" if mode == "stereo" else "mixed"


def manifest_from_metadata(call_id: str, recording_id: str, metadata: Mapping[str, Any],
                           now: float) -> Manifest:
    kw: dict[str, Any] = {}
    for key, value in metadata.items():
        if key not in _MANIFEST_FIELDS:
            continue
        if key in _LIST_FIELDS:
            value = tuple(str(v) for v in value)
        elif key == "pauses":
            value = tuple((float(a), float(b)) for a, b in value)
        elif key == "cdr":
            value = cdr_subset(value)
        kw[key] = value
    manifest = Manifest(recording_id=recording_id, call_id=call_id, created_at=now, **kw)
    return manifest if manifest.cdr else manifest.with_flags("cdr_missing")


Waiter = Callable[[str], Awaitable[Closure]]
RETRY_BASE_S = 5.0
RETRY_MAX_S = 300.0


def retry_delay(failures: int) -> float:
    """Back-off before the next spooling attempt: 5 s, 10 s, 20 s ... at most 5 min."""
    return float(min(RETRY_MAX_S, RETRY_BASE_S * 2 ** max(failures - 1, 0)))


class Pipeline:
    def __init__(self, spool: Spool, *, catalog: Catalog | None = None, stable_ms: int = 2000,
                 closure_timeout_s: float = 30.0, poll_ms: int = 250, discard_timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.time, waiter: Waiter | None = None) -> None:
        self.spool = spool
        self.catalog = catalog
        self.clock = clock
        self._wait = waiter or (lambda p: wait_closed(p, stable_ms=stable_ms, poll_ms=poll_ms,
                                                      closure_timeout_s=closure_timeout_s))
        self.deferred: dict[str, FinalizeRecording] = {}  # spooling failed: retry_deferred() later
        self._retry: dict[str, tuple[int, float]] = {}  # recording id -> (failures, next try at)
        self.in_flight: set[str] = set()  # recording ids being finalized or discarded right now
        self._discard_wait = waiter or (lambda p: wait_closed(p, stable_ms=stable_ms, poll_ms=poll_ms,
                                                              closure_timeout_s=discard_timeout_s))

    async def finalize(self, cmd: FinalizeRecording) -> SpoolEntry | None:
        """Spool a finished recording; None when nothing could be spooled (logged).

        Any failure to spool (a full disk, a read-only or vanished spool folder, a catalog
        error) leaves the PBX's files where they are and defers the recording: it is tried
        again with back-off (:func:`retry_delay`) and, from the first failure on, the catalog
        shows it as ``stopped`` with the flag ``spool_failed`` (an alert, logged as ERROR)."""
        self.in_flight.add(cmd.recording_id)
        try:
            entry = await self._finalize(cmd)
            self.deferred.pop(cmd.recording_id, None)
            self._retry.pop(cmd.recording_id, None)
            return entry
        except (RecorderError, OSError, ValueError, TypeError) as exc:
            self._defer(cmd, exc)
            return None
        finally:
            self.in_flight.discard(cmd.recording_id)

    def _defer(self, cmd: FinalizeRecording, exc: BaseException) -> None:
        failures = self._retry.get(cmd.recording_id, (0, 0.0))[0] + 1
        delay = retry_delay(failures)
        self.deferred[cmd.recording_id] = cmd
        self._retry[cmd.recording_id] = (failures, self.clock() + delay)
        log.error("ALERT call %s recording %s not spooled (attempt %d, next in %.0f s), files left in "
                  "the monitor folder: %s%s", cmd.call_id, cmd.recording_id, failures, delay,
                  type(exc).__name__, f": {exc}" if str(exc) else "")
        if failures == 1 and self.catalog is not None:
            try:
                self.catalog.upsert_recording({
                    "recording_id": cmd.recording_id, "call_id": cmd.call_id,
                    "kind": str(cmd.metadata.get("kind", "call")),
                    "mode": str(cmd.metadata.get("mode", "mixed")),
                    "state": "stopped", "flags": ["spool_failed"], "created_at": self.clock()})
            except RecorderError as cat_exc:
                log.error("ALERT call %s recording %s: not in the catalog either: %s", cmd.call_id,
                          cmd.recording_id, cat_exc)

    async def retry_deferred(self, force: bool = False) -> int:
        """Try the deferred recordings that are due again; returns how many got spooled."""
        done = 0
        now = self.clock()
        for rid, cmd in list(self.deferred.items()):
            if not force and self._retry.get(rid, (0, 0.0))[1] > now:
                continue
            if await self.finalize(cmd) is not None:
                done += 1
        return done

    def pending_ids(self) -> set[str]:
        """Recordings this pipeline is handling or will try again (not orphans)."""
        return set(self.deferred) | self.in_flight

    async def _finalize(self, cmd: FinalizeRecording) -> SpoolEntry | None:
        rid, call_id = cmd.recording_id, cmd.call_id
        if self.spool.is_complete(rid) or await asyncio.to_thread(self._already_shipped, rid):
            left = [Path(p).name for p in cmd.paths if Path(p).exists()]
            if left:  # never silent: the orphan scan settles them (fault_recovery)
                log.error("ALERT call %s recording %s already finalized but %s still in the monitor "
                          "folder: left for the orphan scan", call_id, rid, ", ".join(left))
            else:
                log.info("call %s recording %s already finalized: duplicate ignored", call_id, rid)
            return None
        manifest = manifest_from_metadata(call_id, rid, cmd.metadata, self.clock())
        closures = await asyncio.gather(*(self._wait(p) for p in cmd.paths))
        files: list[ManifestFile] = []
        flags: list[str] = []
        paths = list(cmd.paths)
        wrapped: list[str] = []  # stereo .raw files given a WAV header: removed once spooled
        for index, (path, closure) in enumerate(zip(cmd.paths, closures, strict=True)):
            flags.append(closure.flag)
            if not closure.usable:
                log.warning("call %s recording %s: file %s missing after closure wait", call_id, rid,
                            Path(path).name)
                continue
            if manifest.mode == "stereo" and path.endswith(".raw"):
                path = str(await asyncio.to_thread(audio.wrap_raw_as_wav, path, channels=2))
                wrapped.append(paths[index])
                paths[index] = path
            info = await asyncio.to_thread(audio.probe_duration, path,
                                           channels=2 if manifest.mode == "stereo" else 1)
            if info.error:
                flags.append("audio_error")
                log.warning("call %s recording %s: %s: %s", call_id, rid, Path(path).name, info.error)
            if info.header_repaired:
                flags.append("header_repaired")
                if path.endswith(".wav"):  # the stored file must play: sizes from what it holds
                    await asyncio.to_thread(audio.fix_wav_sizes, path)
            sound = await asyncio.to_thread(audio_quality.has_sound, path,
                                            channels=2 if manifest.mode == "stereo" else 1)
            flags += audio_quality.quality_flags(info.duration_s, sound, info.header_repaired)
            files.append(ManifestFile(name=Path(path).name, size=closure.size, sha256="",
                                      duration_s=info.duration_s, role=file_role(path, manifest.mode),
                                      audio_error=info.error))
        durations = [f.duration_s for f in files if f.duration_s is not None]
        if durations and audio.duration_mismatch(max(durations), manifest.recorded_span_s, manifest.paused_s):
            flags.append("duration_mismatch")
            log.warning("call %s recording %s: audio %.1fs vs recorded span %.1fs", call_id, rid,
                        max(durations), manifest.recorded_span_s or 0.0)
        manifest = manifest.with_flags(*flags)
        manifest = replace(manifest, files=tuple(files))
        if not files:
            self._record_missing(manifest)
            return None
        usable = [p for p, c in zip(paths, closures, strict=True) if c.usable]
        entry = await asyncio.to_thread(self.spool.spool_recording, rid, usable, manifest)
        for path in cmd.paths:
            marker_path(path).unlink(missing_ok=True)
        for raw in wrapped:
            Path(raw).unlink(missing_ok=True)
        try:
            await asyncio.to_thread(self._record_spooled, entry.manifest)  # SQLite: off the loop
        except RecorderError as exc:  # the spool entry is safe; the shipper writes the row anyway
            log.warning("call %s recording %s: catalog row not written yet: %s", call_id, rid, exc)
        log.info("call %s recording %s spooled (%d file(s), flags %s)", call_id, rid, len(files),
                 ",".join(entry.manifest.flags) or "-")
        return entry

    def _already_shipped(self, recording_id: str) -> bool:
        if self.catalog is None:
            return False
        row = self.catalog.get_recording(recording_id)
        return row is not None and row.get("state") not in ("recording", "paused", "stopped")

    def _record_spooled(self, manifest: Manifest) -> None:
        """Let the catalog show the recording as waiting in the spool (the shipper updates it)."""
        if self.catalog is None:
            return
        row = {
            "recording_id": manifest.recording_id, "call_id": manifest.call_id, "kind": manifest.kind,
            "mode": manifest.mode, "state": "spooled", "flags": list(manifest.flags),
            "duration_s": manifest.files[0].duration_s if manifest.files else None,
            "audio_sha256": manifest.audio_sha256, "region": manifest.region,
            "retention_class": manifest.retention_class, "created_at": manifest.created_at}
        catalog = self.catalog
        catalog.grouped(lambda: catalog.upsert_recording(row))  # its stand-in call row and it: one commit

    def _record_missing(self, manifest: Manifest) -> None:
        log.error("call %s recording %s: no audio file at all; flagged file_missing", manifest.call_id,
                  manifest.recording_id)
        if self.catalog is not None:
            self.catalog.upsert_recording({
                "recording_id": manifest.recording_id, "call_id": manifest.call_id, "kind": manifest.kind,
                "mode": manifest.mode, "state": "missing", "flags": list(manifest.flags),
                "manifest": manifest.to_dict(), "region": manifest.region,
                "retention_class": manifest.retention_class, "created_at": manifest.created_at})

    async def discard(self, cmd: DiscardRecording) -> int:
        """Delete the PBX's files for a recording; returns how many files were removed."""
        self.in_flight.add(cmd.recording_id)
        try:
            return await self._discard(cmd)
        finally:
            self.in_flight.discard(cmd.recording_id)

    async def _discard(self, cmd: DiscardRecording) -> int:
        removed = 0
        try:
            await asyncio.gather(*(self._discard_wait(p) for p in cmd.paths))
            for path in cmd.paths:
                for victim in (Path(path), marker_path(path)):
                    try:
                        victim.unlink()
                        removed += 1
                    except FileNotFoundError:
                        pass
        except (RecorderError, OSError, ValueError) as exc:
            log.error("discard failed for call %s recording %s: %s", cmd.call_id, cmd.recording_id, exc)
            return removed
        log.info("call %s recording %s discarded (%s): %d file(s) removed", cmd.call_id, cmd.recording_id,
                 cmd.reason, removed)
        return removed
