"""Crash-safe spool: finished recordings wait here until shipped and verified.

Layout: ``<root>/<recording_id>/`` holds the audio files, ``intent.json`` (the manifest
as planned, written FIRST) and ``manifest.json`` (written atomically LAST: its presence
is what makes an entry complete).  On start-up :meth:`Spool.recover` completes entries
that have an intent but no manifest (hashing what is there) and reports entries with
neither; nothing is silently dropped.

The intent also names the planned source paths (key ``spool_sources``, ignored by
:meth:`Manifest.from_json`): a process killed between two moves (leg 1 of a dual recording
spooled, leg 2 not) or between publishing a copy and unlinking the PBX's file (a file owned
by the PBX account is copied, never renamed) would otherwise leave plaintext audio in the
PBX's drop folder that no later pass ships -- the entry is complete, so the orphan scan sees a
duplicate.  :meth:`Spool.recover` therefore first settles every planned source still present:
moved in through the same safe move when the entry lacks it, or removed when the entry
already holds a copy whose hash equals the source's (a differing copy keeps both, ALERT).

A leftover no pass can settle safely (the ``.raw`` original MixMonitor left beside a spooled
stereo WAV after a crash: the WAV is a conversion, the two cannot be compared byte for byte) is
moved into ``<root>/_quarantine/<recording_id>/`` by :meth:`Spool.quarantine`, through the same
mover as every spooled file (no symlink, FIFO or hard link; the recorder's own owner-only copy,
the PBX's file removed), with a JSON note naming the recording beside it.  The product never
deletes it on its own: an operator decides; only the erasure of its call removes it
(:meth:`Spool.drop_quarantined`, ``lifecycle.spool_erasure.purge_quarantine``, which finds it by
its note's call id and its folder).  ``_quarantine`` cannot be a recording id (:data:`SAFE_ID`),
so no entry, recovery or erasure pass takes it for one.

Any failure while writing an entry rolls it back (the PBX's files are put back where they
were, other entries are untouched); a full disk (ENOSPC) raises SpoolFull, anything else is
re-raised; the pipeline retries both with back-off.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pbx_recorder.errors import IntegrityError, SpoolFull, StorageError
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from storage import atomic, file_modes
from storage.hashing import digests_equal, hash_file, hash_stream

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
INTENT = "intent.json"
SOURCES_KEY = "spool_sources"  # in intent.json: where each planned file was before the move
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
#: a folder being removed (:meth:`Spool.remove`): out of every scan; :meth:`Spool.recover` ends it
REMOVING_PREFIX = ".removing-"
#: leftovers kept for an operator (never a recording id: SAFE_ID starts with a letter or digit)
QUARANTINE_DIR = "_quarantine"
NOTE_SUFFIX = ".note.json"
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class QuarantinedFile:
    """A file kept in ``_quarantine/<recording_id>/`` and the call its note names."""

    path: Path
    recording_id: str  # the folder: the recording it was left beside
    call_id: str | None  # from its note; None when the note is missing (a crash) or unreadable


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    recording_id: str
    directory: Path
    manifest: Manifest

    def file_path(self, name: str) -> Path:
        return self.directory / name


def intent_bytes(manifest: Manifest, sources: Sequence[Path]) -> bytes:
    """The intent: the planned manifest plus the absolute source paths it is moved from."""
    data = json.loads(manifest.to_json())
    data[SOURCES_KEY] = [os.path.abspath(p) for p in sources]
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def intent_sources(raw: bytes) -> list[Path]:
    """Source paths an intent names ([] for an intent written before they were recorded)."""
    data = json.loads(raw)
    listed = data.get(SOURCES_KEY) if isinstance(data, dict) else None
    return [Path(p) for p in listed if isinstance(p, str) and p] if isinstance(listed, list) else []


def _source_hash(src: Path) -> str:
    """SHA-256 of the PBX's file itself: never through a symlink, only a regular file."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise StorageError(f"cannot open {src.name}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise StorageError(f"{src.name} is not a regular file: refused")
        return hash_stream(fh)[0]


