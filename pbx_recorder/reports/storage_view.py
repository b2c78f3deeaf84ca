"""The storage page's figures (pure): bytes per tier per month as the catalog holds them, beside
the ``pbx-recorder plan`` forecast (:mod:`pbx_recorder.core.planner`, reused as is) fed with what the
installation actually records (recorded calls per day and minutes per call over the last 30 days,
the most stored format, the configured retention classes with their shares of recent recordings).

A class with its own ``cold_after_days`` is planned on its own (``planner.plan`` takes one
cold-after) and the classes' month rows are added up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pbx_recorder.core import planner


@dataclass(frozen=True, slots=True)
class MonthStock:
    month: str
    added: Mapping[str, int]  #: tier -> bytes of the recordings made that month (still stored)
    total: Mapping[str, int]  #: tier -> bytes stored at the end of the month (made up to then)

    @property
    def all_added(self) -> int:
        return sum(self.added.values())

    @property
    def all_total(self) -> int:
        return sum(self.total.values())


@dataclass(frozen=True, slots=True)
class ClassPlan:
    name: str
    days: int  #: 0 = forever
    cold_after: int | None  #: None = stays hot
    share: float


@dataclass(frozen=True, slots=True)
class ForecastInputs:
    calls_per_day: float
    avg_minutes: float
    fmt: str
    classes: tuple[ClassPlan, ...]


def months(keys: Iterable[str], rows: Iterable[tuple[str, str, int, int]],
           before: Iterable[tuple[str, int]]) -> tuple[list[str], list[MonthStock]]:
    """(tiers, one MonthStock per month key in order) from ``queries.stored_by_month`` rows and the
    stock made before the first month (``queries.storage_before``)."""
    added: dict[str, dict[str, int]] = {}
    for month, tier, _, size in rows:
        added.setdefault(month, {})[tier] = added.get(month, {}).get(tier, 0) + size
    running = dict(before)
    tiers = sorted(set(running) | {tier for per_tier in added.values() for tier in per_tier})
    out = []
    for key in keys:
        for tier, size in added.get(key, {}).items():
            running[tier] = running.get(tier, 0) + size
        out.append(MonthStock(key, dict(added.get(key, {})), dict(running)))
    return tiers, out


def shares(counts: Mapping[str, int], classes: Mapping[str, tuple[int, int | None]],
           default: str) -> tuple[ClassPlan, ...]:
    """Each configured class with its share of ``counts`` (recent recordings per retention class;
    an unknown or empty class counts as ``default``); equal shares when nothing was recorded."""
    folded: dict[str, int] = {}
    for name, n in counts.items():
        key = name if name in classes else default
        folded[key] = folded.get(key, 0) + n
    total = sum(folded.values())
    out = []
    for name, (days, cold_after) in sorted(classes.items()):
        share = folded.get(name, 0) / total if total else 1.0 / len(classes)
        if share > 0:
            out.append(ClassPlan(name, days, cold_after, share))
    return tuple(out)


def forecast(inputs: ForecastInputs, months_ahead: int) -> list[planner.MonthRow]:
    fmt = inputs.fmt if inputs.fmt in planner.BYTES_PER_HOUR else "wav"
    summed: list[planner.MonthRow] = []
    for c in inputs.classes:
        rows = planner.plan(inputs.calls_per_day * c.share, inputs.avg_minutes, fmt,
                            [planner.ClassShare(c.name, c.days, 1.0)], cold_after=c.cold_after,
                            months=months_ahead)
        if not summed:
            summed = rows
            continue
        summed = [planner.MonthRow(a.month, a.hot + b.hot, a.cold + b.cold, a.total + b.total,
                                   a.growth + b.growth) for a, b in zip(summed, rows, strict=True)]
    return summed
