"""Optional archival transcoding, as a shipper prepare stage ``(path, manifest) -> (path, manifest)``.

* ``flac`` (lossless) via sox: ~37 MB per recorded hour of 8 kHz speech.
* ``opus`` via ``opusenc`` (Debian package ``opus-tools``): 12 kbit/s per channel VBR,
  SILK speech mode, 60 ms packets, complexity 0 -> ~5.2 MB per recorded hour (mono).
  Mono stays mono; stereo (dual-channel caller/agent) stays stereo at twice the bitrate.
  Why these settings (``bench/bench_transcode.py`` measures them): 60 ms packets bundle
  three 20 ms SILK frames, so the audio is coded the same but there are a third as many
  packets (less Ogg/TOC overhead) and encoder calls; latency is irrelevant for archives.
  Complexity 0 is the only level that reaches >= 300x real time per core on the
  reference VM, and at 12 kbit/s narrowband speech it costs no size.

The output is written next to the input (inside the spool entry), atomically, and its
duration is checked against the input: FLAC with soxi (identical sample count), Opus from
its own Ogg headers (final granule minus pre-skip, at 48 kHz; within one packet, 60 ms),
and the channel count must match.  The shipper hashes and stores the output; the manifest
keeps the original's hash (``files[].sha256`` / ``audio_sha256``) and ``processing``
records ``format`` plus a ``transcode`` entry per file (from, to, tool, tool_version,
original sha256/size, sha256/size of the output, durations).  ``keep_original=False``
removes the input once the output verified; True leaves it in the spool entry and sets
``original_kept``: the shipper then stores it too, as ``<rid>-original`` (after the later
stages, e.g. encryption), and lists it in ``recordings.objects`` (role ``original``).
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
from storage import atomic, file_modes, ogg_opus
from storage.hashing import hash_file

log = logging.getLogger(__name__)
FORMATS = ("flac", "opus")
OPUS_KBPS_PER_CHANNEL = 12
OPUS_FRAME_MS = 60
OPUS_COMPLEXITY = 0
OPUSENC_INPUTS = (".wav", ".flac", ".aiff", ".aif")  # anything else goes through sox first
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


def available_formats() -> list[str]:
    out = ["flac"] if "flac" in sox_formats() else []
    if shutil.which("opusenc"):
        out.append("opus")
    return out


@lru_cache(maxsize=4)
def tool_version(tool: str) -> str:
    """First line of ``<tool> --version``, e.g. ``opusenc opus-tools 0.2 (using libopus 1.3.1)``."""
    lines = _run([tool, "--version"]).strip().splitlines()
    return " ".join(lines[0].split()) if lines else "unknown"


def samples_and_rate(path: Path) -> tuple[int, float]:
    """Samples per channel and rate; headerless inputs (.gsm, .ulaw, .sln) are counted by decoding."""
    n, rate = int(_run(["soxi", "-s", str(path)]).strip()), float(_run(["soxi", "-r", str(path)]).strip())
    if n == 0:
        done = subprocess.run(
            ["sox", str(path), "-n", "stat"], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
        for line in done.stderr.splitlines():
            if line.startswith("Samples read:"):
                n = int(line.split(":", 1)[1]) // channels(path)
    return n, rate


def channels(path: Path) -> int:
    return int(_run(["soxi", "-c", str(path)]).strip())


def duration_s(path: Path) -> float:
    if Path(path).suffix.lower() == ".opus":
        return ogg_opus.read_info(Path(path)).duration_s
    return float(_run(["soxi", "-D", str(path)]).strip())


def opusenc_args(src: Path, dst: Path, n_channels: int, complexity: int = OPUS_COMPLEXITY) -> list[str]:
    return [
        "opusenc",
        "--quiet",
        "--bitrate",
        str(OPUS_KBPS_PER_CHANNEL * n_channels),
        "--vbr",
        "--speech",
        "--framesize",
        str(OPUS_FRAME_MS),
        "--comp",
        str(complexity),
        "--padding",
        "0",
        str(src),
        str(dst),
    ]


def encode(src: Path, dst: Path, fmt: str, *, complexity: int = OPUS_COMPLEXITY) -> str:
    """Write ``dst`` in ``fmt``; returns the tool used."""
    if fmt == "flac":
        _run(["sox", "-q", str(src), "-t", "flac", "-C", "5", str(dst)])
        return "sox"
    if fmt != "opus":
        raise ConfigError(f"unknown transcode format {fmt!r}", key="storage.transcode.format")
    if not shutil.which("opusenc"):
        raise StorageError("opus transcoding needs opusenc (Debian package opus-tools); not found on PATH")
    if src.suffix.lower() in OPUSENC_INPUTS:
        _run(opusenc_args(src, dst, channels(src), complexity))
        return "opusenc"
    wav = atomic.temp_path_for(dst.with_suffix(".wav"))
    try:  # e.g. .gsm / .ulaw / .sln from the PBX: decode to 16-bit WAV first
        _run(["sox", "-q", str(src), "-b", "16", "-e", "signed-integer", "-t", "wav", str(wav)])
        _run(opusenc_args(wav, dst, channels(wav), complexity))
    finally:
        wav.unlink(missing_ok=True)
    return "opusenc"


class Transcoder:
    """A prepare stage.  ``Transcoder("opus", keep_original=False)``; ``format='none'`` passes through.
    The input is never deleted (a shipper's retry starts from it); ``keep_original`` says whether
    the shipper stores it too (``processing.transcode[<file>].original_kept``).

    The encoder is looked up here, when the daemon builds its pipeline (the config only
    checks the name), so a machine without sox / opusenc fails at start with a ConfigError.
    """

    def __init__(self, fmt: str = "flac", *, keep_original: bool = True) -> None:
        if fmt != "none" and fmt not in FORMATS:
            raise ConfigError(
                f"unknown transcode format {fmt!r} (none, flac, opus)", key="storage.transcode.format"
            )
        if fmt != "none" and fmt not in available_formats():
            need = "opusenc (Debian package opus-tools)" if fmt == "opus" else "sox with FLAC support"
            raise ConfigError(
                f"{fmt} encoding is not available on this machine: it needs {need}, not found on PATH",
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
            file_modes.make_private(dst)  # the encoder wrote it with the umask
            atomic.fsync_dir(dst.parent)
        finally:
            tmp.unlink(missing_ok=True)
        info = {
            "from": src.suffix.lstrip(".").lower(),
            "to": self.fmt,
            "tool": tool,
            "tool_version": tool_version(tool),
            "original_sha256": hash_file(src),
            "original_size": src.stat().st_size,
            "sha256": hash_file(dst),
            "size": dst.stat().st_size,
            "duration_in_s": d_in,
            "duration_out_s": d_out,
            "original_kept": self.keep_original,
        }
        # keep_original=False: the original is not *stored*; it stays in the spool entry (removed
        # with it once the recording is stored): a retry after any later failure (a tier down,
        # a kill) transcodes it again.  Deleted here, the retry found neither it nor a manifest
        # naming the output, and the recording stayed in the spool for good.
        log.info(
            "transcoded rec=%s %s -> %s (%d -> %d bytes)",
            getattr(manifest, "recording_id", None) or _dict_get(manifest, "recording_id"),
            src.name,
            dst.name,
            info["original_size"],
            info["size"],
        )
        return dst, _with_processing(manifest, src.name, info, self.fmt)

    def _check_duration(self, src: Path, out: Path) -> tuple[float, float]:
        n_in, r_in = samples_and_rate(src)
        d_in = n_in / r_in
        if self.fmt == "flac":
            n_out, r_out = samples_and_rate(out)
            d_out = n_out / r_out
            ok = (n_in, r_in) == (n_out, r_out)
        else:
            opus = ogg_opus.read_info(out)
            d_out = opus.duration_s
            if opus.channels != channels(src):
                raise IntegrityError(
                    f"transcoding {src.name} changed the channel count: {channels(src)} -> {opus.channels}"
                )
            ok = abs(d_in - d_out) <= OPUS_FRAME_MS / 1000
        if not ok:
            raise IntegrityError(f"transcoding {src.name} changed the duration: {d_in:.3f}s -> {d_out:.3f}s")
        return round(d_in, 3), round(d_out, 3)


def _dict_get(manifest: Any, key: str) -> Any:
    return manifest.get(key, "?") if isinstance(manifest, dict) else "?"


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
