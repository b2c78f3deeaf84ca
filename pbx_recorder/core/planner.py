"""Storage sizing (pure): how much hot and cold storage a recording policy needs, month by month.

Bytes per recorded hour, per stored format (mono telephony audio, 8 kHz):

* ``wav``  16-bit PCM: 8000 samples/s x 2 bytes = 16,000 B/s -> 57.6 MB/h (44-byte header ignored).
* ``gsm``  GSM 06.10 full rate: one 33-byte frame per 20 ms = 1,650 B/s (13.2 kbit/s) -> 5.94 MB/h.
* ``flac`` lossless, level 5: about 65 % of the PCM for speech -> ~37 MB/h.  Measured here with
  sox on espeak-ng speech at 8 kHz (37.3 MB/h; with a -50 dB noise floor 37.5 MB/h); real lines
  vary, ``bench/bench_transcode.py`` prints the figure for this machine.
* ``opus`` the archival setting of ``storage/transcode.py`` (opusenc, 12 kbit/s VBR, 60 ms
  packets): nominal 12,000 / 8 = 1,500 B/s -> 5.40 MB/h, plus the Ogg page overhead
  measured by ``bench/bench_transcode.py`` (0.162 MB/h: ~1 page/s) -> 5.56 MB/h.  Speech
  with pauses comes in below the nominal rate (the bench measured 5.14 MB/h on espeak-ng
  speech); the planner keeps the nominal figure so it does not under-provision.
  Dual-channel (stereo) recordings are encoded at 12 kbit/s per channel: twice this.

MB = 10^6 bytes.  A month is 365.25 / 12 days.  A recording is on the hot tier for
``cold_after`` days (or its whole retention when that is shorter / no cold tier), then
on the cold tier until its class's retention ends; a class of 0 days is kept forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

BYTES_PER_HOUR: Mapping[str, float] = {
    "wav": 8000 * 2 * 3600,  # 57.6 MB
    "gsm": 1650 * 3600,  # 5.94 MB
    "flac": 37.3e6,
    "opus": 12_000 / 8 * 3600 + 0.162e6,  # 5.562 MB: nominal 12 kbit/s + measured Ogg overhead
}
MONTH_DAYS = 365.25 / 12


@dataclass(frozen=True, slots=True)
class ClassShare:
    name: str
    days: int  # 0 = forever
    share: float  # fraction of calls


@dataclass(frozen=True, slots=True)
class MonthRow:
    month: int
    hot: float  # bytes at the end of the month
    cold: float
    total: float
    growth: float  # total minus the previous month's total


def parse_retention(text: str) -> list[ClassShare]:
    """``"standard=180,finance=1095"`` (equal shares) or ``"standard=180:0.8,finance=1095:0.2"``."""
    items = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, rest = part.partition("=")
        days, _, share = rest.partition(":")
        if not name or not days.strip().isdigit():
            raise ValueError(f"bad retention item {part!r}: use name=days[:share]")
        items.append((name.strip(), int(days), float(share) if share else None))
    if not items:
        raise ValueError("no retention classes given")
    given = sum(s for _, _, s in items if s is not None)
    missing = [i for i in items if i[2] is None]
    if given > 1.0 + 1e-9 or (not missing and abs(given - 1.0) > 1e-6):
        raise ValueError("class shares must add up to 1")
    rest_share = (1.0 - given) / len(missing) if missing else 0.0
    return [ClassShare(n, d, s if s is not None else rest_share) for n, d, s in items]


def daily_bytes(calls_per_day: float, avg_minutes: float, fmt: str) -> float:
    if fmt not in BYTES_PER_HOUR:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(BYTES_PER_HOUR)})")
    return calls_per_day * avg_minutes / 60.0 * BYTES_PER_HOUR[fmt]


def stock(day: float, retention_days: int, cold_after: int | None) -> tuple[float, float]:
    """(hot, cold) days' worth of recordings kept ``day`` days after recording started."""
    keep = day if retention_days <= 0 else min(day, retention_days)
    if cold_after is None or (retention_days > 0 and retention_days <= cold_after):
        return keep, 0.0
    hot = min(keep, cold_after)
    return hot, keep - hot


def plan(
    calls_per_day: float,
    avg_minutes: float,
    fmt: str,
    classes: list[ClassShare],
    *,
    cold_after: int | None = 30,
    months: int = 36,
) -> list[MonthRow]:
    per_day = daily_bytes(calls_per_day, avg_minutes, fmt)
    out: list[MonthRow] = []
    previous = 0.0
    for m in range(1, months + 1):
        hot = cold = 0.0
        for c in classes:
            h, k = stock(m * MONTH_DAYS, c.days, cold_after)
            hot += per_day * c.share * h
            cold += per_day * c.share * k
        out.append(MonthRow(m, hot, cold, hot + cold, hot + cold - previous))
        previous = hot + cold
    return out


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:,.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} PB"
