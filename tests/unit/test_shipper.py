import asyncio
import hashlib

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.catalog.protected_rows import CLEAR_MANIFEST_FIELDS
from pbx_recorder.errors import TierUnavailable
from pbx_recorder.recording import manifest_copy, stored_manifest
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.shipper import InProcessClaimer, Shipper
from pbx_recorder.recording.spool import Spool
from storage.local import LocalTier

CALL = "n1_1700000000.1"
RID = CALL + "_call001"
AUDIO = b"RIFF" + b"\x01\x02" * 4000


class FlakyTier(LocalTier):
    """Unavailable for the first ``failures`` puts; counts verify calls."""

    def __init__(self, name, root, failures=0):
        super().__init__(name, root)
        self.failures = failures
        self.verified = []

    def put(self, key, source, **kw):
        if self.failures:
            self.failures -= 1
            raise TierUnavailable("disk unplugged")
        return super().put(key, source, **kw)

    def verify(self, key, sha256):
        self.verified.append(key)
        return super().verify(key, sha256)


class LyingTier(LocalTier):
    def verify(self, key, sha256):
        return False


@pytest.fixture
def env(tmp_path):
    spool = Spool(tmp_path / "spool")
    catalog = Catalog(tmp_path / "cat.db", clock=lambda: 2000.0)
    src = tmp_path / "mon" / "a.wav"
    src.parent.mkdir()
    src.write_bytes(AUDIO)
    m = Manifest(recording_id=RID, call_id=CALL, region="eu", recorded_from=1700000000.0,
                 created_at=1700000100.0, files=(ManifestFile("a.wav", 0, "", 2.0),), flags=("cdr_missing",))
    spool.spool_recording(RID, [src], m)
    yield spool, catalog, tmp_path
    catalog.close()


def test_ship_verifies_then_catalogs_then_removes(env):
    spool, catalog, tmp = env
    tier = FlakyTier("hot", tmp / "hot")
    order = []
    shipper = Shipper(spool, catalog, lambda region: tier,
                      after_store=[lambda cat, rid, man, rec: order.append(
                          (cat.get_recording(rid)["state"], spool.is_complete(rid), rec.primary.key))])
    summary = shipper.ship_once()
    assert summary.shipped == [RID]
    row = catalog.get_recording(RID)
    assert row["state"] == "verified" and row["tier"] == "hot"
    assert row["sha256"] == hashlib.sha256(AUDIO).hexdigest() == row["audio_sha256"]
    assert row["storage_key"].startswith("eu/2023/11/14/") and row["storage_key"].endswith(".wav")
    assert row["size"] == len(AUDIO) and row["duration_s"] == 2.0 and row["flags"] == ["cdr_missing"]
    # the signed manifest is the object beside the audio; the catalog keeps a copy and its hash
    signed = stored_manifest.read_signed(row, tier, None)
    assert signed["recording_id"] == RID and row["manifest_sha256"] == manifest_copy.signed_sha256(signed)
    assert row["manifest"] == manifest_copy.catalog_copy(signed, CLEAR_MANIFEST_FIELDS)[0]
    # hook ran after the row existed ('stored') and before the spool entry was removed
    assert order == [("stored", True, row["storage_key"])]
    assert tier.verified[0] == row["storage_key"]
    assert tier.verify(row["storage_key"], row["sha256"])
    assert tier.stat(row["storage_key"].replace(".wav", ".json")) is not None  # manifest beside it
    assert spool.pending() == []


def test_retry_with_backoff_on_tier_unavailable(env):
    spool, catalog, tmp = env
    now = [100.0]
    tier = FlakyTier("hot", tmp / "hot", failures=2)
    shipper = Shipper(spool, catalog, lambda r: tier, clock=lambda: now[0], backoff_base_s=2)
    assert shipper.ship_once().retrying == [RID]
    assert spool.is_complete(RID) and catalog.get_recording(RID) is None
    assert shipper.ship_once().waiting == [RID]  # in backoff (2 s)
    now[0] += 2
    assert shipper.ship_once().retrying == [RID]
    now[0] += 3
    assert shipper.ship_once().waiting == [RID]  # second backoff is 4 s
    now[0] += 1
    assert shipper.ship_once().shipped == [RID]
    assert catalog.get_recording(RID)["state"] == "verified" and spool.pending() == []


def test_failed_verify_keeps_spool_entry(env):
    spool, catalog, tmp = env
    shipper = Shipper(spool, catalog, lambda r: LyingTier("hot", tmp / "hot"))
    assert shipper.ship_once().retrying == [RID]
    assert spool.is_complete(RID)
    assert catalog.get_recording(RID) is None


