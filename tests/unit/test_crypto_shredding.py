"""Erasure reaches every copy by destroying keys: recordings' data keys live only in the catalog,
backups are encrypted under backup keys an erasure destroys, sidecars are sealed, and a restored
backup does not bring an erased subject back (tombstones of keyed hashes only)."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from pbx_recorder.catalog import Catalog
from pbx_recorder.cli.crypto_setup import current_key_id, ensure_keys, keyring_of
from pbx_recorder.config import load_config
from pbx_recorder.errors import CryptoError
from pbx_recorder.lifecycle import backup, backup_shred
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.lifecycle.runtime import Runtime
from pbx_recorder.recording import ledger
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.recording_objects import objects_of
from pbx_recorder.recording.shipper import Shipper
from pbx_recorder.recording.spool import Spool
from storage.envelope import EncryptStage, decrypt_stream, read_header
from storage.factory import build_tiers
from storage.local import LocalTier

NUMBER = "4915112345678"
CALL = "n1_1700000000.1"
RID = f"{CALL}_call001"
T0 = 1700000000.0


@pytest.fixture()
def site(tmp_path):
    cfg_data = {
        "node": "n1",
        "catalog": {"path": str(tmp_path / "var" / "catalog.db")},
        "spool": {"dir": str(tmp_path / "var" / "spool")},
        "storage": {"tiers": {"hot": {"type": "local", "path": str(tmp_path / "var" / "hot")},
                              "cold": {"type": "local", "path": str(tmp_path / "var" / "cold")}},
                    "hot": "hot", "cold": "cold", "archive": None},
        "encryption": {"enabled": True, "master_key_file": str(tmp_path / "keys" / "master" / "k1.key"),
                       "backup_key_dir": str(tmp_path / "keys" / "backup")},
        "signing": {"key_file": str(tmp_path / "keys" / "signing.ed25519")},
        "privacy": {"hash_key_file": str(tmp_path / "keys" / "subject-hmac.key")},
        "retention": {"default_class": "standard", "classes": {"standard": {"days": 180}}},
        "rules": [],
    }
    path = tmp_path / "pbx-recorder.yaml"
    path.write_text(yaml.safe_dump(cfg_data))
    cfg = load_config(path, env={})
    assert len(ensure_keys(cfg, T0)) == 4  # master, signing, HMAC, first backup key
    ring = keyring_of(cfg, required=True)
    catalog = Catalog(cfg.catalog.path, clock=lambda: T0 + 200)
    catalog.upsert_call({"call_id": CALL, "caller_num": NUMBER, "callee_num": "4930123456"})
    src = tmp_path / "monitor" / f"{RID}.wav"
    src.parent.mkdir()
    src.write_bytes(os.urandom(4000))
    spool = Spool(cfg.spool.dir)
    manifest = Manifest(recording_id=RID, call_id=CALL, recorded_from=T0, created_at=T0, cdr={"src": NUMBER},
                        callee_num="4930123456", files=(ManifestFile(src.name, 0, "", 2.0),))
    spool.spool_recording(RID, [src], manifest)
    tiers = build_tiers(cfg.storage)
    stage = EncryptStage(ring, current_key_id(cfg))
    shipper = Shipper(spool, catalog, lambda region: tiers["hot"], prepare_stages=[stage],
                      after_store=[ledger.StoredLedgerHook(lambda: T0 + 200)])
    assert shipper.ship_once().shipped == [RID]
    catalog.close()
    rt = Runtime(cfg, open_catalog(cfg.catalog.path), tiers, "dpo", "auditor")
    yield cfg, rt, ring, tmp_path
    rt.conn.close()


def test_sidecar_is_sealed_under_the_recordings_data_key(site):
    cfg, rt, ring, _ = site
    row = dict(rt.conn.execute("SELECT * FROM recordings WHERE recording_id=?", (RID,)).fetchone())
    sidecar = next(o for o in objects_of(row) if o.role == "manifest")
    assert sidecar.key.endswith(".jsonpbxr")
    blob = rt.tiers["hot"].path_for(sidecar.key).read_bytes()
    assert blob.startswith(b"PBXR") and NUMBER.encode() not in blob
    assert read_header(io.BytesIO(blob)).wrapped_key == b""  # no key copy in the object
    plain = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), plain, ring, wrapped_key=row["wrapped_key"], key_id=row["key_id"],
                   expected_aad=RID + ":manifest")
    assert NUMBER in plain.getvalue().decode()
    with pytest.raises(CryptoError):  # a sidecar never passes for the audio
        decrypt_stream(io.BytesIO(blob), io.BytesIO(), ring, wrapped_key=row["wrapped_key"],
                       key_id=row["key_id"], expected_aad=RID)


@pytest.mark.sqlite_only  # restores SQLite backup files
@pytest.mark.parametrize("shred_now", [False, True])
def test_erasure_shreds_copies_it_cannot_see_and_every_older_backup(site, shred_now):
    cfg, rt, ring, tmp = site
    row = dict(rt.conn.execute("SELECT * FROM recordings WHERE recording_id=?", (RID,)).fetchone())
    cloud = tmp / "cloud-target-bucket"  # a cloud tier's transition target: not a configured tier
    for obj in objects_of(row):
        dst = cloud / obj.key
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rt.tiers["hot"].path_for(obj.key), dst)
    old = backup.backup(cfg.catalog.path, rt.backup_tier(), T0 + 300, keys=rt.backup_keys())
    legacy = LocalTier("offsite", tmp / "offsite")  # an old plaintext backup copied off site
    legacy.put("catalog-backups/old.db", Path(cfg.catalog.path))
    probe = tmp / "probe.db"
    backup.restore(rt.backup_tier(), old.key, probe, keys=rt.backup_keys())
    assert sqlite3.connect(probe).execute("SELECT COUNT(*) FROM calls").fetchone() == (1,)

    eraser = rt.eraser()
    eraser.shred_now = shred_now  # erase --shred-backups-now; default: by the next catalog backup
    receipt = eraser.erase(caller=NUMBER, request_id="ER-1", actor="dpo", now=T0 + 400)

    if not shred_now:
        assert receipt["backups"]["shred"] == "pending"
        assert backup_shred.pending(rt.conn) == {"ER-1": T0 + 400}
        assert [r["request_id"] for r in eraser.status(T0 + 500) if r["backup_shred_since"]] == ["ER-1"]
        # until then the older backup opens, and a restore from it takes the subject out again
        _, removed = backup.restore(rt.backup_tier(), old.key, tmp / "early.db", keys=rt.backup_keys(),
                                    scrub=rt.restore_scrub())
        assert removed == 1 and NUMBER.encode() not in (tmp / "early.db").read_bytes()
        shredded = backup_shred.backup_then_shred(rt.conn, rt.shred_backups, T0 + 600,  # catalog backup
                                                   rt.config.node)
        assert shredded is not None and shredded[1] == ["ER-1"] and backup_shred.pending(rt.conn) == {}
        assert backup_shred.backup_then_shred(rt.conn, rt.shred_backups, T0 + 700,
                                              rt.config.node) is None  # nothing waits
        assert not [r for r in eraser.status(T0 + 800) if r["request_id"] == "ER-1"]
        stored = json.loads(rt.conn.execute("SELECT receipt FROM erasure_requests WHERE request_id='ER-1'")
                            .fetchone()[0])
        assert stored["backups"]["shred"] == "done" and stored["backups"]["asked_at"] == T0 + 400
        assert {k: v for k, v in stored.items() if k != "backups"} == \
            {k: v for k, v in receipt.items() if k != "backups"}
        receipt = stored
    assert receipt["status"] == "done" and receipt["recordings_erased"] == 1
    assert receipt["copies"]["shredded_recordings"] == [RID] and receipt["copies"]["not_shreddable"] == []
    assert {c.split(":", 1)[0] for c in receipt["copies"]["deleted"]} == {"hot"}
    assert len(receipt["copies"]["deleted"]) == len(objects_of(row))
    assert receipt["backups"]["destroyed_backup_keys"]
    assert receipt["backups"]["fresh_backup"].startswith("cold:")
    assert NUMBER not in str(receipt)
    # the copies erasure could not see open with nothing that is left
    for path in cloud.rglob("*"):
        if path.is_file():
            assert NUMBER.encode() not in path.read_bytes()
            with pytest.raises(CryptoError):
                decrypt_stream(path, io.BytesIO(), ring)
    # the backup taken before the erasure is shredded; every readable backup lacks the number
    with pytest.raises(CryptoError):
        backup.restore(rt.backup_tier(), old.key, tmp / "old.db", keys=rt.backup_keys())
    readable = 0
    for key in backup.list_backups(rt.backup_tier()):
        out = tmp / f"r{readable}.db"
        try:
            backup.restore(rt.backup_tier(), key, out, keys=rt.backup_keys())
        except CryptoError:
            continue
        readable += 1
        assert NUMBER.encode() not in out.read_bytes()
    assert readable == 1  # the fresh one
    # an old plaintext backup restored later: the tombstones take the subject out again
    restored = tmp / "from-legacy.db"
    _, removed = backup.restore(legacy, "catalog-backups/old.db", restored, keys=rt.backup_keys(),
                                sha256=legacy.hash("catalog-backups/old.db"), scrub=rt.tombstones().apply,
                                legacy_plaintext=True)  # its hash from the off-site records: trusted
    assert removed == 1
    conn = sqlite3.connect(restored)
    assert conn.execute("SELECT COUNT(*) FROM calls").fetchone() == (0,)
    assert conn.execute("SELECT COUNT(*) FROM recordings").fetchone() == (0,)
    conn.close()
    assert NUMBER.encode() not in restored.read_bytes()
    tomb = rt.tombstones().path.read_text()
    assert "hmac-sha256:" in tomb and NUMBER not in tomb and CALL not in tomb
    # nor in the live catalog's files
    for suffix in ("", "-wal"):
        p = Path(str(cfg.catalog.path) + suffix)
        assert not p.exists() or NUMBER.encode() not in p.read_bytes()


def test_every_chunk_gets_its_own_nonce(tmp_path):
    """Identical plaintext chunks under one key: equal ciphertext would mean a reused nonce (GCM
    keystream reuse).  Same for two files sharing a recording's data key."""
    from storage import envelope
    from storage.keyring import KeyRing

    ring = KeyRing(tmp_path / "k")
    ring.generate("k1")
    chunk = 1024
    plain = b"\0" * (chunk * 6)
    first = io.BytesIO()
    info = envelope.encrypt_stream(io.BytesIO(plain), first, ring, "k1", b"r", chunk_size=chunk)
    second = io.BytesIO()
    envelope.encrypt_stream(io.BytesIO(plain), second, ring, "k1", b"r", chunk_size=chunk,
                            wrapped_key=info.wrapped_key)

    def bodies(blob: bytes) -> list[bytes]:
        start = len(read_header(io.BytesIO(blob)).raw)
        seg = chunk + envelope.TAG_LEN
        return [blob[i:i + chunk] for i in range(start, len(blob), seg) if len(blob[i:i + chunk]) == chunk]

    segs = bodies(first.getvalue()) + bodies(second.getvalue())
    assert len(segs) == 12
    assert len(set(segs)) == 12, "two chunks were encrypted with the same nonce"


