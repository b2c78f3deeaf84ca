"""RedisClaimer and leases against a real redis-server; two shipper nodes on one spool."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
import redis
from s3_helpers import client_for, new_bucket, write_random

from pbx_recorder.catalog import Catalog
from pbx_recorder.errors import TierUnavailable
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.shipper import Shipper
from pbx_recorder.recording.spool import Spool
from storage.claims import Lease, RedisClaimer
from storage.s3 import S3Tier

pytestmark = pytest.mark.real


def two_nodes(url: str, ns: str) -> tuple[RedisClaimer, RedisClaimer]:
    return RedisClaimer(url, "node-a", namespace=ns), RedisClaimer(url, "node-b", namespace=ns)


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> str:
    return f"t-{request.node.name}-{time.monotonic_ns()}"


def test_claim_once_across_nodes(redis_srv, ns: str) -> None:
    a, b = two_nodes(redis_srv.url, ns)
    assert a.claim("r1", 30)
    assert not b.claim("r1", 30)
    b.release("r1")  # b never held it: must not free a's claim
    assert not b.claim("r1", 30)
    a.release("r1")
    assert b.claim("r1", 30)
    assert b.renew("r1", 30) and not a.renew("r1", 30)


def test_claim_expires_when_a_node_dies(redis_srv, ns: str) -> None:
    a, b = two_nodes(redis_srv.url, ns)
    assert a.claim("r2", 0.2)
    assert not b.claim("r2", 5)
    time.sleep(0.35)
    assert b.claim("r2", 5)
    a.release("r2")  # a's stale release must not drop b's live claim
    assert not a.claim("r2", 5)


def test_done_marker_is_durable_across_nodes(redis_srv, ns: str) -> None:
    a, b = two_nodes(redis_srv.url, ns)
    assert a.claim("r3", 30)
    a.done("r3")
    assert b.is_done("r3") and not b.claim("r3", 30) and not a.claim("r3", 30)
    b.forget("r3")
    assert b.claim("r3", 30)


def test_lease_one_node_at_a_time(redis_srv, ns: str) -> None:
    a, b = two_nodes(redis_srv.url, ns)
    la, lb = Lease(a, "retention-apply", 0.3), Lease(b, "retention-apply", 0.3)
    assert la.acquire() and not lb.acquire()
    assert la.holder() == "node-a"
    assert not lb.release()  # not b's to release
    time.sleep(0.15)
    assert la.renew()  # renewal keeps it past the first TTL
    time.sleep(0.2)
    assert not lb.acquire()
    time.sleep(0.35)  # not renewed: expires
    assert not la.renew()
    with lb:
        assert lb.acquire() and lb.holder() == "node-b"
    assert not lb.held and la.acquire()


def test_redis_down_is_tier_unavailable() -> None:
    from s3_servers import free_port

    c = RedisClaimer(f"redis://127.0.0.1:{free_port()}/0", "n")
    with pytest.raises(TierUnavailable, match="redis"):
        c.claim("r")
    assert isinstance(c.redis, redis.Redis)


def test_two_shipper_nodes_store_each_recording_once(redis_srv, seaweedfs, tmp_path: Path, ns: str) -> None:
    client = client_for(seaweedfs)
    bucket = new_bucket(client, lock=False)
    spool, db = Spool(tmp_path / "spool"), tmp_path / "catalog.db"
    hashes = {}
    for i in range(12):
        call_id = f"pbx1_1800001{i:03d}.7"
        rid = f"{call_id}_call001"
        src = tmp_path / "in" / f"{rid}.wav"
        src.parent.mkdir(exist_ok=True)
        hashes[rid] = hashlib.sha256(write_random(src, 150_000)).hexdigest()
        manifest = Manifest(recording_id=rid, call_id=call_id, created_at=1.8e9 + i, recorded_from=1.8e9 + i,
                            files=(ManifestFile(src.name, 0, ""),))
        spool.spool_recording(rid, [src], manifest)
    puts: list[str] = []

    class CountingTier(S3Tier):
        def put(self, key, source, **kw):  # type: ignore[no-untyped-def]
            puts.append(key)
            return super().put(key, source, **kw)

    tier = CountingTier("s3", bucket=bucket, client=client, prefix="rec")
    shippers = [Shipper(Spool(tmp_path / "spool"), Catalog(db), lambda region: tier, claimer=claimer)
                for claimer in two_nodes(redis_srv.url, ns)]
    summaries = []
    barrier = threading.Barrier(2)

    def run(shipper: Shipper) -> None:
        barrier.wait()
        summaries.append(shipper.ship_once())

    threads = [threading.Thread(target=run, args=(s,)) for s in shippers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    shipped = [rid for s in summaries for rid in s.shipped]
    assert sorted(shipped) == sorted(hashes)  # each shipped by exactly one node
    assert len(puts) == len(set(puts)) == 2 * len(hashes)  # audio + manifest, never twice
    assert spool.pending() == []
    catalog = Catalog(db)
    for rid, digest in hashes.items():
        row = catalog.get_recording(rid)
        assert row is not None and row["state"] == "verified" and row["sha256"] == digest
    versions = client.list_object_versions(Bucket=bucket).get("Versions", [])
    assert len(versions) == 2 * len(hashes)
