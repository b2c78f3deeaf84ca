"""Crash-safe spool: finished recordings wait here until shipped and verified.

Layout: ``<root>/<recording_id>/`` holds the audio files, ``intent.json`` (the manifest
as planned, written FIRST) and ``manifest.json`` (written atomically LAST: its presence
is what makes an entry complete).  On start-up :meth:`Spool.recover` completes entries
that have an intent but no manifest (hashing what is there) and reports entries with
neither; nothing is silently dropped.

Any failure while writing an entry rolls it back (the PBX's files are put back where they
were, other entries are untouched); a full disk (ENOSPC) raises SpoolFull, anything else is
re-raised; the pipeline retries both with back-off.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pbx_recorder.errors import SpoolFull, StorageError
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from storage import atomic, file_modes
from storage.hashing import hash_file

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
INTENT = "intent.json"
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    recording_id: str
    directory: Path
    manifest: Manifest

    def file_path(self, name: str) -> Path:
        return self.directory / name


def _is_enospc(exc: BaseException) -> bool:
    return isinstance(exc, SpoolFull) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC)


class Spool:
    def __init__(self, root: str | Path, *, min_free_mb: int = 0,
                 mover: Callable[[Path, Path], str] = atomic.move_file,
                 writer: Callable[[Path, bytes], str] = atomic.write_bytes,
                 free_bytes: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free) -> None:
        self.root = file_modes.private_dir(root)  # owner-only: numbers and plaintext audio wait here
        self.min_free_mb = min_free_mb
        self._move = mover
        self._write = writer
        self._free = free_bytes

    def entry_dir(self, recording_id: str) -> Path:
        if not SAFE_ID.match(recording_id):
            raise StorageError(f"unsafe recording id {recording_id[:40]!r}")
        return self.root / recording_id

    def is_complete(self, recording_id: str) -> bool:
        return (self.entry_dir(recording_id) / MANIFEST).is_file()

    # -- writing -----------------------------------------------------------------
    def _check_room(self, sources: Sequence[Path]) -> None:
        free = self._free(self.root)
        try:
            spool_dev = self.root.stat().st_dev
            needed = sum(p.stat().st_size for p in sources if p.exists() and p.stat().st_dev != spool_dev)
        except OSError:
            needed = 0
        if free - needed < self.min_free_mb * MIB:
            raise SpoolFull(f"spool {self.root}: {free // MIB} MiB free, need {needed // MIB} MiB "
                            f"+ min_free_mb={self.min_free_mb}")

    def spool_recording(self, recording_id: str, source_paths: Sequence[str | Path],
                        manifest: Manifest) -> SpoolEntry:
        """Move the finished files into the spool and write the manifest last.

        Idempotent: if the entry is already complete, nothing happens and it is returned.
        Missing sources are left out of the files list (the caller flags them).
        """
        directory = self.entry_dir(recording_id)
        if (directory / MANIFEST).is_file():
            log.info("recording %s (call %s) already spooled", recording_id, manifest.call_id)
            return self._load(directory)
        sources = [Path(p) for p in source_paths]
        names = [p.name for p in sources]
        if len(set(names)) != len(names) or any(n in (MANIFEST, INTENT) or not n for n in names):
            raise StorageError(f"recording {recording_id}: conflicting file names {names}")
        self._check_room(sources)
        existed = directory.exists()
        moved: list[tuple[Path, Path]] = []
        try:
            file_modes.private_dir(directory)
            self._write(directory / INTENT, manifest.to_json())
            for src in sources:
                dst = directory / src.name
                if src.exists():
                    self._move(src, dst)
                    moved.append((src, dst))
            final = self._complete(directory, manifest)
        except (OSError, StorageError) as exc:
            # any failure (full disk, read-only folder...): put the PBX's files back, leave no
            # half entry that recovery would complete without its audio; the caller retries
            self._roll_back(directory, moved, existed)
            if _is_enospc(exc):
                raise SpoolFull(f"spool {self.root} is full: recording {recording_id} (call "
                                f"{manifest.call_id}) left in place, nothing spooled") from exc
            raise
        return SpoolEntry(recording_id, directory, final)

    def _complete(self, directory: Path, planned: Manifest) -> Manifest:
        """Fill name/size/sha256 from the files present; write manifest.json atomically."""
        by_name = {f.name: f for f in planned.files}
        files = []
        for name in [f.name for f in planned.files] or sorted(
                p.name for p in directory.iterdir() if p.is_file() and p.name not in (MANIFEST, INTENT)
                and not p.name.startswith(".")):
            path = directory / name
            if not path.is_file():
                continue
            base = by_name.get(name, ManifestFile(name=name, size=0, sha256=""))
            files.append(replace(base, size=path.stat().st_size, sha256=hash_file(path)))
        final = replace(planned, files=tuple(files))
        if len(files) < len(planned.files):
            final = final.with_flags("file_missing")
        self._write(directory / MANIFEST, final.to_json())
        (directory / INTENT).unlink(missing_ok=True)
        return final

    def _roll_back(self, directory: Path, moved: list[tuple[Path, Path]], existed: bool) -> None:
        for src, dst in reversed(moved):
            try:
                if src.exists():
                    dst.unlink(missing_ok=True)  # cross-fs copy: the original is still there
                else:
                    os.replace(dst, src)  # same filesystem: a rename back needs no space
            except OSError as exc:
                log.error("spool roll-back of %s failed: %s (file kept in %s)", src.name, exc, directory)
        atomic.clean_temp_files(directory)
        (directory / INTENT).unlink(missing_ok=True)
        if not existed:
            try:
                directory.rmdir()
            except OSError:
                log.error("spool entry %s not empty after roll-back; left for recovery", directory)

    # -- reading -----------------------------------------------------------------
    def _load(self, directory: Path) -> SpoolEntry:
        manifest = Manifest.from_json((directory / MANIFEST).read_bytes())
        return SpoolEntry(directory.name, directory, manifest)

    def pending(self) -> list[SpoolEntry]:
        """Complete entries, oldest first.  Unreadable manifests are logged and skipped."""
        entries = []
        for d in sorted(self.root.iterdir()):
            if not d.is_dir() or not (d / MANIFEST).is_file():
                continue
            try:
                entries.append(self._load(d))
            except (OSError, ValueError, TypeError) as exc:
                log.error("spool entry %s has an unreadable manifest: %s", d.name, exc)
        entries.sort(key=lambda e: (e.manifest.created_at, e.recording_id))
        return entries

    def remove(self, recording_id: str) -> None:
        """Delete a shipped entry (only after the stored copy verified)."""
        directory = self.entry_dir(recording_id)
        if not directory.exists():
            return
        (directory / MANIFEST).unlink(missing_ok=True)  # first: the entry is no longer "complete"
        shutil.rmtree(directory)
        atomic.fsync_dir(self.root)

    def recover(self) -> tuple[list[str], list[str]]:
        """Start-up repair.  Returns (repaired ids, incomplete ids that need an operator)."""
        repaired, incomplete = [], []
        for d in sorted(self.root.iterdir()):
            if not d.is_dir():
                continue
            atomic.clean_temp_files(d)
            if (d / MANIFEST).is_file():
                continue
            if (d / INTENT).is_file():
                try:
                    planned = Manifest.from_json((d / INTENT).read_bytes())
                    self._complete(d, planned.with_flags("spool_repaired"))
                    repaired.append(d.name)
                    log.warning("spool entry %s (call %s) completed after a crash", d.name, planned.call_id)
                    continue
                except (OSError, ValueError, TypeError, StorageError) as exc:
                    log.error("spool entry %s could not be repaired: %s", d.name, exc)
            else:
                log.error("spool entry %s has no manifest and no intent: left for an operator", d.name)
            incomplete.append(d.name)
        return repaired, incomplete
