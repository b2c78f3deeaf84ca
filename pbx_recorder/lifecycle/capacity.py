"""Capacity pressure on the hot tier: migrate the lowest-ranked recordings early.

Above ``high_water`` (fraction of the tier's capacity), recordings are moved to their
cold tier, lowest-ranked first, until usage is below ``low_water``.  Nothing is ever
deleted that has not verifiably reached another tier (the Migrator's verify-before-
delete does the moving).  When the mark cannot be reached, an ERROR is logged and a
flag file in Prometheus textfile format is written; it is cleared once usage is fine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pbx_recorder.core import retention
from pbx_recorder.errors import RecorderError
from pbx_recorder.lifecycle.migration import Migrator
from storage import atomic, file_modes
from storage.base import Tier

log = logging.getLogger(__name__)
Usage = Callable[[], tuple[int, int] | None]


@dataclass
class CapacityResult:
    used_before: int
    used_after: int
    total: int
    migrated: int
    alert: bool
    reason: str


def _fraction(mark: float) -> float:
    return mark / 100.0 if mark > 1 else mark


class CapacityGuard:
    def __init__(
        self,
        migrator: Migrator,
        hot: Tier,
        *,
        high_water: float,
        low_water: float,
        alert_file: str | Path | None = None,
        usage: Usage | None = None,
    ) -> None:
        self.migrator = migrator
        self.hot = hot
        self.high = _fraction(high_water)
        self.low = _fraction(low_water)
        self.alert_file = Path(alert_file) if alert_file else None
        self.usage = usage or hot.usage

    def check(self, now: float, *, dry_run: bool = False) -> CapacityResult:
        u = self.usage()
        if u is None:
            return CapacityResult(0, 0, 0, 0, False, "tier is unbounded")
        used, total = u
        before = used
        if total <= 0 or used / total <= self.high:
            self._alert(False, used, total, "")
            return CapacityResult(used, used, total, 0, False, "below high water")
        moved = 0
        hot_rows = [r for r in self.migrator.hot_rows() if r["tier"] == self.hot.name]
        for rec in retention.capacity_ranking(hot_rows, now):
            if used / total < self.low:
                break
            if dry_run:
                used -= int(rec.get("size") or 0)
                moved += 1
                continue
            try:
                if self.migrator.migrate_one(rec, now):
                    moved += 1
            except RecorderError as exc:
                log.error(
                    "capacity migration failed call=%s rec=%s: %s", rec["call_id"], rec["recording_id"], exc
                )
            u = self.usage()
            used = u[0] if u else 0
        ok = used / total < self.low
        reason = (
            "below low water" if ok else "cannot get below low water: nothing left to move to another tier"
        )
        if not dry_run:
            self._alert(not ok, used, total, reason)
        return CapacityResult(before, used, total, moved, not ok, reason)

    def _alert(self, on: bool, used: int, total: int, reason: str) -> None:
        if on:
            log.error(
                "hot tier %s at %.1f%% (low water %.0f%%): %s",
                self.hot.name,
                100.0 * used / total,
                100 * self.low,
                reason,
            )
        if self.alert_file is None:
            return
        if not on:
            self.alert_file.unlink(missing_ok=True)
            return
        self.alert_file.parent.mkdir(parents=True, exist_ok=True)
        text = (
            "# HELP pbx_recorder_capacity_alert 1 when the hot tier cannot get below low water\n"
            "# TYPE pbx_recorder_capacity_alert gauge\n"
            f'pbx_recorder_capacity_alert{{tier="{self.hot.name}"}} 1\n'
            f'pbx_recorder_hot_used_ratio{{tier="{self.hot.name}"}} {used / total:.4f}\n'
            f"# {json.dumps({'reason': reason, 'used': used, 'total': total})}\n"
        )
        # read by node_exporter's textfile collector: a tier name and 0/1, no call data
        atomic.write_stream(self.alert_file, [text.encode()], mode=file_modes.PUBLIC_FILE_MODE)