@pytest.mark.sqlite_only  # restores SQLite backup files
def test_a_held_call_survives_a_restore_while_erased_calls_do_not(tmp_path):
    """With a call withheld under a legal hold, only the erased calls are tombstoned (not the
    number): restoring an older copy takes the erased call out and keeps the held one."""
    from lifecycle_support import KEY, NOW, add_call, add_recording, make_env

    from pbx_recorder.lifecycle.erasure import Eraser
    from pbx_recorder.lifecycle.holds import HoldManager
    from pbx_recorder.lifecycle.tombstones import Tombstones

    env = make_env(tmp_path)
    add_call(env, "c1", caller=NUMBER)
    add_recording(env, "c1", "r1")
    add_call(env, "c3", caller=NUMBER)
    add_recording(env, "c3", "r3")
    holds = HoldManager(env.conn, env.tiers, hash_key=KEY)
    holds.add("call", "c3", "lawsuit", "alice", now=NOW)
    before = tmp_path / "before.db"
    env.conn.execute(f"VACUUM INTO '{before}'")
    tomb = Tombstones(tmp_path / "tomb.jsonl", KEY)
    receipt = Eraser(env.conn, env.tiers, hash_key=KEY, holds=holds, tombstones=tomb).erase(
        caller=NUMBER, request_id="R", actor="dpo", now=NOW)
    assert receipt["status"] == "refused_partial"
    conn = sqlite3.connect(before, isolation_level=None)
    assert tomb.apply(conn) == 1
    assert [r[0] for r in conn.execute("SELECT call_id FROM calls")] == ["c3"]
    conn.close()
    assert NUMBER not in tomb.path.read_text()


