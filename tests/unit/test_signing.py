"""pbx_recorder/recording/signing.py: key files, canonical signing, tamper detection, after_store hook."""

from __future__ import annotations

import json
import sqlite3
import stat

import pytest

from pbx_recorder.catalog.schema import apply_migrations
from pbx_recorder.errors import CryptoError
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.signing import (
    SignAfterStore,
    generate_signing_key,
    load_public_key,
    load_signing_key,
    public_key_path,
    sign_manifest,
    verify_manifest,
)

MANIFEST = {"recording_id": "r1", "call_id": "c1",
            "files": [{"name": "a.wav", "sha256": "ab" * 32, "size": 10}],
            "consent": {"decision": "granted"}}


@pytest.fixture()
def key_file(tmp_path):
    path = tmp_path / "sign" / "ed25519.pem"
    generate_signing_key(path)
    return path


def test_key_files(key_file):
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert public_key_path(key_file).read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    with pytest.raises(CryptoError):
        generate_signing_key(key_file)  # never overwrite
    priv = load_signing_key(key_file)
    assert load_public_key(key_file) == priv.public_key()
    assert load_public_key(public_key_path(key_file)) == priv.public_key()


def test_sign_verify_and_tamper(key_file):
    priv = load_signing_key(key_file)
    pub = load_public_key(key_file)
    sig = sign_manifest(MANIFEST, priv)
    assert verify_manifest(MANIFEST, sig, pub)
    # formatting does not matter (the catalog may store spaced JSON); content does
    assert verify_manifest(json.dumps(MANIFEST, indent=2), sig, pub)
    for path, value in [(("call_id",), "c2"), (("files", 0, "sha256"), "cd" * 32),
                        (("consent", "decision"), "refused")]:
        tampered = json.loads(json.dumps(MANIFEST))
        node = tampered
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        assert not verify_manifest(tampered, sig, pub), path
    assert not verify_manifest({**MANIFEST, "extra": 1}, sig, pub)
    assert not verify_manifest(MANIFEST, "not base64!", pub)
    other = generate_signing_key(key_file.parent / "other.pem")
    assert not verify_manifest(MANIFEST, sig, other.public_key())


def test_manifest_dataclass_signs_like_its_dict(key_file):
    priv = load_signing_key(key_file)
    m = Manifest(recording_id="r1", call_id="c1", files=(ManifestFile("a.wav", 3, "ab" * 32),))
    sig = sign_manifest(m, priv)
    assert verify_manifest(m.to_json(), sig, priv.public_key())
    assert verify_manifest(m.to_dict(), sig, priv.public_key())


def test_after_store_hook_writes_catalog(key_file):
    conn = sqlite3.connect(":memory:")
    apply_migrations(conn)
    conn.execute("INSERT INTO calls (call_id) VALUES ('c1')")
    conn.execute("INSERT INTO recordings (recording_id, call_id, state, created_at) "
                 "VALUES ('r1', 'c1', 'stored', 0)")
    hook = SignAfterStore.from_key_file(key_file)
    sig = hook(conn, "r1", MANIFEST)["signature"]
    text, stored_sig = conn.execute("SELECT manifest, signature FROM recordings").fetchone()
    assert stored_sig == sig
    assert verify_manifest(text, stored_sig, load_public_key(key_file))
    with pytest.raises(CryptoError):
        hook(conn, "missing", MANIFEST)
