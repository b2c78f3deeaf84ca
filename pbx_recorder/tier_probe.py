"""Probe the configured storage tiers that can be probed (S3): used by ``check-config --probe``
and at daemon start (``storage/s3_probe.py`` says what is checked)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pbx_recorder.errors import StorageRefused

log = logging.getLogger(__name__)


def probe_tiers(storage_config: Any, tiers: Mapping[str, Any] | None = None) -> list[Any]:
    """A ``ProbeReport`` per tier that has ``probe()`` (S3 tiers), in config order."""
    if tiers is None:
        from storage.factory import build_tiers

        tiers = build_tiers(storage_config)
    probes = [getattr(t, "probe", None) for t in tiers.values()]
    return [probe() for probe in probes if callable(probe)]


def check_at_start(tiers: Mapping[str, Any], hot: set[str]) -> None:
    """Refuse to start when a hot tier (where new recordings go) cannot store them as configured;
    an unreachable endpoint is only logged (the spool holds recordings until it is back), and so
    is a problem on another tier (the lifecycle jobs report theirs)."""
    refused = []
    for name, tier in tiers.items():
        if not callable(getattr(tier, "probe", None)):
            continue
        report = tier.probe()
        if report.ok:
            log.info("storage probe of tier %s: OK", name)
        elif report.unreachable:
            log.warning("storage probe of tier %s: unreachable at start; recordings wait in the spool", name)
        elif name in hot:
            refused.append(f"{name}: {'; '.join(report.errors)}")
    if refused:
        raise StorageRefused("the storage server refuses what the config asks: " + " | ".join(refused)
                             + " (fix storage.tiers or the bucket; `check-config --probe` re-checks)")
