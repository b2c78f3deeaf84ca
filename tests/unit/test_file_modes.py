"""Owner-only files whatever the umask (storage/file_modes.py): catalog (+ WAL/SHM), spool, tier
objects, manifest sidecars, catalog backups and restores, keys.  Under umask 022 (a foreground
run, cron, the demo) these used to be 0644: readable by the asterisk account and every other user."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.errors import StorageError
from pbx_recorder.lifecycle import backup
from pbx_recorder.lifecycle.backup_keys import BackupKeys
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.recording import ledger
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.shipper import Shipper
from pbx_recorder.recording.spool import Spool
from storage import atomic, file_modes
from storage.envelope import EncryptStage
from storage.keyring import KeyRing
from storage.local import LocalTier

# reads, alters or runs a process on the SQLite catalog file itself: not part of the PostgreSQL pass
pytestmark = pytest.mark.sqlite_only

CALL = "n1_1700000000.1"
RID = f"{CALL}_call001"


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _not_private(root: Path, skip: Path) -> list[str]:
    bad = []
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            continue
        for name in [*dirs, *files]:
            p = here / name
            if p == skip:
                continue
            mode = stat.S_IMODE(p.lstat().st_mode)
            if mode & 0o077:
                bad.append(f"{p.relative_to(root)} {mode:o}")
    return bad


def test_everything_the_recorder_writes_is_owner_only(tmp_path, umask):
    drop = tmp_path / "monitor"  # the PBX's drop folder: the installer's, not ours
    drop.mkdir()
    src = drop / f"{RID}.wav"
    src.write_bytes(os.urandom(5000))
    os.chmod(src, 0o644)  # as Asterisk leaves it under its umask
    ring = KeyRing(tmp_path / "var" / "keys" / "master")
    ring.generate("k1")
    catalog = Catalog(tmp_path / "var" / "lib" / "catalog.db", clock=lambda: 1700000200.0)
    spool = Spool(tmp_path / "var" / "lib" / "spool")
    hot = LocalTier("hot", tmp_path / "var" / "lib" / "hot")
    cold = LocalTier("cold", tmp_path / "var" / "lib" / "cold")
    manifest = Manifest(recording_id=RID, call_id=CALL, recorded_from=1700000000.0, created_at=1700000100.0,
                        cdr={"src": "4915112345678"}, files=(ManifestFile(src.name, 0, "", 2.0),))
    spool.spool_recording(RID, [src], manifest)
    assert not src.exists()  # moved out of the drop folder
    shipper = Shipper(spool, catalog, lambda region: hot, prepare_stages=[EncryptStage(ring, "k1")],
                      after_store=[ledger.StoredLedgerHook(lambda: 1700000200.0)])
    assert shipper.ship_once().shipped == [RID]
    db = tmp_path / "var" / "lib" / "catalog.db"
    assert Path(str(db) + "-wal").exists() and Path(str(db) + "-shm").exists()
    conn = open_catalog(db)  # the CLI's connection
    conn.execute("INSERT INTO audit_log (at, actor, action) VALUES (1, 'x', 'y')")
    keys = BackupKeys(tmp_path / "var" / "keys" / "backup")
    info = backup.backup(db, cold, 1700000300.0, keys=keys)
    backup.restore(cold, info.key, tmp_path / "var" / "restored" / "catalog.db", keys=keys)
    atomic.write_bytes(tmp_path / "var" / "lib" / "plain-write", b"x")
    conn.close()
    catalog.close()
    assert _not_private(tmp_path / "var", skip=drop) == []
    assert stat.S_IMODE(hot.root.stat().st_mode) == 0o700


def test_existing_catalog_and_roots_open_to_others_are_narrowed(tmp_path, umask):
    db = tmp_path / "cat.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).write_bytes(b"")
        os.chmod(str(db) + suffix, 0o644)
    root = tmp_path / "spool"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    file_modes.prepare_sqlite(db)
    Spool(root)
    assert [file_modes.is_private(str(db) + s) for s in ("", "-wal", "-shm")] == [True] * 3
    assert file_modes.is_private(root)


def test_a_file_of_another_account_is_taken_over_not_renamed(tmp_path, monkeypatch, umask):
    """A drop-folder file owned by asterisk: the spool gets a new owner-only copy, the original goes."""
    src = tmp_path / "drop" / "a.wav"
    src.parent.mkdir()
    src.write_bytes(b"audio" * 100)
    os.chmod(src, 0o664)
    os.chown(src, 4242, 4242)  # the PBX account's file
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # the recorder is not root and not its owner
    inode = src.stat().st_ino
    dst = file_modes.private_dir(tmp_path / "spool") / "a.wav"
    atomic.move_file(src, dst)
    assert not src.exists() and dst.read_bytes() == b"audio" * 100
    assert dst.stat().st_ino != inode and stat.S_IMODE(dst.stat().st_mode) == 0o600


def test_under_root_new_files_belong_to_the_owner_of_their_directory(tmp_path):
    """A root-run CLI command (a front end) must not leave root-owned files the daemon cannot read."""
    if os.geteuid() != 0:
        pytest.fail("this suite runs as root (CI: a fresh root machine); the ownership hand-over needs it")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 4242, 4242)  # the service account's directory
    atomic.write_bytes(state / "object", b"x")
    Catalog(state / "catalog.db").close()
    sub = file_modes.private_dir(state / "a" / "b")
    for p in (state / "object", state / "catalog.db", state / "a", sub):
        assert p.stat().st_uid == 4242, p


def test_wav_wrapped_around_raw_audio_is_owner_only(tmp_path, umask):
    import wave

    from pbx_recorder.recording.audio import wrap_raw_as_wav

    raw = tmp_path / "leg.raw"
    raw.write_bytes(b"\x01\x00\x02\x00" * 8000)
    wav = wrap_raw_as_wav(raw, channels=2)
    assert file_modes.is_private(wav)
    with wave.open(str(wav), "rb") as w:
        assert (w.getnchannels(), w.getnframes()) == (2, 8000)


def test_a_symlink_planted_in_the_drop_folder_is_refused(tmp_path):
    """The PBX account could point a 'recording' at the catalog or a key: never followed."""
    secret = tmp_path / "catalog.db"
    secret.write_bytes(b"every number")
    os.chmod(secret, 0o644)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "rec.wav").symlink_to(secret)
    spool = file_modes.private_dir(tmp_path / "spool")
    with pytest.raises(StorageError):
        atomic.move_file(drop / "rec.wav", spool / "rec.wav")
    assert not (spool / "rec.wav").exists()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o644 and secret.stat().st_uid == os.geteuid()


def test_checkpoint_and_signing_key_folders_are_private_to_their_parents(tmp_path, umask):
    """Red-team re-try: a configured ``signing.checkpoint_dir`` or ``signing.key_file`` whose
    parent folders did not exist got them with the umask's mode (0777 under umask 000): a
    world-writable folder above the chain heads or the signing key, where anyone could swap them."""
    from pbx_recorder.recording.chain_head import CheckpointStore
    from pbx_recorder.recording.signing import generate_signing_key

    key = generate_signing_key(tmp_path / "etc" / "keys" / "sign" / "node.ed25519")
    conn = open_catalog(tmp_path / "cat.db")
    try:
        store = CheckpointStore(tmp_path / "var" / "audit" / "heads", node="n1")
        store.write(conn, "ledger", key, now=1700000000.0)
    finally:
        conn.close()
    assert any((tmp_path / "var").rglob("*.json"))
    assert _not_private(tmp_path / "var", skip=tmp_path / "none") == []
    assert _not_private(tmp_path / "etc", skip=tmp_path / "none") == [
        f"keys/sign/node.ed25519.pub {0o644:o}"]  # the public key is public
