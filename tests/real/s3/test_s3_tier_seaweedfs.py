"""S3Tier against a real SeaweedFS: verified puts, metadata/tags, Object Lock, SSE, deletes."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from s3_helpers import overwrite, write_random

from pbx_recorder.errors import IntegrityError, NotFound, PolicyRefusal, StorageError
from storage.base import PutOptions, Tier
from storage.s3_sse import SseConfig

pytestmark = pytest.mark.real
MB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_all(tier: Tier, key: str) -> bytes:
    body = tier.open(key)
    try:
        return body.read()
    finally:
        body.close()


def test_is_a_tier(weed_tier) -> None:
    assert isinstance(weed_tier(), Tier)


@pytest.mark.parametrize("size", [200_000, 9 * MB + 123], ids=["small", "multipart"])
def test_put_verifies_and_keeps_metadata_and_tags(weed_tier, tmp_path: Path, size: int) -> None:
    tier = weed_tier()
    data = write_random(tmp_path / "a.wav", size)
    opts = PutOptions(metadata={"call_id": "pbx1_17000.1", "recording_id": "pbx1_17000.1_call001"},
                      tags={"retention": "7y", "region": "eu"})
    stored = tier.put("2026/11/21/a.wav", tmp_path / "a.wav", sha256=sha(data), options=opts)
    assert (stored.size, stored.sha256, stored.key) == (size, sha(data), "2026/11/21/a.wav")
    assert stored.version_id
    assert read_all(tier, "2026/11/21/a.wav") == data
    assert tier.verify("2026/11/21/a.wav", sha(data))
    info = tier.stat("2026/11/21/a.wav")
    assert info is not None and info.sha256 == sha(data) and info.size == size
    head = tier.client.head_object(Bucket=tier.bucket, Key="rec/2026/11/21/a.wav")
    assert head["Metadata"]["call-id"] == "pbx1_17000.1"
    assert head["Metadata"]["recording-id"] == "pbx1_17000.1_call001"
    tags = tier.client.get_object_tagging(Bucket=tier.bucket, Key="rec/2026/11/21/a.wav")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"retention": "7y", "region": "eu"}
    assert [o.key for o in tier.list("2026/")] == ["2026/11/21/a.wav"]


def test_put_from_stream_without_expected_hash(weed_tier) -> None:
    tier = weed_tier()
    data = os.urandom(50_000)
    stored = tier.put("s.bin", io.BytesIO(data))
    assert stored.sha256 == sha(data)
    assert tier.verify("s.bin", sha(data))


@pytest.mark.parametrize("size", [100_000, 9 * MB], ids=["single", "multipart"])
def test_object_lock_retention_and_legal_hold_read_back(weed_tier, size: int) -> None:
    tier = weed_tier(object_lock_mode="GOVERNANCE")
    until = datetime.now(UTC) + timedelta(days=2)
    data = os.urandom(size)
    tier.put("locked.wav", io.BytesIO(data), sha256=sha(data),
             options=PutOptions(retain_until=until, legal_hold=True, tags={"k": "v"}))
    full = "rec/locked.wav"
    ret = tier.client.get_object_retention(Bucket=tier.bucket, Key=full)["Retention"]
    assert ret["Mode"] == "GOVERNANCE"
    assert abs((ret["RetainUntilDate"] - until).total_seconds()) < 2
    assert tier.client.get_object_legal_hold(Bucket=tier.bucket, Key=full)["LegalHold"]["Status"] == "ON"
    info = tier.stat("locked.wav")
    assert info is not None and info.legal_hold and info.retain_until is not None


def test_delete_refused_under_hold_then_allowed(weed_tier) -> None:
    tier = weed_tier()
    data = os.urandom(10_000)
    tier.put("held.wav", io.BytesIO(data), options=PutOptions(legal_hold=True))
    assert tier.set_legal_hold("held.wav", True) is True
    with pytest.raises(PolicyRefusal, match="legal hold"):
        tier.delete("held.wav")
    assert tier.verify("held.wav", sha(data))  # nothing was removed
    tier.set_legal_hold("held.wav", False)
    assert tier.delete("held.wav") == 1
    assert tier.stat("held.wav") is None


def test_governance_retention_needs_explicit_bypass(weed_tier) -> None:
    tier = weed_tier(object_lock_mode="GOVERNANCE")
    tier.put("gov.wav", io.BytesIO(b"x" * 1000),
             options=PutOptions(retain_until=datetime.now(UTC) + timedelta(days=1)))
    with pytest.raises(PolicyRefusal, match="GOVERNANCE retention"):
        tier.delete("gov.wav")
    tier.allow_governance_bypass = True
    assert tier.delete("gov.wav") == 1


def test_delete_removes_every_version_only_of_that_key(weed_tier) -> None:
    tier = weed_tier(lock=False)
    for i in range(3):
        tier.put("v.wav", io.BytesIO(f"version {i}".encode()))
    tier.put("v.wav.keep", io.BytesIO(b"neighbour"))
    assert len(tier.versions("v.wav")) == 3
    assert tier.delete("v.wav") == 3
    assert tier.versions("v.wav") == []
    assert tier.stat("v.wav.keep") is not None
    with pytest.raises(NotFound):
        tier.open("v.wav")


def test_legal_hold_false_without_object_lock(weed_tier) -> None:
    tier = weed_tier(lock=False)
    tier.put("p.wav", io.BytesIO(b"plain"))
    assert tier.set_legal_hold("p.wav", True) is False


@pytest.mark.parametrize("sse", [SseConfig("AES256"), SseConfig("aws:kms", kms_key_id="pbx-recorder-test"),
                                 SseConfig("SSE-C", customer_key=bytes(range(32)))],
                         ids=["sse-s3", "sse-kms", "sse-c"])
@pytest.mark.parametrize("size", [30_000, 9 * MB], ids=["single", "multipart"])
def test_sse_round_trips(weed_tier, sse: SseConfig, size: int) -> None:
    tier = weed_tier(sse=sse)
    data = os.urandom(size)
    tier.put("enc.wav", io.BytesIO(data), sha256=sha(data))
    assert read_all(tier, "enc.wav") == data
    head = tier.client.head_object(Bucket=tier.bucket, Key="rec/enc.wav", **sse.read_args())
    if sse.mode == "SSE-C":
        assert head.get("SSECustomerAlgorithm") == "AES256"
        with pytest.raises(Exception):  # noqa: B017 - any refusal: no key, no data
            tier.client.get_object(Bucket=tier.bucket, Key="rec/enc.wav")
    else:
        assert head.get("ServerSideEncryption") == sse.mode


def test_integrity_failures_are_detected(weed_tier) -> None:
    tier = weed_tier(lock=False)
    data = os.urandom(20_000)
    with pytest.raises(IntegrityError, match="expected"):
        tier.put("bad.wav", io.BytesIO(data), sha256=sha(b"something else"))
    assert tier.stat("bad.wav") is None  # refused before anything was sent
    big = os.urandom(9 * MB)
    with pytest.raises(IntegrityError, match="expected"):
        tier.put("bad-big.wav", io.BytesIO(big), sha256=sha(b"something else"))
    assert tier.stat("bad-big.wav") is None  # uploaded, then removed again
    stored = tier.put("good.wav", io.BytesIO(data), sha256=sha(data))
    overwrite(tier.client, tier.bucket, "rec/good.wav", Body=data[:-1] + b"\x00")  # tamper
    assert not tier.verify("good.wav", stored.sha256)
    assert tier.verify("good.wav", sha(data[:-1] + b"\x00"))


@pytest.mark.parametrize("key", ["a b/ünï çødé.wav", "x/%2F+plus&amp?q=1#frag.wav", "deep/" * 20 + "k.wav"])
def test_hostile_but_valid_keys_round_trip(weed_tier, key: str) -> None:
    tier = weed_tier(lock=False)
    tier.put(key, io.BytesIO(b"data"))
    assert read_all(tier, key) == b"data"
    assert [o.key for o in tier.list()] == [key]
    assert tier.delete(key) == 1


@pytest.mark.parametrize("key", ["../escape.wav", "/abs.wav", "a/../b.wav", "a//b.wav", "nul\x00.wav",
                                 "back\\slash.wav", "", "x" * 1100])
def test_dangerous_keys_refused(weed_tier, key: str) -> None:
    tier = weed_tier(lock=False)
    with pytest.raises(StorageError, match="invalid storage key"):
        tier.put(key, io.BytesIO(b"data"))


def test_abort_stale_uploads_only_under_prefix(weed_tier) -> None:
    tier = weed_tier(lock=False)
    c = tier.client
    ours = c.create_multipart_upload(Bucket=tier.bucket, Key="rec/orphan.wav")["UploadId"]
    theirs = c.create_multipart_upload(Bucket=tier.bucket, Key="other/x.wav")["UploadId"]
    assert tier.abort_stale_uploads(older_than_s=3600) == 0  # too recent
    assert tier.abort_stale_uploads(older_than_s=0, now=datetime.now(UTC).timestamp() + 5) == 1
    left = [u["UploadId"] for u in c.list_multipart_uploads(Bucket=tier.bucket).get("Uploads", [])]
    assert ours not in left and theirs in left
