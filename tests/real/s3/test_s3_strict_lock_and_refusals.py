"""Object Lock and permanent refusals on real servers (SeaweedFS: Object Lock complete; moto:
refuses lock headers on a bucket without Object Lock with a 400).

* ``recordings migrate`` meets a retention-locked source: contained per recording, reported,
  the run goes on (and so does the next one, whose resume step meets it again).
* A held recording moves to a cold bucket without Object Lock: no lock headers, the catalog
  keeps the hold.
* A permanent refusal (4xx) is not retried: the shipper parks it, the catalog says
  ``ship_failed`` with the server's message, the metric counts it; the start-up probe and
  ``check-config --probe`` find the cause before a recording is refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit"))  # lifecycle_support

from lifecycle_support import CLASSES, KEY, NOW, add_call, add_recording, make_env, rec  # noqa: E402
from s3_helpers import write_random  # noqa: E402

from pbx_recorder.catalog import Catalog  # noqa: E402
from pbx_recorder.cli import main  # noqa: E402
from pbx_recorder.errors import StorageRefused  # noqa: E402
from pbx_recorder.lifecycle.holds import HoldManager  # noqa: E402
from pbx_recorder.lifecycle.migration import Migrator, Target  # noqa: E402
from pbx_recorder.recording.manifest import Manifest, ManifestFile  # noqa: E402
from pbx_recorder.recording.shipper import Shipper  # noqa: E402
from pbx_recorder.recording.spool import Spool  # noqa: E402
from pbx_recorder.recording.verify import Verifier, catalog_connection  # noqa: E402
from pbx_recorder.tier_probe import check_at_start  # noqa: E402

pytestmark = pytest.mark.real


def test_migrate_contains_a_retention_locked_source(weed_tier, tmp_path) -> None:
    env = make_env(tmp_path, names=("cold",))
    env.tiers["hot"] = weed_tier(lock=True, object_lock_mode="GOVERNANCE", object_lock_days=1)
    for i in range(3):
        add_call(env, f"c{i}")
        add_recording(env, f"c{i}", f"r{i}", age_days=40)
    m = Migrator(env.conn, env.tiers, default=Target("hot", "cold"), classes=CLASSES, batch_size=2)
    prog = m.run(NOW)  # before: PolicyRefusal escaped the batch and aborted the run
    assert prog.done == 3 and prog.failed == 0, prog.errors
    assert len(prog.kept_sources) == 3 and "GOVERNANCE retention" in prog.kept_sources[0]
    assert "source kept for 3 (Object Lock)" in prog.line()
    for i in range(3):
        r = rec(env, f"r{i}")
        assert r["tier"] == "cold" and env.tiers["cold"].verify(r["storage_key"], r["sha256"])
        assert env.tiers["hot"].stat(r["storage_key"]) is not None  # kept until its retention ends
    again = m.run(NOW)  # the resume step meets the locked sources again: reported, not raised
    assert again.done == 0 and len(again.kept_sources) == 3
    assert env.conn.execute("SELECT COUNT(*) FROM lifecycle_moves WHERE step='switched'").fetchone()[0] == 3


def test_a_held_recording_moves_to_a_cold_bucket_without_object_lock(weed_tier, tmp_path) -> None:
    env = make_env(tmp_path, names=("hot",))
    cold = env.tiers["cold"] = weed_tier(lock=False)
    add_call(env, "c")
    key = add_recording(env, "c", "r", age_days=40)
    HoldManager(env.conn, env.tiers, hash_key=KEY).add("call", "c", "litigation", "alice", now=NOW)
    prog = Migrator(env.conn, env.tiers, default=Target("hot", "cold"), classes=CLASSES).run(NOW)
    assert prog.done == 1 and prog.failed == 0, prog.errors  # before: InvalidRequest for the hold header
    r = rec(env, "r")
    assert r["tier"] == "cold" and r["legal_hold"] == 1  # the catalog keeps the hold
    info = cold.stat(key)
    assert info is not None and info.legal_hold is False


def _spool_one(spool: Spool, tmp: Path) -> str:
    rid, call_id = "pbx1_1800000001.1_call001", "pbx1_1800000001.1"
    src = tmp / "in" / f"{rid}.wav"
    src.parent.mkdir()
    write_random(src, 50_000)
    spool.spool_recording(rid, [src], Manifest(recording_id=rid, call_id=call_id,
                                               files=(ManifestFile(src.name, 0, ""),),
                                               created_at=NOW, recorded_from=NOW))
    return rid


class _Counting:
    def __init__(self) -> None:
        self.failed: list[str] = []
        self.parked: list[int] = []

    def ship_failed(self, reason: str) -> None:
        self.failed.append(reason)

    def ship_refused(self, parked: int) -> None:
        self.parked.append(parked)

    def __getattr__(self, name: str):
        return lambda *a, **k: None


def test_a_permanent_refusal_is_parked_not_retried(moto_tier, tmp_path) -> None:
    tier = moto_tier(lock=False, object_lock_mode="GOVERNANCE", object_lock_days=1)  # bucket has no lock
    spool, catalog, clock = Spool(tmp_path / "spool"), Catalog(tmp_path / "catalog.db"), [NOW]
    rid = _spool_one(spool, tmp_path)
    catalog.upsert_call({"call_id": "pbx1_1800000001.1", "started_at": NOW})
    catalog.upsert_recording({"recording_id": rid, "call_id": "pbx1_1800000001.1", "state": "spooled",
                              "created_at": NOW})
    puts: list[str] = []
    real_put = tier.put
    tier.put = lambda *a, **k: (puts.append(a[0]), real_put(*a, **k))[1]  # type: ignore[method-assign]
    metrics = _Counting()
    shipper = Shipper(spool, catalog, lambda region: tier, clock=lambda: clock[0],
                      metrics=metrics)  # type: ignore[arg-type]
    first = shipper.ship_once()
    assert first.refused == [rid] and not first.retrying and len(puts) == 1
    for _ in range(3):  # hours later: still not retried (before: retried forever with back-off)
        clock[0] += 3600
        assert shipper.ship_once().refused == [rid]
    assert len(puts) == 1 and metrics.failed == ["refused"] and metrics.parked == [1]
    row = catalog.get_recording(rid)
    assert row is not None and row["state"] == "ship_failed"
    flag = [f for f in row["flags"] if f.startswith("ship_refused")][0]
    assert "InvalidRequest (HTTP 400): Bucket is missing ObjectLockConfiguration" in flag
    assert "ObjectLockMode=GOVERNANCE" in flag  # what was asked
    assert [e.recording_id for e in spool.pending()] == [rid]  # kept for when the cause is fixed
    conn = catalog_connection(tmp_path / "catalog.db")
    try:
        report = Verifier(conn, {"hot": tier}).run()  # before: verify said nothing about it
    finally:
        conn.close()
    assert len(report.refused) == 1 and report.refused[0].startswith(rid)
    assert "Bucket is missing ObjectLockConfiguration" in report.refused[0]


def test_sse_s3_without_a_kms_is_refused_for_good_and_found_by_the_probe(rgw_tier, tmp_path) -> None:
    """Ceph RGW without a KMS answers SSE-S3 with InvalidRequest and no message (before: retried
    forever as "InvalidRequest: no message")."""
    tier = rgw_tier(lock=False, sse=_sse("AES256"))
    spool, catalog = Spool(tmp_path / "spool"), Catalog(tmp_path / "catalog.db")
    rid = _spool_one(spool, tmp_path)
    shipper = Shipper(spool, catalog, lambda region: tier, clock=lambda: NOW)
    assert shipper.ship_once().refused == [rid]
    why = shipper.parked[rid]
    assert "InvalidRequest (HTTP 400): the server sent no message" in why
    assert "asked for ServerSideEncryption=AES256" in why
    report = tier.probe()
    assert not report.ok and "ServerSideEncryption=AES256" in report.errors[0]
    assert rgw_tier(lock=False).probe().ok  # without SSE the same server stores recordings


def test_the_probe_finds_what_the_bucket_cannot_do(moto_tier, weed_tier) -> None:
    no_lock = moto_tier(lock=False, object_lock_mode="COMPLIANCE", object_lock_days=1)
    report = no_lock.probe()
    assert not report.ok and "has no Object Lock" in report.errors[0]
    bad_class = moto_tier(lock=False, storage_class="COLD-TIER")
    report = bad_class.probe()
    assert not report.ok and "InvalidStorageClass" in report.errors[0]
    assert "StorageClass=COLD-TIER" in report.errors[0]
    with pytest.raises(StorageRefused, match="refuses what the config asks"):
        check_at_start({"hot": bad_class, "cold": no_lock}, {"hot"})
    check_at_start({"hot": moto_tier(lock=False), "cold": no_lock}, {"hot"})  # only the hot tier blocks
    gone = moto_tier(lock=False, bucket="rec-no-such-bucket")
    assert gone.probe().errors == ["bucket rec-no-such-bucket does not exist"]
    good = weed_tier(lock=True, object_lock_mode="COMPLIANCE", object_lock_days=1, sse=_sse("AES256"))
    report = good.probe()
    assert report.ok and report.warnings == [], report
    left = good.client.list_object_versions(Bucket=good.bucket)
    assert not left.get("Versions") and not left.get("DeleteMarkers")  # the probe cleaned up


def test_the_probe_leaves_nothing_under_a_bucket_default_retention(weed_tier) -> None:
    tier = weed_tier(lock=True)
    tier.client.put_object_lock_configuration(Bucket=tier.bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}}})
    report = tier.probe()
    assert report.ok and report.warnings == [], report
    left = tier.client.list_object_versions(Bucket=tier.bucket)
    assert not left.get("Versions") and not left.get("DeleteMarkers")


def test_check_config_probe_exit_4(moto_s3, tmp_path, capsys) -> None:
    client = moto_tier_client(moto_s3)
    client.create_bucket(Bucket="rec-probe-cli")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
storage:
  hot: hot
  tiers:
    hot:
      type: s3
      bucket: rec-probe-cli
      endpoint_url: {moto_s3.endpoint_url}
      region_name: {moto_s3.region}
      access_key_id: {moto_s3.access_key}
      secret_access_key: {moto_s3.secret_key}
      object_lock: {{mode: GOVERNANCE, days: 1}}
""", encoding="utf-8")
    assert main(["check-config", "--config", str(cfg)]) == 0
    assert main(["check-config", "--config", str(cfg), "--probe"]) == 4
    err = capsys.readouterr().err
    assert "PROBE ERROR: tier hot: object_lock.mode is GOVERNANCE but bucket rec-probe-cli has no" in err


def moto_tier_client(server):
    from s3_helpers import client_for

    return client_for(server)


def _sse(mode: str):
    from storage.s3_sse import SseConfig

    return SseConfig(mode=mode)