def remove_proven_copy(src: Path, expected_sha256: str, call_id: str) -> None:
    """Unlink ``src`` (a file left in the PBX's folder) only if it hashes as ``expected_sha256``
    (the copy spooled or shipped); :class:`IntegrityError` and nothing removed otherwise."""
    if not expected_sha256 or not digests_equal(_source_hash(src), expected_sha256):
        raise IntegrityError(f"{src.name} is not byte-identical to the copy kept: left in place",
                             call_id=call_id)
    src.unlink()
    atomic.fsync_dir(src.parent)
    log.warning("call %s: %s was already spooled (same SHA-256): removed from %s", call_id,
                src.name, src.parent)


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
            self._write(directory / INTENT, intent_bytes(manifest, sources))  # before any move
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

    def entry(self, recording_id: str) -> SpoolEntry | None:
        """The complete entry of ``recording_id``, or None when there is none."""
        directory = self.entry_dir(recording_id)
        return self._load(directory) if (directory / MANIFEST).is_file() else None

    def pending(self) -> list[SpoolEntry]:
        """Complete entries, oldest first.  Unreadable manifests are logged and skipped."""
        entries = []
        for d in sorted(self.root.iterdir()):
            if not d.is_dir() or d.name.startswith(REMOVING_PREFIX) or not (d / MANIFEST).is_file():
                continue
            try:
                entries.append(self._load(d))
            except (OSError, ValueError, TypeError) as exc:
                log.error("spool entry %s has an unreadable manifest: %s", d.name, exc)
        entries.sort(key=lambda e: (e.manifest.created_at, e.recording_id))
        return entries

    def remove(self, recording_id: str) -> None:
        """Delete a shipped entry (only after the stored copy verified), an erased one, a late copy.

        The folder is first renamed out of every scan (``.removing-<id>``: one atomic step), then
        deleted.  Before session 45 the manifest went first and the folder after: a crash in
        between left the audio (in clear without the envelope) in a folder with neither manifest
        nor intent, which recovery left "for an operator", erasure did not see and retention never
        touches, while the receipt said the subject's audio was destroyed.  A crash now leaves
        only the renamed folder, which :meth:`recover` finishes deleting at the next start."""
        directory = self.entry_dir(recording_id)
        if not directory.exists():
            return
        doomed = self.root / f"{REMOVING_PREFIX}{recording_id}"
        if doomed.exists():  # a removal of the same id cut short before
            shutil.rmtree(doomed)
        os.rename(directory, doomed)
        atomic.fsync_dir(self.root)
        shutil.rmtree(doomed)
        atomic.fsync_dir(self.root)

    def recover(self) -> tuple[list[str], list[str]]:
        """Start-up repair.  Returns (repaired ids, incomplete ids that need an operator).

        An entry with an intent but no manifest was cut short by a crash: its planned sources
        still in the drop folder are settled first (:meth:`_settle_sources`), then it is
        completed from what it holds (flag ``spool_repaired``; ``file_missing`` only when a
        planned file is really nowhere)."""
        repaired, incomplete = [], []
        for d in sorted(self.root.iterdir()):
            if not d.is_dir() or d.name == QUARANTINE_DIR:
                continue
            if d.name.startswith(REMOVING_PREFIX):  # a removal a crash cut short: finished now
                shutil.rmtree(d, ignore_errors=True)
                atomic.fsync_dir(self.root)
                log.warning("spool entry %s: its removal was cut short by a crash; finished",
                            d.name[len(REMOVING_PREFIX):])
                continue
            atomic.clean_temp_files(d)
            if (d / MANIFEST).is_file():
                continue
            if (d / INTENT).is_file():
                try:
                    raw = (d / INTENT).read_bytes()
                    planned = Manifest.from_json(raw)
                    self._settle_sources(d, planned, intent_sources(raw))
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

    def _settle_sources(self, directory: Path, planned: Manifest, sources: Sequence[Path]) -> None:
        """Planned sources a crash left in the PBX's folder: none may stay there, none be lost.

        * not in the entry -> moved in through the same mover as the normal path (regular
          file, no symlink, one link, hash verified), so the entry gets every leg;
        * already in the entry -> the crash came after the copy was published and before the
          PBX's file was unlinked: the source is removed once its hash equals the copy's;
          if they differ both are kept and an ALERT names them (an operator decides).
        A source that cannot be moved is logged as an ALERT and left in place: the entry is
        completed without it (``file_missing``) and the orphan scan retries it later."""
        planned_names = {f.name for f in planned.files}
        for src in sources:
            if src.name in (MANIFEST, INTENT) or (planned_names and src.name not in planned_names) \
                    or not os.path.lexists(src):
                continue
            dst = directory / src.name
            try:
                if os.path.lexists(dst):
                    self.drop_source_copy(src, dst, planned.call_id)
                else:
                    self._move(src, dst)
                    log.warning("call %s recording %s: %s moved into the spool after a crash",
                                planned.call_id, planned.recording_id, src.name)
            except (OSError, StorageError) as exc:
                log.error("ALERT call %s recording %s: %s left in %s after a crash: %s", planned.call_id,
                          planned.recording_id, src.name, src.parent, exc)

    def drop_source_copy(self, src: Path, spooled: Path, call_id: str) -> None:
        """Remove the PBX's ``src`` once its bytes are proven equal to the spooled copy's.

        Raises :class:`IntegrityError` (both kept) when they differ: deleting either could lose
        audio."""
        remove_proven_copy(src, hash_file(spooled), call_id)

    def add_file(self, recording_id: str, src: Path, role: str) -> Manifest:
        """Move a file the complete entry lacks (a leg a crash left behind) into it.

        Crash-safe by reusing the intent: the intent (existing files + the new one, with its
        source) is written, the manifest removed, the file moved, the manifest written again;
        a crash anywhere is finished by :meth:`recover`.  The existing files must still hash as
        their manifest says (nothing in the entry is re-hashed blindly).  The caller holds the
        shipper's claim on ``recording_id`` so the entry is not shipped meanwhile."""
        directory = self.entry_dir(recording_id)
        current = self._load(directory).manifest
        if src.name in {f.name for f in current.files} or src.name in (MANIFEST, INTENT):
            raise StorageError(f"recording {recording_id} already holds {src.name}")
        for f in current.files:
            if not digests_equal(hash_file(directory / f.name), f.sha256):
                raise IntegrityError(f"recording {recording_id}: {f.name} no longer hashes as spooled",
                                     call_id=current.call_id)
        files = (*current.files, ManifestFile(name=src.name, size=0, sha256="", role=role))
        flags = tuple(f for f in current.flags if f != "file_missing" or
                      not (current.mode == "dual" and {"read", "write"} <= {x.role for x in files}))
        planned = replace(current, files=files, flags=flags).with_flags("leg_recovered")
        self._write(directory / INTENT, intent_bytes(planned, [src]))
        (directory / MANIFEST).unlink()
        atomic.fsync_dir(directory)
        try:
            self._move(src, directory / src.name)
        except (OSError, StorageError):  # refused or failed: the entry is shippable again as it was
            self._write(directory / MANIFEST, current.to_json())
            (directory / INTENT).unlink(missing_ok=True)
            raise
        final = self._complete(directory, planned)
        log.warning("call %s recording %s: %s added to its spool entry", current.call_id, recording_id,
                    src.name)
        return final

    # -- quarantine ----------------------------------------------------------------
    def quarantine(self, recording_id: str, call_id: str, src: Path, reason: str, at: float) -> Path:
        """Move a leftover no pass can settle into ``_quarantine/<recording_id>/``; return its path.

        The mover refuses a symlink, FIFO or hard link (StorageError, nothing moved) and gives the
        copy the recorder's owner-only mode, so the PBX account can no longer read it; an existing
        quarantined file is never replaced (a second leftover of the same name gets ``.1`` ...).
        The note (written after the move: a crash between leaves the file, named by its folder)
        holds ids, the reason and the SHA-256, no number."""
        folder = file_modes.private_dir(file_modes.private_dir(self.root / QUARANTINE_DIR)
                                        / self.entry_dir(recording_id).name)
        dst, n = folder / src.name, 0
        while os.path.lexists(dst) or os.path.lexists(dst.with_name(dst.name + NOTE_SUFFIX)):
            n += 1
            dst = folder / f"{src.name}.{n}"
        sha256 = self._move(src, dst)
        note = {"recording_id": recording_id, "call_id": call_id, "file": src.name, "kept_as": dst.name,
                "from": str(src.parent), "sha256": sha256, "size": dst.stat().st_size, "reason": reason,
                "quarantined_at": at}
        self._write(dst.with_name(dst.name + NOTE_SUFFIX),
                    json.dumps(note, sort_keys=True, indent=1).encode())
        return dst

    def quarantined(self) -> list[Path]:
        """The files kept in quarantine (not their notes), for health and metrics."""
        root = self.root / QUARANTINE_DIR
        if not root.is_dir():
            return []
        return sorted(p for p in root.glob("*/*") if p.is_file() and not p.name.endswith(NOTE_SUFFIX))

    def quarantined_files(self) -> list[QuarantinedFile]:
        """:meth:`quarantined`, each with its recording (folder) and call (note): what erasure
        matches a call's leftovers by (the note holds no number)."""
        out = []
        for path in self.quarantined():
            if not SAFE_ID.match(path.parent.name):
                continue
            call_id = None
            try:
                note = json.loads(path.with_name(path.name + NOTE_SUFFIX).read_bytes())
                found = note.get("call_id") if isinstance(note, dict) else None
                call_id = found if isinstance(found, str) and found else None
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:
                log.error("quarantined %s/%s: unreadable note: %s", path.parent.name, path.name, exc)
            out.append(QuarantinedFile(path, path.parent.name, call_id))
        return out

    def drop_quarantined(self, item: QuarantinedFile) -> None:
        """Erasure only: delete a quarantined file and its note as :meth:`remove` deletes an entry
        (unlinked, the directory fsynced; no overwrite, which a journaling file system or an SSD
        would not honour anyway), and the recording's folder once empty."""
        folder = item.path.parent
        item.path.unlink(missing_ok=True)
        item.path.with_name(item.path.name + NOTE_SUFFIX).unlink(missing_ok=True)
        atomic.fsync_dir(folder)
        try:
            folder.rmdir()
        except OSError:  # another leftover of the recording is still there
            return
        atomic.fsync_dir(folder.parent)
