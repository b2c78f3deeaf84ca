"""Audio duration of a finished recording, and the duration-mismatch rule.

WAV via the stdlib ``wave`` module, with a fallback that reads the RIFF chunks by hand
for the header Asterisk leaves when killed (data size 0 or larger than the file): the
duration then comes from the file size.  ``.raw``/``.sln`` are signed 16-bit 8 kHz
(``.sln16`` 16 kHz).  Other formats via ``soxi -D`` when sox is installed.
Never raises for bad audio: :class:`AudioInfo` carries an ``error`` instead.

The two functions that rewrite or copy a PBX file (:func:`fix_wav_sizes`,
:func:`wrap_raw_as_wav`) open it once without following a symlink, check with ``fstat`` that it
is a regular file, and use that one descriptor throughout (as ``storage.atomic.move_file``
does): the PBX account owns its drop folder and could plant ``<rid>_...Z.raw`` as a link to a
key or the catalog, whose bytes would otherwise end up in a stored, playable WAV (or, for a
``.wav``, be overwritten).  They raise :class:`StorageError` naming the file instead.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import struct
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from pbx_recorder.errors import StorageError

RAW_RATES = {".raw": 8000, ".sln": 8000, ".sl": 8000, ".sln16": 16000}
SOXI_TIMEOUT_S = 10


@dataclass(frozen=True, slots=True)
class AudioInfo:
    duration_s: float | None
    format: str
    error: str = ""  # "" when the duration is trustworthy
    header_repaired: bool = False  # WAV header data size was wrong; computed from the file size

    @property
    def ok(self) -> bool:
        return not self.error and self.duration_s is not None


def _riff_duration(path: Path) -> tuple[float, bool]:
    """(duration, header_was_wrong) from the RIFF chunks; ValueError when not a usable WAV."""
    file_size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError("not a RIFF/WAVE file")
        byte_rate = 0
        while True:
            hdr = f.read(8)
            if len(hdr) < 8:
                raise ValueError("no data chunk")
            cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(size)
                if len(fmt) < 16:
                    raise ValueError("short fmt chunk")
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
                if size % 2:
                    f.read(1)
            elif cid == b"data":
                if byte_rate <= 0:
                    raise ValueError("no fmt chunk before data or zero byte rate")
                available = file_size - f.tell()
                wrong = size == 0 or size > available
                data = available if wrong else size
                return data / byte_rate, wrong
            else:
                f.seek(size + (size % 2), 1)


def open_regular(path: Path, flags: int) -> int:
    """A descriptor on ``path`` itself: never through a symlink, and only for a regular file
    (checked on the descriptor: no check-then-open race).  :class:`StorageError` otherwise."""
    try:  # O_NONBLOCK: a FIFO planted in its place must not hang the worker (no effect on files)
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StorageError(f"{path.name} is a symbolic link: refused (a recording file must be "
                               "a regular file)") from exc
        raise StorageError(f"cannot open {path.name}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{path.name} is not a regular file: refused")
        if st.st_nlink != 1:  # a hard link to another file (a key, the catalog): never a recording
            raise StorageError(f"{path.name} has {st.st_nlink} links: refused (a recording file has one)")
    except BaseException:
        os.close(fd)
        raise
    return fd


def fix_wav_sizes(path: str | Path) -> bool:
    """Write the RIFF and data sizes a killed writer never wrote (FreeSWITCH/libsndfile writes
    them on close only: after a PBX crash the header says 0 bytes and players show nothing).
    The samples are untouched; the sizes become what the file holds.  True when changed.
    A symlink or non-regular file raises :class:`StorageError` (nothing written)."""
    p = Path(path)
    with os.fdopen(open_regular(p, os.O_RDWR), "r+b") as f:
        file_size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        while True:
            hdr = f.read(8)
            if len(hdr) < 8:
                return False
            cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"data":
                data_at = f.tell()
                data = file_size - data_at
                if size == data:
                    return False
                f.seek(data_at - 4)
                f.write(struct.pack("<I", data))
                f.seek(4)
                f.write(struct.pack("<I", file_size - 8))
                f.flush()
                os.fsync(f.fileno())
                return True
            f.seek(size + (size % 2), 1)


def wav_duration(path: Path) -> AudioInfo:
    try:
        with wave.open(str(path), "rb") as w:
            frames, rate, block = w.getnframes(), w.getframerate(), w.getsampwidth() * w.getnchannels()
        if frames > 0 and rate > 0:
            # a truncated file still has the original header size: trust only what is there
            if frames * block <= path.stat().st_size:
                return AudioInfo(frames / rate, "wav")
    except (wave.Error, EOFError, struct.error):
        pass  # non-PCM (e.g. WAV49/GSM) or broken header: the RIFF walk below decides
    except OSError as exc:
        return AudioInfo(None, "wav", f"unreadable: {exc.strerror}")
    try:
        duration, wrong = _riff_duration(path)
    except (ValueError, struct.error, OSError) as exc:
        return AudioInfo(None, "wav", f"corrupt wav: {exc}")
    return AudioInfo(duration, "wav", header_repaired=wrong)


def raw_duration(path: Path, rate: int, channels: int = 1) -> AudioInfo:
    size = path.stat().st_size
    fmt = path.suffix.lstrip(".")
    error = "odd byte count for 16-bit audio" if size % (2 * channels) else ""
    return AudioInfo(size / (2 * channels * rate), fmt, error)


def soxi_duration(path: Path) -> AudioInfo:
    fmt = path.suffix.lstrip(".")
    soxi = shutil.which("soxi")
    if soxi is None:
        return AudioInfo(None, fmt, "sox not installed: duration unknown")
    try:
        out = subprocess.run([soxi, "-D", str(path)], capture_output=True, text=True,
                             timeout=SOXI_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return AudioInfo(None, fmt, f"soxi failed: {exc}")
    if out.returncode != 0:
        return AudioInfo(None, fmt, f"corrupt audio: {out.stderr.strip()[:200]}")
    try:
        return AudioInfo(float(out.stdout.strip()), fmt)
    except ValueError:
        return AudioInfo(None, fmt, "soxi gave no duration")


def probe_duration(path: str | Path, *, channels: int = 1) -> AudioInfo:
    """Duration of ``path`` in seconds; never raises for bad audio."""
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if not p.is_file():
            return AudioInfo(None, suffix.lstrip("."), "file missing")
        if suffix == ".wav":
            return wav_duration(p)
        if suffix in RAW_RATES:
            return raw_duration(p, RAW_RATES[suffix], channels)
        return soxi_duration(p)
    except OSError as exc:
        return AudioInfo(None, suffix.lstrip("."), f"unreadable: {exc.strerror}")


def duration_mismatch(audio_s: float | None, recorded_span_s: float | None, paused_s: float = 0.0, *,
                      pause_keeps_timeline: bool = True, tolerance_s: float = 1.0,
                      tolerance_ratio: float = 0.005) -> bool:
    """True when the audio length does not fit the span we recorded.

    The span runs from the PBX's confirmation that MixMonitor started (the action's response)
    to the hang-up (or stop) event, both as the PBX reported them, so the slack is what those
    timestamps allow: event delivery at each end and 20 ms frames (``tolerance_s``, 1 s) plus
    clock drift (``tolerance_ratio``, 0.5 %): 4 s on a 10-minute call, where the old
    max(2 s, 5 %) let 30 s pass.  MixMonitorMute writes silence and keeps the timeline, so
    pauses count as audio unless ``pause_keeps_timeline`` is False.  Unknown durations are not
    a mismatch (they are flagged elsewhere).
    """
    if audio_s is None or recorded_span_s is None:
        return False
    expected = recorded_span_s if pause_keeps_timeline else max(recorded_span_s - paused_s, 0.0)
    return abs(audio_s - expected) > tolerance_s + tolerance_ratio * expected


def wrap_raw_as_wav(src: str | Path, *, channels: int, rate: int = 8000, chunk: int = 1 << 16) -> Path:
    """Give a headerless signed 16-bit file (MixMonitor ``D`` writes interleaved stereo ``.raw``)
    a WAV header, streaming: ``<stem>.wav`` beside it, written to a temp name then renamed.
    The ``.raw`` is left for the caller to remove once the WAV is safely spooled.  A ``.raw``
    that is a symlink or not a regular file raises :class:`StorageError` before anything is
    written (its target's bytes never reach a WAV)."""
    from storage import file_modes
    from storage.atomic import fsync_dir, temp_path_for

    src = Path(src)
    dst = src.with_suffix(".wav")
    source = open_regular(src, os.O_RDONLY)  # before the temp file exists: nothing to clean up
    tmp = temp_path_for(dst)
    try:
        with os.fdopen(source, "rb") as inp, os.fdopen(file_modes.open_new(tmp), "wb") as raw, \
                wave.open(raw, "wb") as out:  # owner-only from the first byte
            out.setnchannels(channels)
            out.setsampwidth(2)
            out.setframerate(rate)
            frame = 2 * channels
            carry = b""
            while block := inp.read(chunk):
                block = carry + block
                cut = len(block) - len(block) % frame
                out.writeframes(block[:cut])
                carry = block[cut:]
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return dst
