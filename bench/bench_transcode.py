"""Archival transcoding: bytes per recorded hour and speed in multiples of real time per core.

Input: ~10 minutes of 8 kHz mono 16-bit speech (espeak-ng sentences with a -50 dB noise
floor, like a phone line).  Each format is encoded with the production code path
(``storage.transcode.encode``); CPU time of the encoder processes gives "x real time per
core" (median of ``--repeat`` runs).  Baselines measured in the same run: the WAV itself
(size) and a plain file copy (speed).  GSM (lossy, 13 kbit/s) is shown for reference only:
it is not an archival option.

Opus (opusenc, the production settings of ``storage.transcode``) also gets its Ogg
container overhead (page headers, from the file's own pages) and a complexity sweep that
shows why ``OPUS_COMPLEXITY`` is what it is.  On a VM, libopus 1.3's per-call CPU feature
check (CPUID, a VM exit) is a large share of encoder time; bare metal is faster.

Targets: <= 8 MB per recorded hour, >= 300x real time per core.

    .venv/bin/python bench/bench_transcode.py [--minutes 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import ogg_opus, transcode  # noqa: E402

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


def measure(fn, audio_s: float, repeat: int = 1) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(x real time per core, x real time wall), medians over ``repeat`` runs."""
    cores, walls = [], []
    for _ in range(repeat):
        c0, t0 = cpu_children(), time.perf_counter()
        fn()
        cpu, wall = cpu_children() - c0, time.perf_counter() - t0
        cores.append(audio_s / max(cpu, 1e-9))
        walls.append(audio_s / max(wall, 1e-9))
    return statistics.median(cores), statistics.median(walls)


def verdict(mb: float, core: float) -> str:
    return ("size OK" if mb <= 8 else "size MISSES") + ", " + ("speed OK" if core >= 300 else "speed MISSES")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
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
            core, wall = measure(lambda out=out, fmt=fmt: transcode.encode(wav, out, fmt), audio_s, a.repeat)
            mb = out.stat().st_size * per_hour / 1e6
            print(f"{fmt:<8} {mb:>12.2f} {core:>10,.0f} {wall:>10,.0f}  {verdict(mb, core)}")
        gsm = work / "call.gsm"
        core, wall = measure(
            lambda: subprocess.run(["sox", "-q", str(wav), str(gsm)], check=True), audio_s, a.repeat
        )
        print(
            f"{'gsm':<8} {gsm.stat().st_size * per_hour / 1e6:>12.2f} {core:>10,.0f} {wall:>10,.0f}  "
            "(reference only: lossy 13 kbit/s, not archival)"
        )
        if "opus" not in formats:
            print("opus: not measured: opusenc is missing (apt-get install opus-tools)")
            return
        info = ogg_opus.read_info(work / "call.opus")
        nominal = transcode.OPUS_KBPS_PER_CHANNEL * 1000 / 8 * 3600 / 1e6
        print(
            f"opus settings: {transcode.OPUS_KBPS_PER_CHANNEL} kbit/s VBR, {transcode.OPUS_FRAME_MS} ms, "
            f"complexity {transcode.OPUS_COMPLEXITY} ({transcode.tool_version('opusenc')}); "
            f"nominal {nominal:.2f} MB/h, Ogg overhead {info.container_bytes * per_hour / 1e6:.3f} MB/h "
            f"({info.pages} pages, duration {info.duration_s:.3f}s of {audio_s:.3f}s)"
        )
        for comp in (0, 1, 3, 5, 10):
            out = work / f"comp{comp}.opus"
            core, wall = measure(
                lambda out=out, comp=comp: transcode.encode(wav, out, "opus", complexity=comp),
                audio_s,
                a.repeat,
            )
            mb = out.stat().st_size * per_hour / 1e6
            print(
                f"{'opus c' + str(comp):<8} {mb:>12.2f} {core:>10,.0f} {wall:>10,.0f}  "
                f"{verdict(mb, core)} (tuning)"
            )


if __name__ == "__main__":
    main()
