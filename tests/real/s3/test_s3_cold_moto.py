"""Archive classes against the moto server (AWS-like cold reads and restore_object)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from pbx_recorder.errors import ObjectNotRestored
from storage.base import PutOptions

pytestmark = pytest.mark.real


@pytest.mark.parametrize("cls", ["GLACIER", "DEEP_ARCHIVE"])
def test_cold_object_needs_restore(moto_tier, cls: str) -> None:
    tier = moto_tier(lock=False, restore_days=2)
    data = os.urandom(40_000)
    digest = hashlib.sha256(data).hexdigest()
    rid = "pbx1_17000.1_call001"
    stored = tier.put("2026/cold.wav", io.BytesIO(data), sha256=digest,
                      options=PutOptions(metadata={"recording_id": rid, "call_id": "pbx1_17000.1"},
                                         storage_class=cls))
    assert stored.storage_class == cls
    info = tier.stat("2026/cold.wav")
    assert info is not None and info.storage_class == cls and info.restore_state == ""
    with pytest.raises(ObjectNotRestored) as caught:
        tier.open("2026/cold.wav")
    message = str(caught.value)
    assert f"recording {rid} is in {cls}" in message
    assert f"pbx-recorder recordings restore {rid}" in message
    assert "botocore" not in message and "Traceback" not in message
    with pytest.raises(ObjectNotRestored):
        tier.verify("2026/cold.wav", digest)

    state = tier.restore("2026/cold.wav")
    assert state in ("in_progress", "done")
    assert tier.restore("2026/cold.wav") in ("in_progress", "done")  # asking again is harmless
    info = tier.stat("2026/cold.wav")
    assert info is not None and info.restore_state == "done"  # this server finishes at once
    assert tier.verify("2026/cold.wav", digest)


def test_restore_of_a_standard_object_is_a_no_op(moto_tier) -> None:
    tier = moto_tier(lock=False)
    tier.put("hot.wav", io.BytesIO(b"hot"))
    assert tier.restore("hot.wav") == ""


def test_change_storage_class_keeps_metadata(moto_tier) -> None:
    tier = moto_tier(lock=False)
    data = os.urandom(10_000)
    tier.put("m.wav", io.BytesIO(data), sha256=hashlib.sha256(data).hexdigest(),
             options=PutOptions(metadata={"recording_id": "r1"}, tags={"t": "1"}))
    tier.change_storage_class("m.wav", "GLACIER")
    info = tier.stat("m.wav")
    assert info is not None and info.storage_class == "GLACIER"
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    head = tier.client.head_object(Bucket=tier.bucket, Key="rec/m.wav")
    assert head["Metadata"]["recording-id"] == "r1"
    with pytest.raises(ObjectNotRestored):
        tier.open("m.wav")


def test_change_storage_class_on_seaweedfs_label_only(weed_tier) -> None:
    tier = weed_tier(lock=False)
    data = os.urandom(10_000)
    tier.put("m.wav", io.BytesIO(data), options=PutOptions(metadata={"recording_id": "r2"}))
    tier.change_storage_class("m.wav", "STANDARD_IA")
    info = tier.stat("m.wav")
    assert info is not None and info.storage_class == "STANDARD_IA"
    assert tier.verify("m.wav", hashlib.sha256(data).hexdigest())


def test_restore_where_the_class_is_only_a_label(weed_tier) -> None:
    tier = weed_tier(lock=False)
    tier.put("label.wav", io.BytesIO(b"readable"), options=PutOptions(storage_class="GLACIER"))
    assert tier.restore("label.wav") == "done"  # no restore on this endpoint, but a GET works
    assert tier.open("label.wav").read() == b"readable"
