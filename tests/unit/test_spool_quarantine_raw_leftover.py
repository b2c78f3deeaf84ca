"""A stereo ``.raw`` original left beside its spooled WAV after a crash: quarantined once, never lost.

The WAV in the spool was made from the ``.raw`` (a header added), so the two cannot be compared
byte for byte: the leftover may be neither deleted nor shipped.  It used to stay in the PBX's
drop folder (readable by the PBX account) with an ALERT at every orphan scan; now it is moved into
the spool's owner-only quarantine with a note, and alerted once.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.core.naming import make_call_id, make_recording_id, recording_paths
from pbx_recorder.fault_recovery import FaultRecovery
from pbx_recorder.metrics import Metrics
from pbx_recorder.metrics_sampler import MetricsSampler
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.pipeline import Pipeline
from pbx_recorder.recording.shipper import InProcessClaimer
from pbx_recorder.recording.spool import NOTE_SUFFIX, QUARANTINE_DIR, Spool

CALL = make_call_id("n1", "1700000000.7", "20261201150000")
RID = make_recording_id(CALL, "call", 1)


def _stereo_leftover(tmp_path: Path) -> tuple[Path, Spool, Path, bytes]:
    """A spooled stereo entry (its WAV) and the crash's ``.raw`` original still in the drop folder."""
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    (raw,) = (Path(p) for p in recording_paths(str(monitor), CALL, RID, 1764601680, "stereo"))
    data = os.urandom(8000) + b"\x00\x01"
    wav = tmp_path / raw.with_suffix(".wav").name
    wav.write_bytes(b"RIFF" + data)
    spool = Spool(tmp_path / "spool")
    spool.spool_recording(RID, [wav], Manifest(recording_id=RID, call_id=CALL, mode="stereo",
                                               files=(ManifestFile(name=wav.name, size=0, sha256=""),)))
    raw.write_bytes(data)
    old = time.time() - 300
    os.utime(raw, (old, old))
    return monitor, spool, raw, data


def _recovery(monitor: Path, catalog: Catalog, spool: Spool) -> FaultRecovery:
    pipeline = Pipeline(spool, catalog=catalog, stable_ms=10, poll_ms=5, closure_timeout_s=1,
                        discard_timeout_s=1)
    callbook = SimpleNamespace(monitor_dir=str(monitor), node_prefix="n1_", recording_ids=lambda: set())
    app = SimpleNamespace(catalog=catalog, pipeline=pipeline, callbook=callbook,
                          shipper=SimpleNamespace(claimer=InProcessClaimer()))
    return FaultRecovery(app, time.time)  # type: ignore[arg-type]


def _alerts(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ALERT" in r.getMessage() and name in r.getMessage()]


async def test_two_scans_alert_once_and_the_raw_is_kept_byte_identical_in_quarantine(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old_umask = os.umask(0o022)
    try:
        monitor, spool, raw, data = _stereo_leftover(tmp_path)
        catalog = Catalog(tmp_path / "c.db")
        try:
            recovery = _recovery(monitor, catalog, spool)
            with caplog.at_level(logging.ERROR):
                assert await recovery.recover_orphans() == 1
                assert await recovery.recover_orphans() == 0
            assert len(_alerts(caplog, raw.name)) == 1
            assert "quarantine" in _alerts(caplog, raw.name)[0]
        finally:
            catalog.close()
    finally:
        os.umask(old_umask)
    assert not raw.exists() and list(monitor.iterdir()) == []  # out of the PBX account's reach
    (kept,) = spool.quarantined()
    assert kept.read_bytes() == data and kept.name == raw.name
    assert kept.parent.parent == spool.root / QUARANTINE_DIR and kept.parent.name == RID
    for path in (kept, kept.parent, kept.parent.parent):  # owner-only, whatever the umask
        assert not stat.S_IMODE(path.stat().st_mode) & 0o077
    note = json.loads(kept.with_name(kept.name + NOTE_SUFFIX).read_bytes())
    assert note["recording_id"] == RID and note["call_id"] == CALL and note["file"] == raw.name
    assert note["size"] == len(data) and "not byte-comparable" in note["reason"]
    assert not stat.S_IMODE(kept.with_name(kept.name + NOTE_SUFFIX).stat().st_mode) & 0o077
    (entry,) = spool.pending()  # the spooled recording itself is untouched and still ships
    assert [f.name for f in entry.manifest.files] == [raw.with_suffix(".wav").name]
    assert spool.recover() == ([], [])  # the quarantine folder is not taken for a broken entry


async def test_a_second_leftover_of_the_same_name_never_replaces_the_first(tmp_path: Path) -> None:
    monitor, spool, raw, data = _stereo_leftover(tmp_path)
    first = spool.quarantine(RID, CALL, raw, "test", 1.0)
    raw.write_bytes(b"second")
    second = spool.quarantine(RID, CALL, raw, "test", 2.0)
    assert first != second and first.read_bytes() == data and second.read_bytes() == b"second"
    assert len(spool.quarantined()) == 2


async def test_a_symlink_planted_as_the_raw_is_refused_and_its_target_untouched(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    monitor, spool, raw, _ = _stereo_leftover(tmp_path)
    secret = tmp_path / "catalog-key"
    secret.write_bytes(b"master key bytes")
    raw.unlink()
    raw.symlink_to(secret)
    catalog = Catalog(tmp_path / "c.db")
    try:
        recovery = _recovery(monitor, catalog, spool)
        assert await recovery.recover_orphans() == 0  # the scan skips what is not a regular file
        orphan = SimpleNamespace(recording_id=RID, call_id=CALL, paths=[raw])
        with caplog.at_level(logging.ERROR):  # and a link swapped in after the scan is refused
            assert recovery._settle_leftovers(orphan, None) == 0  # type: ignore[arg-type]
        assert any("symbolic link" in m and "operator" in m for m in _alerts(caplog, raw.name))
    finally:
        catalog.close()
    assert raw.is_symlink() and secret.read_bytes() == b"master key bytes"
    assert spool.quarantined() == []


async def test_the_quarantine_shows_in_the_metrics(tmp_path: Path) -> None:
    monitor, spool, raw, _ = _stereo_leftover(tmp_path)
    metrics = Metrics()
    sampler = MetricsSampler(metrics, ami=None, callbook=None, spool=spool, hot_tiers={}, clock=time.time)
    sampler.sample_storage()
    assert metrics.value("pbxrec_spool_quarantined") == 0
    spool.quarantine(RID, CALL, raw, "test", 1.0)
    sampler.sample_storage()
    assert metrics.value("pbxrec_spool_quarantined") == 1
    assert metrics.value("pbxrec_spool_pending") == 1  # the quarantine is not a spooled recording
