"""Is a finished recording worth what it claims?  Flags for short, silent-only and cut files.

* ``short``: less than :data:`SHORT_S` of audio (a 0.3 s file of a 0 s call).
* ``silent``: no 20 ms window louder than :data:`SILENCE_DBFS` (digital silence or line hiss
  only: nothing anyone said).  Muted stretches (PCI pause) are silence by design, so a file is
  judged on the windows outside its pauses only when there is no other audio at all.
* ``cut``: the file did not end by a normal close: its WAV header was never finished
  (``header_repaired``: the PBX died while writing), or the PBX restarted under the call
  (set by the core, see ``call_faults``).

Reads 16-bit PCM (WAV via ``wave``, ``.raw`` as is) in blocks; stops at the first loud window,
so a normal recording costs one block.  Other formats: level unknown, no ``silent`` flag.
"""

from __future__ import annotations

import array
import math
import sys
import wave
from pathlib import Path

SHORT_S = 1.0
SILENCE_DBFS = -50.0
WINDOW_S = 0.02
BLOCK_FRAMES = 8000
_FULL_SCALE = 32768.0


def _loud(samples: array.array[int], window: int, threshold: float) -> bool:
    limit = threshold * threshold * window
    for start in range(0, len(samples) - window + 1, window):
        chunk = samples[start:start + window]
        if sum(x * x for x in chunk) > limit:
            return True
    return False


def has_sound(path: str | Path, *, channels: int = 1, threshold_dbfs: float = SILENCE_DBFS) -> bool | None:
    """True at the first 20 ms window above ``threshold_dbfs``; False if none; None if unknown."""
    p = Path(path)
    threshold = _FULL_SCALE * 10 ** (threshold_dbfs / 20.0)
    try:
        if p.suffix.lower() == ".wav":
            with wave.open(str(p), "rb") as w:
                if w.getsampwidth() != 2:
                    return None
                rate, chans = w.getframerate(), w.getnchannels()
                window = max(1, int(rate * WINDOW_S)) * chans
                while True:
                    data = w.readframes(BLOCK_FRAMES)
                    if not data:
                        return False
                    if _loud(_pcm(data), window, threshold):
                        return True
        if p.suffix.lower() == ".raw":
            window = int(8000 * WINDOW_S) * channels
            with open(p, "rb") as f:
                while data := f.read(BLOCK_FRAMES * 2 * channels):
                    if _loud(_pcm(data), window, threshold):
                        return True
            return False
    except (wave.Error, EOFError, OSError, ValueError):
        return None
    return None


def _pcm(data: bytes) -> array.array[int]:
    samples = array.array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def quality_flags(duration_s: float | None, sound: bool | None, header_repaired: bool) -> list[str]:
    flags = []
    if duration_s is not None and duration_s < SHORT_S:
        flags.append("short")
    if sound is False:
        flags.append("silent")
    if header_repaired:
        flags.append("cut")
    return flags


def level_dbfs(rms: float) -> float:
    """For logs: an RMS amplitude (0..32768) in dBFS."""
    return 20 * math.log10(max(rms, 1e-9) / _FULL_SCALE)
