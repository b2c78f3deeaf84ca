"""Issue 10: the daemon's recovery after a fault: orphaned files settled, late flags merged."""

from __future__ import annotations

import os
import time
import wave
from pathlib import Path
from types import SimpleNamespace

from pbx_recorder.catalog import Catalog
from pbx_recorder.core.commands import FlagRecordings
from pbx_recorder.core.naming import make_call_id, make_recording_id, recording_paths
from pbx_recorder.fault_recovery import FaultRecovery
from pbx_recorder.recording.pipeline import Pipeline
from pbx_recorder.recording.spool import Spool

NODE_CALL = make_call_id("n1", "1700000000.1", "20261201150000")


def _file(monitor: Path, call_id: str, kind: str, seq: int) -> tuple[str, Path]:
    rid = make_recording_id(call_id, kind, seq)
    (path,) = recording_paths(str(monitor), call_id, rid, 1764601680, "mixed")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10\x00\xf0" * 8000)
    old = time.time() - 300
    os.utime(path, (old, old))
    return rid, Path(path)


def _recovery(tmp_path: Path, monitor: Path, catalog: Catalog) -> FaultRecovery:
    pipeline = Pipeline(Spool(tmp_path / "spool"), catalog=catalog, stable_ms=10, poll_ms=5,
                        closure_timeout_s=1, discard_timeout_s=1)
    callbook = SimpleNamespace(monitor_dir=str(monitor), node_prefix="n1_", recording_ids=lambda: set())
    app = SimpleNamespace(catalog=catalog, pipeline=pipeline, callbook=callbook)
    return FaultRecovery(app, time.time)  # type: ignore[arg-type]


async def test_orphans_are_shipped_deleted_or_held_by_what_the_call_row_allows(tmp_path: Path) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    catalog = Catalog(tmp_path / "c.db")
    catalog.upsert_call({"call_id": NODE_CALL, "started_at": 1.0, "record_decision": "record",
                         "consent_decision": "notified", "cdr": {"disposition": "ANSWERED"}})
    kept, kept_path = _file(monitor, NODE_CALL, "call", 1)
    gone, gone_path = _file(monitor, NODE_CALL, "consent", 2)  # consent segment, consent not "granted"
    unknown_call = make_call_id("n1", "1700000009.9", "20261201150000")
    held, held_path = _file(monitor, unknown_call, "call", 1)
    other_node, other_path = _file(monitor, make_call_id("n2", "1.1"), "call", 1)
    recovery = _recovery(tmp_path, monitor, catalog)
    assert await recovery.recover_orphans() == 3
    assert catalog.get_recording(kept)["state"] == "spooled" and not kept_path.exists()
    assert "orphan_recovered" in catalog.get_recording(kept)["flags"]
    assert not gone_path.exists() and catalog.get_recording(gone) is None
    assert catalog.get_recording(held)["state"] == "orphaned" and held_path.exists()
    assert other_path.exists() and catalog.get_recording(other_node) is None  # another node's
    assert await recovery.recover_orphans() == 0  # the held one alerts once
    catalog.close()


def test_late_flags_wait_until_the_recording_is_stored(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    rid = make_recording_id(NODE_CALL, "call", 1)
    recovery = _recovery(tmp_path, tmp_path, catalog)
    catalog.upsert_recording({"recording_id": rid, "call_id": NODE_CALL, "state": "spooled", "flags": ["a"]})
    recovery.add_flags(FlagRecordings(NODE_CALL, (rid,), ("cut", "pbx_restarted")))
    assert catalog.get_recording(rid)["flags"] == ["a"]  # the shipper would overwrite it now
    catalog.mark_state(rid, "verified", flags=["a"])
    recovery.apply_flag_patches()
    assert catalog.get_recording(rid)["flags"] == ["a", "cut", "pbx_restarted"]
    catalog.close()
