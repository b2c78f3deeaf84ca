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

from pbx_recorder import audio
from pbx_recorder.catalog import Catalog
from pbx_recorder.closure import Closure, marker_path, wait_closed
from pbx_recorder.commands import DiscardRecording, FinalizeRecording
from pbx_recorder.errors import RecorderError, SpoolFull
from pbx_recorder.manifest import Manifest, ManifestFile, cdr_subset
from pbx_recorder.spool import Spool, SpoolEntry

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


class Pipeline:
    def __init__(self, spool: Spool, *, catalog: Catalog | None = None, stable_ms: int = 2000,
                 closure_timeout_s: float = 30.0, poll_ms: int = 250, discard_timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.time, waiter: Waiter | None = None) -> None:
        self.spool = spool
        self.catalog = catalog
        self.clock = clock
        self._wait = waiter or (lambda p: wait_closed(p, stable_ms=stable_ms, poll_ms=poll_ms,
                                                      closure_timeout_s=closure_timeout_s))
        self.deferred: dict[str, FinalizeRecording] = {}  # spool was full: retry_deferred() later
        self._discard_wait = waiter or (lambda p: wait_closed(p, stable_ms=stable_ms, poll_ms=poll_ms,
                                                              closure_timeout_s=discard_timeout_s))

    async def finalize(self, cmd: FinalizeRecording) -> SpoolEntry | None:
        """Spool a finished recording; None when nothing could be spooled (logged)."""
        try:
            entry = await self._finalize(cmd)
            self.deferred.pop(cmd.recording_id, None)
            return entry
        except SpoolFull as exc:
            self.deferred[cmd.recording_id] = cmd
            log.error("call %s recording %s deferred, files left in place: %s", cmd.call_id,
                      cmd.recording_id, exc)
            return None
        except (RecorderError, OSError, ValueError, TypeError) as exc:
            log.error("finalize failed for call %s recording %s: %s", cmd.call_id, cmd.recording_id, exc)
            return None

    async def retry_deferred(self) -> int:
        """Try the recordings deferred by a full spool again; returns how many got spooled."""
        done = 0
        for cmd in list(self.deferred.values()):
            if await self.finalize(cmd) is not None:
                done += 1
        return done

    async def _finalize(self, cmd: FinalizeRecording) -> SpoolEntry | None:
        rid, call_id = cmd.recording_id, cmd.call_id
        if self.spool.is_complete(rid) or await asyncio.to_thread(self._already_shipped, rid):
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
        self.catalog.upsert_recording({
            "recording_id": manifest.recording_id, "call_id": manifest.call_id, "kind": manifest.kind,
            "mode": manifest.mode, "state": "spooled", "flags": list(manifest.flags),
            "duration_s": manifest.files[0].duration_s if manifest.files else None,
            "audio_sha256": manifest.audio_sha256, "region": manifest.region,
            "retention_class": manifest.retention_class, "created_at": manifest.created_at})

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
