"""Faults: S3 unreachable, an outage under the shipper, a shipper killed mid-upload."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from s3_helpers import client_for, new_bucket, write_random
from s3_servers import ACCESS_KEY, SECRET_KEY, free_port, seaweedfs_server

from pbx_recorder.catalog import Catalog
from pbx_recorder.errors import TierUnavailable
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.shipper import Shipper
from pbx_recorder.recording.spool import Spool
from storage.s3 import S3Tier

pytestmark = pytest.mark.real
MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[3]


def test_unreachable_endpoint_is_tier_unavailable() -> None:
    tier = S3Tier("s3", bucket="rec-bucket", endpoint_url=f"http://127.0.0.1:{free_port()}",
                  region_name="us-east-1", access_key="a", secret_key="b", max_attempts=1, connect_timeout=1)
    with pytest.raises(TierUnavailable, match="unreachable"):
        tier.put("a.wav", io.BytesIO(b"x"))
    for op in (lambda: tier.open("a.wav"), lambda: tier.stat("a.wav"), lambda: tier.delete("a.wav"),
               lambda: tier.restore("a.wav"), lambda: list(tier.list()), lambda: tier.abort_stale_uploads(0)):
        with pytest.raises(TierUnavailable):
            op()


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def spool_entries(spool: Spool, tmp: Path, n: int, size: int = 300_000) -> dict[str, str]:
    """Spool ``n`` recordings; returns recording_id -> sha256 of its audio."""
    hashes = {}
    for i in range(n):
        call_id = f"pbx1_1800000{i:03d}.1"
        rid = f"{call_id}_call001"
        src = tmp / f"in-{i}" / f"{rid}.wav"
        src.parent.mkdir()
        data = write_random(src, size + i)
        manifest = Manifest(recording_id=rid, call_id=call_id, files=(ManifestFile(src.name, 0, ""),),
                            created_at=1_800_000_000.0 + i, recorded_from=1_800_000_000.0 + i)
        spool.spool_recording(rid, [src], manifest)
        hashes[rid] = hashlib.sha256(data).hexdigest()
    return hashes


def all_versions(client, bucket: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            counts[v["Key"]] = counts.get(v["Key"], 0) + 1
    return counts


def test_outage_spool_keeps_everything_then_ships_exactly_once(tmp_path: Path) -> None:
    workdir = tmp_path / "weed"
    workdir.mkdir()
    spool, catalog, clock = Spool(tmp_path / "spool"), Catalog(tmp_path / "catalog.db"), Clock()
    with seaweedfs_server(workdir) as server:
        client = client_for(server, max_attempts=1, connect_timeout=1)
        bucket = new_bucket(client, lock=True)
        ports = server.ports
    # the server is down now (SIGKILL); the shipper must keep everything and back off
    tier = S3Tier("s3", bucket=bucket, client=client, prefix="rec")
    shipper = Shipper(spool, catalog, lambda region: tier, clock=clock, backoff_base_s=2.0)
    hashes = spool_entries(spool, tmp_path, 3)
    first = shipper.ship_once()
    assert sorted(first.retrying) == sorted(hashes) and not first.shipped
    assert sorted(e.recording_id for e in spool.pending()) == sorted(hashes)
    second = shipper.ship_once()  # same instant: every entry is in backoff, nothing is tried
    assert sorted(second.waiting) == sorted(hashes) and not second.retrying
    clock.t += 2.5
    third = shipper.ship_once()  # tried again, still down: the delay doubles
    assert sorted(third.retrying) == sorted(hashes)
    clock.t += 2.5
    assert sorted(shipper.ship_once().waiting) == sorted(hashes)

    with seaweedfs_server(workdir, ports=ports):
        clock.t += 10
        done = shipper.ship_once()
        assert sorted(done.shipped) == sorted(hashes)
        assert spool.pending() == []
        assert shipper.ship_once().shipped == []
        versions = all_versions(client, bucket)
        assert len(versions) == 2 * len(hashes)  # audio + manifest object per recording
        assert set(versions.values()) == {1}  # each stored exactly once
        for rid, digest in hashes.items():
            row = catalog.get_recording(rid)
            assert row is not None and row["state"] == "verified" and row["sha256"] == digest
            assert tier.verify(row["storage_key"], digest)


def test_killed_mid_multipart_leaves_no_orphans_and_reship_succeeds(seaweedfs, tmp_path: Path) -> None:
    client = client_for(seaweedfs)
    bucket = new_bucket(client, lock=False)
    source = tmp_path / "big.wav"
    data = write_random(source, 26 * MB)
    env = dict(os.environ, VICTIM_AK=ACCESS_KEY, VICTIM_SK=SECRET_KEY, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("upload_victim.py")),
                             seaweedfs.endpoint_url, bucket, "rec", "big.wav", str(source)],
                            stdout=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        uploads: list[dict] = []
        while time.monotonic() < deadline:
            uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            if uploads and client.list_parts(Bucket=bucket, Key=uploads[0]["Key"],
                                             UploadId=uploads[0]["UploadId"]).get("Parts"):
                break
            assert proc.poll() is None, "the upload finished before it could be killed"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(uploads) == 1 and uploads[0]["Key"] == "rec/big.wav"
    tier = S3Tier("s3", bucket=bucket, client=client, prefix="rec", multipart_threshold_mb=5)
    assert tier.stat("big.wav") is None  # nothing half-visible
    assert tier.abort_stale_uploads(older_than_s=0, now=datetime.now(UTC).timestamp() + 5) == 1
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    stored = tier.put("big.wav", source, sha256=hashlib.sha256(data).hexdigest())
    assert stored.size == len(data) and tier.verify("big.wav", stored.sha256)
