"""Archival transcoding: bytes per recorded hour and speed in multiples of real time per core.

Input: ~10 minutes of 8 kHz mono 16-bit speech (espeak-ng sentences with a -50 dB noise
floor, like a phone line).  Each format is encoded with the production code path
(``storage.transcode.encode``); CPU time of the encoder processes gives "x real time per
core".  Baselines measured in the same run: the WAV itself (size) and a plain file copy
(speed).  GSM (lossy, 13 kbit/s) is shown for reference only: it is not an archival option.

Targets: <= 8 MB per recorded hour, >= 300x real time per core.

    .venv/bin/python bench/bench_transcode.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import transcode  # noqa: E402

TEXT = (
    "Thank you for calling. This call may be recorded for quality and training purposes. "
    "I would like to ask about my last invoice, the amount seems to be higher than usual. "
    "Let me check that for you, could you confirm your account number please?"
)


def make_speech(path: Path, minutes: float, work: Path) -> float:
    voice = work / "voice.wav"
    subprocess.run(["espeak-ng", "-w", str(voice), TEXT], check=True)
    one = work / "one.wav"
    subprocess.run(
        ["sox", str(voice), "-r", "8000", "-c", "1", "-b", "16", str(one), "pad", "0", "0.7"], check=True
    )
    seconds = float(
        subprocess.run(["soxi", "-D", str(one)], capture_output=True, text=True, check=True).stdout
    )
    reps = max(1, int(minutes * 60 / seconds))
    clean = work / "clean.wav"
    subprocess.run(["sox", str(one), str(clean), "repeat", str(reps - 1)], check=True)
    noise = work / "noise.wav"
    subprocess.run(["sox", str(clean), str(noise), "synth", "whitenoise", "vol", "0.003"], check=True)
    subprocess.run(["sox", "-m", str(clean), str(noise), str(path)], check=True)
    return transcode.duration_s(path)


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(fn, audio_s: float) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    c0, t0 = cpu_children(), time.perf_counter()
    fn()
    cpu, wall = cpu_children() - c0, time.perf_counter() - t0
    return audio_s / max(cpu, 1e-9), audio_s / max(wall, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as tmp:
        work = Path(tmp)
        wav = work / "call.wav"
        audio_s = make_speech(wav, a.minutes, work)
        per_hour = 3600.0 / audio_s
        print(f"input: {audio_s / 60:.1f} min of 8 kHz mono 16-bit speech")
        print(
            f"{'format':<8} {'MB per hour':>12} {'x RT/core':>10} {'x RT wall':>10}"
            "  target <= 8 MB/h, >= 300x"
        )
        t0 = time.perf_counter()
        shutil.copyfile(wav, work / "copy.wav")
        copy_rt = audio_s / (time.perf_counter() - t0)
        print(
            f"{'wav':<8} {wav.stat().st_size * per_hour / 1e6:>12.2f} {'-':>10} {copy_rt:>10,.0f}  "
            "(baseline: plain copy, same run)"
        )
        formats = transcode.available_formats()
        for fmt in formats:
            out = work / f"call.{fmt}"
            core, wall = measure(lambda out=out, fmt=fmt: transcode.encode(wav, out, fmt), audio_s)
            mb = out.stat().st_size * per_hour / 1e6
            verdict = (
                ("size OK" if mb <= 8 else "size MISSES")
                + ", "
                + ("speed OK" if core >= 300 else "speed MISSES")
            )
            print(f"{fmt:<8} {mb:>12.2f} {core:>10,.0f} {wall:>10,.0f}  {verdict}")
        gsm = work / "call.gsm"
        core, wall = measure(lambda: subprocess.run(["sox", "-q", str(wav), str(gsm)], check=True), audio_s)
        print(
            f"{'gsm':<8} {gsm.stat().st_size * per_hour / 1e6:>12.2f} {core:>10,.0f} {wall:>10,.0f}  "
            "(reference only: lossy 13 kbit/s, not archival)"
        )
        if "opus" not in formats:
            print(
                "opus: not available (this sox has no Opus format and ffmpeg with libopus is missing); "
                "planner figure ~7.3 MB/h at 16 kbit/s is not measured here"
            )


if __name__ == "__main__":
    main()
