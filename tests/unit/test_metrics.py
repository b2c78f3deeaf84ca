"""The Metrics object counts on its own registry; NullMetrics takes every report and does nothing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pbx_recorder.errors import IntegrityError, TierUnavailable
from pbx_recorder.metrics import Metrics, NullMetrics, call_outcome, ship_failure_reason
from pbx_recorder.metrics_sampler import MetricsSampler


def test_counters_and_gauges_have_their_own_registry() -> None:
    a, b = Metrics(), Metrics()  # a second one would clash on the global registry
    a.call_finished("recorded")
    a.call_finished("recorded")
    a.call_finished("bogus")  # an unknown outcome is not a new label
    a.consent("granted")
    a.consent("<script>")
    a.shipped()
    a.ship_failed("tier_unavailable")
    a.ami_reconnects(2)
    a.ami_reconnects(0)
    a.injection_attempts(3)
    a.action_failed("StartRecording")
    a.mixmonitor_started(0.2)
    a.live_calls(7)
    a.ami_connected(True)
    a.spool(4, 61.5)
    a.hot_tier_used("hot", 0.42)
    assert a.value("pbxrec_calls_total", outcome="recorded") == 2
    assert a.value("pbxrec_calls_total", outcome="failed") == 1
    assert a.value("pbxrec_calls_total", outcome="refused") == 0  # exported at 0 from the start
    assert a.value("pbxrec_consent_total", decision="granted") == 1
    assert a.value("pbxrec_consent_total", decision="other") == 1
    assert a.value("pbxrec_recordings_shipped_total") == 1
    assert a.value("pbxrec_ship_failures_total", reason="tier_unavailable") == 1
    assert a.value("pbxrec_ami_reconnects_total") == 2
    assert a.value("pbxrec_ami_injection_attempts_total") == 3
    assert a.value("pbxrec_actions_failed_total", action="MixMonitor") == 1
    assert a.value("pbxrec_mixmonitor_start_lag_seconds_count") == 1
    assert a.value("pbxrec_mixmonitor_start_lag_seconds_bucket", le="0.25") == 1
    assert a.value("pbxrec_live_calls") == 7
    assert a.value("pbxrec_ami_connected") == 1
    assert a.value("pbxrec_spool_pending") == 4
    assert a.value("pbxrec_spool_oldest_age_seconds") == 61.5
    assert a.value("pbxrec_hot_tier_used_ratio", tier="hot") == pytest.approx(0.42)
    assert b.value("pbxrec_calls_total", outcome="recorded") == 0
    assert b.value("pbxrec_recordings_shipped_total") == 0


def test_null_metrics_take_every_report_and_serve_nothing() -> None:
    null = NullMetrics()
    assert not null.enabled
    reports = [n for n in vars(Metrics) if not n.startswith("_") and callable(getattr(null, n, None))]
    assert {"call_finished", "shipped", "spool", "start", "stop"} <= set(reports)
    null.start()
    null.call_finished("recorded")
    null.shipped()
    null.ship_failed("io")
    null.spool(1, 2.0)
    null.hot_tier_used("hot", 0.5)
    null.mixmonitor_started(0.1)
    null.stop()
    assert not hasattr(null, "registry")


def test_call_outcome() -> None:
    recorded = {"result": "record", "recordings": [{"kind": "consent", "state": "finalized"},
                                                   {"kind": "call", "state": "finalized"}]}
    assert call_outcome(recorded, start_failed=False) == "recorded"
    assert call_outcome({"result": "refused", "recordings": []}, start_failed=False) == "refused"
    unanswered = {"result": "record", "recordings": [{"kind": "call", "state": "discarded"}]}
    assert call_outcome(unanswered, start_failed=False) == "not_recorded"
    assert call_outcome({"result": "", "recordings": []}, start_failed=True) == "failed"


def test_ship_failure_reasons_are_bounded() -> None:
    assert ship_failure_reason(TierUnavailable("down")) == "tier_unavailable"
    assert ship_failure_reason(IntegrityError("hash")) == "integrity"
    assert ship_failure_reason(FileNotFoundError("x")) == "io"
    assert ship_failure_reason(ValueError("x")) == "other"


def _ami(connects: int, guard: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(connected=True, connects=connects, hangups_refuted=0, framing=guard,
                           normalizer=SimpleNamespace(injections=0), envelopes_repaired=0)


def test_sampler_turns_running_totals_into_increments_across_reconnects() -> None:
    metrics = Metrics()
    first = SimpleNamespace(cuts=0)
    ami = _ami(1, first)
    book = SimpleNamespace(live_call_ids=lambda: ["a", "b"])
    sampler = MetricsSampler(metrics, ami=ami, callbook=book, spool=None, hot_tiers={}, clock=lambda: 0.0)
    sampler.sample_loop_state()
    assert metrics.value("pbxrec_ami_reconnects_total") == 0
    assert metrics.value("pbxrec_live_calls") == 2
    first.cuts = 1  # a framing cut, then the connection drops before the next sample
    ami.normalizer.injections = 2
    ami.hangups_refuted = 1
    ami.envelopes_repaired = 2  # a caller ID that repeated envelope headers (ami.envelope)
    ami.framing = SimpleNamespace(cuts=1)  # the new connection's guard saw one too
    ami.connects = 2
    sampler.sample_loop_state()
    sampler.sample_loop_state()  # nothing new: no increments
    assert metrics.value("pbxrec_ami_reconnects_total") == 1
    assert metrics.value("pbxrec_ami_injection_attempts_total") == 7


def test_sampler_reads_spool_age_and_bounded_hot_tiers() -> None:
    metrics = Metrics()
    entries = [SimpleNamespace(manifest=SimpleNamespace(created_at=t)) for t in (900.0, 990.0)]
    spool = SimpleNamespace(pending=lambda: entries)
    tiers = {"hot": SimpleNamespace(usage=lambda: (30, 100)), "s3": SimpleNamespace(usage=lambda: None)}
    sampler = MetricsSampler(metrics, ami=None, callbook=None, spool=spool, hot_tiers=tiers,
                             clock=lambda: 1000.0)
    sampler.sample_storage()
    assert metrics.value("pbxrec_spool_pending") == 2
    assert metrics.value("pbxrec_spool_oldest_age_seconds") == 100
    assert metrics.value("pbxrec_hot_tier_used_ratio", tier="hot") == pytest.approx(0.3)
    assert metrics.value("pbxrec_hot_tier_used_ratio", tier="s3") is None
