"""EncryptStage + SignAfterStore + StoredLedgerHook through the real Shipper, then deep verify,
key rotation (audio untouched) and authorized plaintext reads."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from pbx_recorder.audio_access import open_plaintext
from pbx_recorder.catalog import Catalog
from pbx_recorder.errors import AccessDenied
from pbx_recorder.recording import ledger
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.rekey import rotate
from pbx_recorder.recording.shipper import Shipper
from pbx_recorder.recording.signing import SignAfterStore, generate_signing_key
from pbx_recorder.recording.spool import Spool
from pbx_recorder.recording.verify import Verifier
from storage.envelope import EncryptStage
from storage.keyring import KeyRing
from storage.local import LocalTier

CALL = "n1_1700000000.1"
AUDIO = {f"{CALL}_call00{i}": os.urandom(150_000 + i) for i in range(3)}  # > 2 segments each


@pytest.fixture()
def shipped(tmp_path):
    ring = KeyRing(tmp_path / "keys")
    ring.generate("k1")
    sign_key = generate_signing_key(tmp_path / "sign.pem")
    spool = Spool(tmp_path / "spool")
    catalog = Catalog(tmp_path / "cat.db", clock=lambda: 1700000200.0)
    tier = LocalTier("hot", tmp_path / "hot")
    for i, (rid, audio) in enumerate(AUDIO.items()):
        src = tmp_path / "mon" / f"{rid}.wav"
        src.parent.mkdir(exist_ok=True)
        src.write_bytes(audio)
        m = Manifest(recording_id=rid, call_id=CALL, recorded_from=1700000000.0 + i, created_at=1700000100.0,
                     files=(ManifestFile(src.name, 0, "", 2.0),))
        spool.spool_recording(rid, [src], m)
    shipper = Shipper(spool, catalog, lambda region: tier, prepare_stages=[EncryptStage(ring, "k1")],
                      after_store=[SignAfterStore(sign_key), ledger.StoredLedgerHook(lambda: 1700000200.0)])
    assert sorted(shipper.ship_once().shipped) == sorted(AUDIO)
    conn = ledger.connection_of(catalog)
    yield ring, sign_key, catalog, conn, tier
    catalog.close()


def test_shipped_encrypted_signed_and_ledgered(shipped):
    ring, sign_key, catalog, conn, tier = shipped
    for rid, audio in AUDIO.items():
        row = catalog.get_recording(rid)
        assert row["encrypted"] == 1 and row["key_id"] == "k1" and row["wrapped_key"]
        assert row["audio_sha256"] == hashlib.sha256(audio).hexdigest() != row["sha256"]
        with tier.open(row["storage_key"]) as f:
            blob = f.read()
        assert blob.startswith(b"PBXR") and audio[:64] not in blob
        assert row["signature"]
    assert [r[0] for r in conn.execute("SELECT event FROM ledger ORDER BY seq")] == ["stored"] * 3
    report = Verifier(conn, {"hot": tier}, keyring=ring, public_key=sign_key.public_key(), deep=True).run()
    assert report.checked == 3 and report.mismatches == [] and report.notes == []


def test_rotation_rewraps_without_touching_audio(shipped):
    ring, sign_key, catalog, conn, tier = shipped
    keys = {rid: catalog.get_recording(rid)["storage_key"] for rid in AUDIO}
    before = {rid: tier.hash(key) for rid, key in keys.items()}
    mtimes = {rid: tier.path_for(key).stat().st_mtime_ns for rid, key in keys.items()}
    report = rotate(conn, ring, "k2", now=1700000300.0, batch_size=2)
    assert report.generated and report.rewrapped == 3 and report.failed == []
    assert report.by_old_key == {"k1": 3}
    ring.retire("k1")
    assert ring.ids() == ["k2"]
    for rid, audio in AUDIO.items():
        row = catalog.get_recording(rid)
        assert row["key_id"] == "k2"
        path = tier.path_for(row["storage_key"])
        assert tier.hash(row["storage_key"]) == before[rid] == row["sha256"]
        assert path.stat().st_mtime_ns == mtimes[rid]
        out = io.BytesIO()
        open_plaintext(conn, row, tier, ring, actor="alice", role="auditor", dst=out, now=1700000400.0)
        assert out.getvalue() == audio
    events = [r[0] for r in conn.execute("SELECT event FROM ledger ORDER BY seq")]
    assert events == ["stored"] * 3 + ["rekeyed"] * 3
    assert ledger.verify_chain(conn) == []
    again = rotate(conn, ring, "k2", now=1700000500.0)
    assert again.rewrapped == 0 and again.already == 3 and not again.generated
    report = Verifier(conn, {"hot": tier}, keyring=ring, public_key=sign_key.public_key(), deep=True).run()
    assert report.mismatches == []


def test_rotation_reports_rows_whose_key_is_missing(shipped):
    ring, _, catalog, conn, _ = shipped
    ring.retire("k1")  # too early: nothing can be unwrapped
    report = rotate(conn, ring, "k2", now=1700000300.0)
    assert report.rewrapped == 0 and sorted(r for r, _ in report.failed) == sorted(AUDIO)
    assert all(catalog.get_recording(rid)["key_id"] == "k1" for rid in AUDIO)
    assert conn.execute("SELECT COUNT(*) FROM ledger WHERE event = 'rekeyed'").fetchone()[0] == 0


def test_open_plaintext_roles_and_audit(shipped, tmp_path):
    ring, _, catalog, conn, tier = shipped
    rid = next(iter(AUDIO))
    row = catalog.get_recording(rid)
    with pytest.raises(AccessDenied):
        open_plaintext(conn, row, tier, ring, actor="bob", role="agent", dst=tmp_path / "x.wav", now=1.0)
    assert not (tmp_path / "x.wav").exists()
    for role in ("admin", "supervisor", "auditor"):
        out = tmp_path / f"{role}.wav"
        digest, size = open_plaintext(conn, row, tier, ring, actor="al", role=role, dst=out, now=2.0)
        assert out.read_bytes() == AUDIO[rid] and size == len(AUDIO[rid]) and digest == row["audio_sha256"]
        assert oct(out.stat().st_mode & 0o777) == "0o600"
    audit = conn.execute("SELECT actor, role, action, target FROM audit_log ORDER BY id").fetchall()
    assert [tuple(a) for a in audit] == [("bob", "agent", "read_audio_denied", rid)] + [
        ("al", r, "read_audio", rid) for r in ("admin", "supervisor", "auditor")]


def test_transcode_then_encrypt_verifies_against_the_encrypted_plaintext(tmp_path):
    import dataclasses

    ring = KeyRing(tmp_path / "keys")
    ring.generate("k1")
    spool, tier = Spool(tmp_path / "spool"), LocalTier("hot", tmp_path / "hot")
    catalog = Catalog(tmp_path / "cat.db", clock=lambda: 1700000200.0)
    rid, audio = f"{CALL}_call009", os.urandom(4000)
    src = tmp_path / "mon" / "x.wav"
    src.parent.mkdir()
    src.write_bytes(audio)
    spool.spool_recording(rid, [src], Manifest(recording_id=rid, call_id=CALL, created_at=1.0,
                                               files=(ManifestFile("x.wav", 0, ""),)))

    def fake_transcode(path, manifest):  # stands in for storage/transcode.py (FLAC)
        out = path.with_suffix(".flac")
        out.write_bytes(b"fLaC" + path.read_bytes()[::2])
        return out, dataclasses.replace(manifest, processing={**manifest.processing, "format": "flac"})

    stages = [fake_transcode, EncryptStage(ring, "k1")]
    shipper = Shipper(spool, catalog, lambda r: tier, prepare_stages=stages,
                      after_store=[ledger.StoredLedgerHook(lambda: 2.0)])
    assert shipper.ship_once().shipped == [rid]
    conn = ledger.connection_of(catalog)
    try:
        row = catalog.get_recording(rid)
        flac = b"fLaC" + audio[::2]
        assert row["format"] == "flac" and row["audio_sha256"] == hashlib.sha256(audio).hexdigest()
        assert row["manifest"]["processing"]["plaintext_sha256"] == hashlib.sha256(flac).hexdigest()
        assert Verifier(conn, {"hot": tier}, keyring=ring, deep=True).run().mismatches == []
        out = io.BytesIO()
        open_plaintext(conn, row, tier, ring, actor="a", role="admin", dst=out, now=3.0)
        assert out.getvalue() == flac
    finally:
        catalog.close()
