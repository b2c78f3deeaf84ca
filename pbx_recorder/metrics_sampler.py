"""Gauges and counters read from the running parts (the daemon's metrics task calls these).

The AMI client and normalizer keep running totals (connects, injection counts); this turns
them into counter increments.  The framing guard is replaced on every AMI connection, so the
old guard's last increments are read before following the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from pbx_recorder.errors import RecorderError
from pbx_recorder.metrics import NullMetrics

log = logging.getLogger(__name__)


class MetricsSampler:
    def __init__(self, metrics: NullMetrics, *, ami: Any, callbook: Any, spool: Any,
                 hot_tiers: Mapping[str, Any], clock: Callable[[], float]) -> None:
        self.metrics, self.ami, self.callbook, self.spool = metrics, ami, callbook, spool
        self.hot_tiers, self.clock = dict(hot_tiers), clock
        self._connects = 0
        self._injections = 0  # header injections + forged Hangups seen so far
        self._guard: Any = None
        self._guard_seen = 0

    def sample_loop_state(self) -> None:
        """Cheap reads of loop-owned state; call on the event loop."""
        ami, m = self.ami, self.metrics
        m.ami_connected(ami.connected)
        m.live_calls(len(self.callbook.live_call_ids()))
        m.ami_reconnects(max(0, ami.connects - 1) - max(0, self._connects - 1))
        self._connects = ami.connects
        # (envelopes_repaired: a caller ID that repeated Event/Response/ActionID ..., ami.envelope)
        total = ami.normalizer.injections + ami.hangups_refuted + ami.envelopes_repaired
        m.injection_attempts(total - self._injections + self._framing_cuts())
        self._injections = total

    def _framing_cuts(self) -> int:
        new = 0
        if self._guard is not None and self._guard is not self.ami.framing:
            new += _attempts(self._guard) - self._guard_seen  # what the old connection saw last
            self._guard, self._guard_seen = None, 0
        if self._guard is None:
            self._guard = self.ami.framing
        new += _attempts(self._guard) - self._guard_seen
        self._guard_seen = _attempts(self._guard)
        return new

    def sample_storage(self) -> None:
        """Spool backlog and hot tier fill; blocking (run in a thread)."""
        try:
            entries = self.spool.pending()
        except OSError as exc:
            log.warning("metrics: cannot read the spool: %s", exc)
        else:
            ages = [self.clock() - float(e.manifest.created_at) for e in entries if e.manifest.created_at]
            self.metrics.spool(len(entries), max(ages, default=0.0))
        quarantined = getattr(self.spool, "quarantined", None)  # leftovers kept for an operator
        if quarantined is not None:
            try:
                self.metrics.spool_quarantined(len(quarantined()))
            except OSError as exc:
                log.warning("metrics: cannot read the spool's quarantine: %s", exc)
        for name, tier in self.hot_tiers.items():
            try:
                usage = tier.usage()
            except (RecorderError, OSError) as exc:
                log.warning("metrics: usage of tier %s unknown: %s", name, exc)
                continue
            if usage is not None and usage[1] > 0:
                self.metrics.hot_tier_used(name, usage[0] / usage[1])


def _attempts(guard: Any) -> int:
    """A framing guard's injection attempts: cut-short events and forged blocks (ami.framing_guard)."""
    return int(getattr(guard, "attempts", guard.cuts))
