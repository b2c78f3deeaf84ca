"""Audio checks for real-call tests: RMS amplitude (``sox FILE -n stat``) and duration (``soxi -D``)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class AudioStats:
    path: str
    duration_s: float
    rms: float
    max_amplitude: float

    @property
    def silent(self) -> bool:
        return self.rms < 0.001


def audio_stats(path: str | Path, timeout: float = 30.0) -> AudioStats:
    """RMS / max amplitude and duration of an audio file sox can read."""
    stat = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True,
                          timeout=timeout, check=True)
    values: dict[str, float] = {}
    for line in stat.stderr.splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            values[" ".join(name.split())] = float(value.strip())
        except ValueError:
            continue
    dur = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True,
                         timeout=timeout, check=True)
    return AudioStats(path=str(path), duration_s=float(dur.stdout.strip() or 0.0),
                      rms=values.get("RMS amplitude", 0.0),
                      max_amplitude=values.get("Maximum amplitude", 0.0))