def test_failing_hook_keeps_entry_and_reruns(env):
    spool, catalog, tmp = env
    tier = LocalTier("hot", tmp / "hot")
    calls = []

    def hook(cat, rid, manifest, record):
        calls.append(rid)
        if len(calls) == 1:
            raise OSError("ledger disk hiccup")
        return {"signature": "sig"}

    now = [0.0]
    shipper = Shipper(spool, catalog, lambda r: tier, after_store=[hook], clock=lambda: now[0])
    assert shipper.ship_once().retrying == [RID]
    # the row's writes and the hooks are one transaction: the failed hook takes the 'stored' row
    # back with it (no unsigned row is left for the lifecycle jobs); the spool entry stays
    assert catalog.get_recording(RID) is None and spool.is_complete(RID)
    now[0] += 10
    assert shipper.ship_once().shipped == [RID]
    row = catalog.get_recording(RID)
    assert row["state"] == "verified" and row["signature"] == "sig" and calls == [RID, RID]


def test_idempotent_reship_only_cleans_spool(env):
    spool, catalog, tmp = env
    entry = spool.pending()[0]
    catalog.upsert_recording({"recording_id": RID, "call_id": CALL, "state": "verified",
                              "audio_sha256": entry.manifest.audio_sha256, "tier": "hot", "storage_key": "k"})
    tier = FlakyTier("hot", tmp / "hot")
    summary = Shipper(spool, catalog, lambda r: tier).ship_once()
    assert summary.already == [RID] and spool.pending() == [] and list(tier.list()) == []
    assert catalog.get_recording(RID)["storage_key"] == "k"


def test_verified_with_other_hash_is_kept(env):
    spool, catalog, tmp = env
    catalog.upsert_recording({"recording_id": RID, "call_id": CALL, "state": "verified",
                              "audio_sha256": "0" * 64})
    summary = Shipper(spool, catalog, lambda r: LocalTier("hot", tmp / "hot")).ship_once()
    assert summary.retrying == [RID] and spool.is_complete(RID)


def test_claimed_elsewhere_is_skipped(env):
    spool, catalog, tmp = env
    claimer = InProcessClaimer()
    assert claimer.claim(RID)
    summary = Shipper(spool, catalog, lambda r: LocalTier("hot", tmp / "hot"), claimer=claimer).ship_once()
    assert summary.claimed_elsewhere == [RID] and spool.is_complete(RID)
    claimer.release(RID)
    assert claimer.claim(RID)


def test_prepare_stage_output_is_stored(env):
    spool, catalog, tmp = env

    def fake_encrypt(path, manifest):
        out = path.with_name(path.name + ".enc")
        out.write_bytes(b"ENC" + path.read_bytes()[::-1])
        from dataclasses import replace
        return out, replace(manifest, processing={**manifest.processing, "encrypted": True, "key_id": "k1"})

    tier = LocalTier("hot", tmp / "hot")
    assert Shipper(spool, catalog, lambda r: tier, prepare_stages=[fake_encrypt]).ship_once().shipped == [RID]
    row = catalog.get_recording(RID)
    assert row["encrypted"] == 1 and row["key_id"] == "k1" and row["storage_key"].endswith(".enc")
    assert row["sha256"] != row["audio_sha256"]
    assert row["sha256"] == hashlib.sha256(b"ENC" + AUDIO[::-1]).hexdigest()


async def test_run_loop_stops(env):
    spool, catalog, tmp = env
    stop = asyncio.Event()
    shipper = Shipper(spool, catalog, lambda r: LocalTier("hot", tmp / "hot"))
    task = asyncio.create_task(shipper.run(stop, interval_s=0.01))
    for _ in range(200):
        if not spool.pending():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert spool.pending() == []


def test_signing_hook_from_crypto_helper_fits(env):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pbx_recorder.recording.signing import SignAfterStore, verify_manifest

    spool, catalog, tmp = env
    key = Ed25519PrivateKey.generate()
    tier = LocalTier("hot", tmp / "hot")
    shipper = Shipper(spool, catalog, lambda r: tier, after_store=[SignAfterStore(key)])
    assert shipper.ship_once().shipped == [RID]
    row = catalog.get_recording(RID)
    assert row["state"] == "verified" and row["signature"]
    assert verify_manifest(stored_manifest.read_signed(row, tier, None), row["signature"], key.public_key())


class ArchiveTier(LocalTier):
    """Like an S3 tier writing GLACIER objects: unreadable until restored."""

    def put(self, key, source, *, sha256=None, options=None):
        from dataclasses import replace
        stored = super().put(key, source, sha256=sha256, options=options)
        return replace(stored, storage_class="GLACIER")

    def verify(self, key, sha256):
        from pbx_recorder.errors import ObjectNotRestored
        raise ObjectNotRestored(f"{key} is in GLACIER")


def test_archive_class_is_verified_by_put_checksum_not_readback(env):
    spool, catalog, tmp = env
    tier = ArchiveTier("cold", tmp / "cold")
    summary = Shipper(spool, catalog, lambda r: tier).ship_once()
    assert summary.shipped == [RID]
    assert not spool.is_complete(RID)
    row = catalog.get_recording(RID)
    assert row["storage_class"] == "GLACIER"
    assert row["sha256"] == hashlib.sha256(AUDIO).hexdigest()
