"""End to end on local files: PBX file + .closed marker -> Pipeline.finalize -> Shipper -> hot tier
+ catalog -> ``calls show`` (masked)."""

import wave

from click.testing import CliRunner

from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import cli
from pbx_recorder.core.commands import FinalizeRecording
from pbx_recorder.recording.closure import marker_path
from pbx_recorder.recording.pipeline import Pipeline
from pbx_recorder.recording.shipper import Shipper
from pbx_recorder.recording.spool import Spool
from storage.factory import build_tiers
from storage.hashing import hash_file

CALL = "pbx1_1763700000.7"
RID = CALL + "_call001"


async def test_finished_recording_reaches_hot_tier_and_catalog(tmp_path):
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    wav = monitor / f"{RID}_20251121T040000Z.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10\x00\xf0" * 4000 * 6)  # a 4 kHz square wave: not silent
    original_hash = hash_file(wav)
    marker_path(wav).write_text("")  # what MixMonitor's post-command writes

    db = tmp_path / "catalog.db"
    catalog = Catalog(db)
    catalog.upsert_call({"call_id": CALL, "caller_num": "13812345678", "status": "answered",
                         "started_at": 1763700000.0})
    tiers = build_tiers({"hot": {"type": "local", "path": str(tmp_path / "hot")}})
    spool = Spool(tmp_path / "spool")
    pipeline = Pipeline(spool, catalog=catalog, stable_ms=50, closure_timeout_s=5, poll_ms=10)
    shipper = Shipper(spool, catalog, lambda region: tiers["hot"])

    meta = {"mode": "mixed", "recorded_from": 1763700000.0, "recorded_to": 1763700006.0,
            "cdr": {"src": "13812345678", "dst": "100", "billsec": "6"}}
    entry = await pipeline.finalize(FinalizeRecording(call_id=CALL, recording_id=RID, paths=(str(wav),),
                                                      metadata=meta))
    assert entry is not None and entry.manifest.flags == ()
    assert list(monitor.iterdir()) == []  # file and marker left the PBX directory

    summary = shipper.ship_once()
    assert summary.shipped == [RID] and spool.pending() == []
    row = catalog.get_recording(RID)
    assert row["state"] == "verified" and row["audio_sha256"] == original_hash == row["sha256"]
    assert tiers["hot"].verify(row["storage_key"], original_hash)
    assert row["storage_key"].startswith("2025/11/21/")
    catalog.close()

    cfg = tmp_path / "pbx-recorder.yaml"
    cfg.write_text(f"timezone: UTC\ncatalog:\n  path: {db}\n")
    out = CliRunner().invoke(cli, ["--config", str(cfg), "calls", "show", CALL]).output
    assert "138****5678" in out and "13812345678" not in out
    assert "state=verified" in out and "duration=6.0s" in out and original_hash in out
