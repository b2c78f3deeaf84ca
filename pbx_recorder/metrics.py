"""What ops watch: Prometheus metrics behind a small object with plain methods.

The daemon and the shipper report through :class:`NullMetrics`'s methods; they never touch
prometheus_client.  With ``metrics.port`` set, app.py builds a :class:`Metrics` (its own
``CollectorRegistry``, so tests can build several) and the daemon serves it over HTTP;
otherwise a :class:`NullMetrics` makes every report a no-op.  The pure core knows nothing
of either (tests/unit/test_core_purity.py forbids prometheus_client there).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from pbx_recorder.errors import ConfigError

log = logging.getLogger(__name__)

CALL_OUTCOMES = ("recorded", "not_recorded", "refused", "failed")
CONSENT_DECISIONS = ("granted", "refused", "timeout", "invalid", "hangup", "notified", "not_required",
                     "granted_before_restart")
#: command -> the AMI action that carries it (label of pbxrec_actions_failed_total)
ACTION_OF_COMMAND = {"StartRecording": "MixMonitor", "StopRecording": "StopMixMonitor",
                     "MuteRecording": "MixMonitorMute", "SetChannelVar": "Setvar",
                     "UpsertCall": "catalog_upsert"}
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


def call_outcome(snapshot: Mapping[str, Any], start_failed: bool) -> str:
    """One of :data:`CALL_OUTCOMES` for a finalized call (``CallBook.snapshot``)."""
    if snapshot.get("result") == "refused":
        return "refused"
    if any(r.get("kind") == "call" and r.get("state") == "finalized" for r in snapshot.get("recordings", ())):
        return "recorded"
    return "failed" if start_failed else "not_recorded"


class NullMetrics:
    """Metrics off.  Also the interface: every method the daemon and shipper call, as no-ops."""

    enabled = False

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def call_finished(self, outcome: str) -> None: ...
    def consent(self, decision: str) -> None: ...
    def shipped(self) -> None: ...
    def ship_failed(self, reason: str) -> None: ...
    def ship_refused(self, parked: int) -> None: ...
    def ami_reconnects(self, count: int) -> None: ...
    def injection_attempts(self, count: int) -> None: ...
    def action_failed(self, command_name: str) -> None: ...
    def mixmonitor_started(self, lag_s: float) -> None: ...
    def live_calls(self, count: int) -> None: ...
    def ami_connected(self, up: bool) -> None: ...
    def spool(self, pending: int, oldest_age_s: float) -> None: ...
    def spool_quarantined(self, count: int) -> None: ...
    def hot_tier_used(self, tier: str, ratio: float) -> None: ...


class Metrics(NullMetrics):
    """The pbxrec_* metrics on a dedicated registry; :meth:`start` serves them on host:port."""

    enabled = True

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port
        self.registry = r = CollectorRegistry()
        self.calls = Counter("pbxrec_calls", "Finished calls by outcome", ["outcome"], registry=r)
        self.consents = Counter("pbxrec_consent", "Consent decisions of finished calls", ["decision"],
                                registry=r)
        self.shipped_total = Counter("pbxrec_recordings_shipped", "Recordings stored, verified and removed "
                                     "from the spool", registry=r)
        self.ship_failures = Counter("pbxrec_ship_failures", "Failed shipping attempts (kept in the spool, "
                                     "retried)", ["reason"], registry=r)
        self.refused = Gauge("pbxrec_ship_refused", "Recordings the storage server refused for good (a 4xx): "
                             "kept in the spool, not retried until the cause is fixed and the daemon "
                             "restarted", registry=r)
        self.reconnects = Counter("pbxrec_ami_reconnects", "AMI connections after the first", registry=r)
        self.injections = Counter("pbxrec_ami_injection_attempts", "AMI frames showing caller-data "
                                  "injection (header, framing, forged Hangup)", registry=r)
        self.actions_failed = Counter("pbxrec_actions_failed", "Commands that failed", ["action"], registry=r)
        self.live = Gauge("pbxrec_live_calls", "Calls the daemon is following", registry=r)
        self.spool_pending = Gauge("pbxrec_spool_pending", "Recordings waiting in the spool", registry=r)
        self.spool_oldest = Gauge("pbxrec_spool_oldest_age_seconds", "Age of the oldest spooled recording "
                                  "(0 when empty)", registry=r)
        self.quarantined = Gauge("pbxrec_spool_quarantined", "Leftover files kept in the spool's quarantine "
                                 "for an operator (never deleted by the recorder)", registry=r)
        self.connected = Gauge("pbxrec_ami_connected", "1 while logged in to AMI", registry=r)
        self.hot_used = Gauge("pbxrec_hot_tier_used_ratio", "Used fraction of a bounded hot tier", ["tier"],
                              registry=r)
        self.start_lag = Histogram("pbxrec_mixmonitor_start_lag_seconds", "From the event that starts a "
                                   "recording (consent, answer, bridge) to MixMonitor's success reply",
                                   buckets=LAG_BUCKETS, registry=r)
        for outcome in CALL_OUTCOMES:  # present at 0 so rate() and alerts see them from the start
            self.calls.labels(outcome=outcome)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.port is None or self._server is not None:
            return
        try:
            self._server, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror}",
                              key="metrics.port") from exc
        log.info("metrics on http://%s:%s/metrics", self.host, self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def call_finished(self, outcome: str) -> None:
        self.calls.labels(outcome=outcome if outcome in CALL_OUTCOMES else "failed").inc()

    def consent(self, decision: str) -> None:
        self.consents.labels(decision=decision if decision in CONSENT_DECISIONS else "other").inc()

    def shipped(self) -> None:
        self.shipped_total.inc()

    def ship_failed(self, reason: str) -> None:
        self.ship_failures.labels(reason=reason).inc()

    def ship_refused(self, parked: int) -> None:
        self.refused.set(parked)

    def ami_reconnects(self, count: int) -> None:
        if count > 0:
            self.reconnects.inc(count)

    def injection_attempts(self, count: int) -> None:
        if count > 0:
            self.injections.inc(count)

    def action_failed(self, command_name: str) -> None:
        self.actions_failed.labels(action=ACTION_OF_COMMAND.get(command_name, command_name)).inc()

    def mixmonitor_started(self, lag_s: float) -> None:
        self.start_lag.observe(max(0.0, lag_s))

    def live_calls(self, count: int) -> None:
        self.live.set(count)

    def ami_connected(self, up: bool) -> None:
        self.connected.set(1 if up else 0)

    def spool(self, pending: int, oldest_age_s: float) -> None:
        self.spool_pending.set(pending)
        self.spool_oldest.set(max(0.0, oldest_age_s))

    def spool_quarantined(self, count: int) -> None:
        self.quarantined.set(count)

    def hot_tier_used(self, tier: str, ratio: float) -> None:
        self.hot_used.labels(tier=tier).set(ratio)

    def value(self, name: str, **labels: str) -> float | None:
        """A sample's current value (tests, the CLI); None when absent."""
        return self.registry.get_sample_value(name, labels or None)


def ship_failure_reason(exc: BaseException) -> str:
    """A bounded label for a shipping failure."""
    from pbx_recorder.errors import (
        CatalogError,
        CryptoError,
        IntegrityError,
        StorageError,
        StorageRefused,
        TierUnavailable,
    )

    for kind, reason in ((TierUnavailable, "tier_unavailable"), (StorageRefused, "refused"),
                         (IntegrityError, "integrity"),
                         (StorageError, "storage"), (CatalogError, "catalog"), (CryptoError, "crypto"),
                         (OSError, "io")):
        if isinstance(exc, kind):
            return reason
    return "other"