def test_retention_disposal_destroys_the_data_key_too(site):
    from pbx_recorder.lifecycle.policy import ClassPolicy
    from pbx_recorder.lifecycle.retention_jobs import RetentionJob

    cfg, rt, ring, tmp = site
    row = dict(rt.conn.execute("SELECT * FROM recordings WHERE recording_id=?", (RID,)).fetchone())
    # schema 11: the catalog's copy of the manifest never holds the data key, only the row does ...
    assert row["wrapped_key"] and row["manifest_sha256"] and "wrapped_key" not in row["manifest"]
    # ... but a row written before keeps the whole signed manifest, data key included
    whole = json.loads(row["manifest"])
    whole["processing"]["wrapped_key"] = row["wrapped_key"]
    rt.conn.execute("UPDATE recordings SET manifest=?, manifest_sha256=''", (json.dumps(whole),))
    rt.conn.execute("UPDATE recordings SET retention_class='short', retain_until=1")  # due 10 days on
    job = RetentionJob(rt.conn, rt.tiers, {"short": ClassPolicy("short", days=1)}, rt.holds())
    assert job.apply(T0 + 10 * 86400, "cron").disposed == [RID]
    row = dict(rt.conn.execute("SELECT * FROM recordings WHERE recording_id=?", (RID,)).fetchone())
    assert row["state"] == "expired" and row["wrapped_key"] == "" and "wrapped_key" not in row["manifest"]
