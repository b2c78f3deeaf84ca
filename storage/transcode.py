"""Optional archival transcoding, as a shipper prepare stage ``(path, manifest) -> (path, manifest)``.

* FLAC (lossless) via sox: always available when sox is installed.
* Opus via sox (only if this sox build lists ``opus`` among its formats) or ffmpeg with
  libopus.  Debian's sox 14.4 has no Opus and ffmpeg is not installed here, so on such a
  machine only FLAC is offered and asking for Opus is a ConfigError that says so.

The output is written next to the input (inside the spool entry), atomically, and its
duration is checked against the input with soxi (FLAC: identical sample count; Opus:
within 20 ms + 0.1 %).  The shipper hashes what is stored; the manifest keeps the
original's hash (``files[].sha256`` / ``audio_sha256``) and ``processing`` records
``format`` plus a ``transcode`` entry per file (from, to, original sha256, durations, tool).
``keep_original=False`` removes the input once the output verified; True leaves it in the
spool entry (removed with the entry; storing both copies needs a second put in the shipper).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from pbx_recorder.errors import ConfigError, IntegrityError, StorageError
from storage import atomic
from storage.hashing import hash_file

log = logging.getLogger(__name__)
FORMATS = ("flac", "opus")
OPUS_BITRATE = "16k"
TIMEOUT_S = 600


def _run(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StorageError(f"{args[0]} failed: {exc}") from exc
    if done.returncode != 0:
        raise StorageError(f"{args[0]} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return done.stdout


@lru_cache(maxsize=1)
def sox_formats() -> frozenset[str]:
    if not shutil.which("sox"):
        return frozenset()
    done = subprocess.run(["sox", "-h"], capture_output=True, text=True, timeout=10, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("AUDIO FILE FORMATS:"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@lru_cache(maxsize=1)
def ffmpeg_has_libopus() -> bool:
    if not shutil.which("ffmpeg"):
        return False
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=10, check=False
    )
    return "libopus" in done.stdout


def available_formats() -> list[str]:
    out = ["flac"] if "flac" in sox_formats() else []
    if "opus" in sox_formats() or ffmpeg_has_libopus():
        out.append("opus")
    return out


def samples_and_rate(path: Path) -> tuple[int, float]:
    return int(_run(["soxi", "-s", str(path)]).strip()), float(_run(["soxi", "-r", str(path)]).strip())


def duration_s(path: Path) -> float:
    return float(_run(["soxi", "-D", str(path)]).strip())


def encode(src: Path, dst: Path, fmt: str) -> str:
    """Write ``dst`` in ``fmt``; returns the tool used."""
    if fmt == "flac":
        _run(["sox", "-q", str(src), "-t", "flac", "-C", "5", str(dst)])
        return "sox"
    if "opus" in sox_formats():
        _run(["sox", "-q", str(src), "-t", "opus", "-C", "5", str(dst)])
        return "sox"
    _run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(src),
            "-c:a",
            "libopus",
            "-b:a",
            OPUS_BITRATE,
            "-application",
            "voip",
            "-f",
            "ogg",
            str(dst),
        ]
    )
    return "ffmpeg"


class Transcoder:
    """A prepare stage.  ``Transcoder("flac", keep_original=False)``; ``format='none'`` passes through."""

    def __init__(self, fmt: str = "flac", *, keep_original: bool = True) -> None:
        if fmt != "none" and fmt not in FORMATS:
            raise ConfigError(
                f"unknown transcode format {fmt!r} (none, flac, opus)", key="storage.transcode.format"
            )
        if fmt != "none" and fmt not in available_formats():
            have = ", ".join(available_formats()) or "nothing (sox missing)"
            raise ConfigError(
                f"{fmt} encoding is not available on this machine (available: {have})",
                key="storage.transcode.format",
            )
        self.fmt = fmt
        self.keep_original = keep_original

    def __call__(self, path: Path, manifest: Any) -> tuple[Path, Any]:
        src = Path(path)
        if self.fmt == "none" or src.suffix.lower().lstrip(".") in (
            self.fmt,
            "ogg" if self.fmt == "opus" else "",
        ):
            return src, manifest
        dst = src.with_suffix(".flac" if self.fmt == "flac" else ".opus")
        tmp = atomic.temp_path_for(dst)
        try:
            tool = encode(src, tmp, self.fmt)
            d_in, d_out = self._check_duration(src, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dst)
            atomic.fsync_dir(dst.parent)
        finally:
            tmp.unlink(missing_ok=True)
        info = {
            "from": src.suffix.lstrip(".").lower(),
            "to": self.fmt,
            "tool": tool,
            "original_sha256": hash_file(src),
            "original_size": src.stat().st_size,
            "size": dst.stat().st_size,
            "duration_in_s": d_in,
            "duration_out_s": d_out,
            "original_kept": self.keep_original,
        }
        if not self.keep_original:
            src.unlink()
        log.info(
            "transcoded rec=%s %s -> %s (%d -> %d bytes)",
            getattr(manifest, "recording_id", "?"),
            src.name,
            dst.name,
            info["original_size"],
            info["size"],
        )
        return dst, _with_processing(manifest, src.name, info, self.fmt)

    def _check_duration(self, src: Path, out: Path) -> tuple[float, float]:
        n_in, r_in = samples_and_rate(src)
        n_out, r_out = samples_and_rate(out)
        d_in, d_out = n_in / r_in, n_out / r_out
        exact = self.fmt == "flac"
        if (exact and (n_in, r_in) != (n_out, r_out)) or abs(d_in - d_out) > 0.02 + 0.001 * d_in:
            raise IntegrityError(f"transcoding {src.name} changed the duration: {d_in:.3f}s -> {d_out:.3f}s")
        return round(d_in, 3), round(d_out, 3)


def _with_processing(manifest: Any, name: str, info: dict[str, Any], fmt: str) -> Any:
    processing = dict(
        getattr(manifest, "processing", None)
        or (manifest.get("processing", {}) if isinstance(manifest, dict) else {})
    )
    per_file = dict(processing.get("transcode", {}))
    per_file[name] = info
    processing.update({"format": fmt, "transcode": per_file})
    if dataclasses.is_dataclass(manifest) and not isinstance(manifest, type):
        return dataclasses.replace(manifest, processing=processing)
    if isinstance(manifest, dict):
        return {**manifest, "processing": processing}
    raise TypeError("manifest must be a dataclass with 'processing' or a dict")
