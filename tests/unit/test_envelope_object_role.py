"""storage/envelope.py, version 2: the header names which object of the recording an envelope is
(its role), so one of a recording's objects put in place of another fails to open; version-1
envelopes (written before, no role) still open; a version-2 envelope cannot pass for a version-1
one; a re-wrapped data key keeps every object's role."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
from pathlib import Path

import pytest

from pbx_recorder.errors import CryptoError, ObjectRoleMismatch
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from storage import envelope
from storage.keyring import KeyRing

CHUNK = 1024
RID = "c1_call001"
FIXTURE = Path(__file__).parent.parent / "fixtures" / "envelope_v1" / "one_recording.json"


@pytest.fixture()
def ring(tmp_path: Path) -> KeyRing:
    r = KeyRing(tmp_path / "keys")
    r.generate("k1")
    return r


def _seal(ring: KeyRing, plain: bytes, role: str,
          wrapped: str | None = None) -> tuple[bytes, envelope.EnvelopeInfo]:
    out = io.BytesIO()
    info = envelope.encrypt_stream(io.BytesIO(plain), out, ring, "k1", RID, chunk_size=CHUNK,
                                   wrapped_key=wrapped, key_in_header=False, role=role)
    return out.getvalue(), info


def _two_objects(ring: KeyRing) -> tuple[bytes, bytes, bytes, bytes, str]:
    """A recording's main object and one leg, under its one data key, as the shipper stores them."""
    main_plain, leg_plain = os.urandom(3 * CHUNK + 7), os.urandom(2 * CHUNK + 9)
    main, info = _seal(ring, main_plain, "audio")
    leg, _ = _seal(ring, leg_plain, "leg:write", info.wrapped_key)
    return main, main_plain, leg, leg_plain, info.wrapped_key


def _open_all(ring: KeyRing, blob: bytes, wrapped: str, role: str) -> bytes:
    return b"".join(envelope.decrypt_chunks(io.BytesIO(blob), ring, wrapped_key=wrapped, key_id="k1",
                                            expected_aad=RID, expected_role=role))


def test_the_role_round_trips_through_the_header(ring: KeyRing) -> None:
    main, main_plain, leg, leg_plain, wrapped = _two_objects(ring)
    for blob, role, plain in ((main, "audio", main_plain), (leg, "leg:write", leg_plain)):
        header = envelope.read_header(io.BytesIO(blob))
        assert (header.version, header.role, header.aad) == (2, role, RID.encode())
        assert blob.startswith(b"PBXR\x02")
        assert _open_all(ring, blob, wrapped, role) == plain
        size = len(blob)
        assert envelope.plaintext_size(header, size) == len(plain)
    _, info = _seal(ring, b"x", "original:read")
    assert info.role == "original:read"


def test_a_legs_ciphertext_in_place_of_the_main_object_is_refused(ring: KeyRing) -> None:
    """The reported attack: same recording, same data key, so before version 2 the leg opened
    as the main object.  Every reader refuses it from the header, before any plaintext."""
    _, _, leg, leg_plain, wrapped = _two_objects(ring)
    with pytest.raises(ObjectRoleMismatch, match="'leg:write' object, not its 'audio' object"):
        _open_all(ring, leg, wrapped, "audio")
    released: list[bytes] = []
    with pytest.raises(ObjectRoleMismatch):
        for block in envelope.decrypt_range(io.BytesIO(leg), ring, 0, len(leg_plain), wrapped_key=wrapped,
                                            key_id="k1", expected_aad=RID, expected_role="audio"):
            released.append(block)
    assert released == []
    sink = io.BytesIO()
    with pytest.raises(ObjectRoleMismatch):
        envelope.decrypt_stream(io.BytesIO(leg), sink, ring, wrapped_key=wrapped, key_id="k1",
                                expected_aad=RID, expected_role="audio")
    assert sink.getvalue() == b""
    with pytest.raises(ObjectRoleMismatch):
        envelope.check_binding(envelope.read_header(io.BytesIO(leg)), expected_aad=RID, expected_role="audio")
    assert issubclass(ObjectRoleMismatch, CryptoError)  # the CLI's exit 8, verify's "decryption failed"


def test_the_main_object_in_place_of_a_leg_or_the_sidecar_is_refused(ring: KeyRing) -> None:
    main, _, _, _, wrapped = _two_objects(ring)
    for role in ("leg:write", "original", "manifest"):
        with pytest.raises(ObjectRoleMismatch):
            _open_all(ring, main, wrapped, role)


def test_an_envelope_without_a_role_is_no_recordings_object(ring: KeyRing) -> None:
    blob, info = _seal(ring, b"catalog backup", "")
    assert b"".join(envelope.decrypt_chunks(io.BytesIO(blob), ring, wrapped_key=info.wrapped_key)) \
        == b"catalog backup"  # a reader that names no role (a backup restore) does not check it
    with pytest.raises(ObjectRoleMismatch, match="no role"):
        _open_all(ring, blob, info.wrapped_key, "audio")


def test_an_edited_role_fails_authentication(ring: KeyRing) -> None:
    """The role is a header byte like any other: relabelled "audio" (same length as "leg:1") it
    passes the header check but segment 0's tag, which covers the header's hash, does not."""
    main, info = _seal(ring, os.urandom(2 * CHUNK), "audio")
    leg, _ = _seal(ring, os.urandom(2 * CHUNK), "leg:1", info.wrapped_key)
    raw = envelope.read_header(io.BytesIO(leg)).raw
    relabelled = raw[:-len(b"leg:1")] + b"audio" + leg[len(raw):]
    assert envelope.read_header(io.BytesIO(relabelled)).role == "audio"
    with pytest.raises(CryptoError, match="segment 0 failed authentication"):
        _open_all(ring, relabelled, info.wrapped_key, "audio")
    assert _open_all(ring, main, info.wrapped_key, "audio")


def test_a_version_2_envelope_cannot_pass_for_a_version_1_one(ring: KeyRing) -> None:
    """No downgrade: rewritten with a version-1 header (same nonce, key id, associated data, no
    role) or with only its version byte changed, its segments no longer authenticate."""
    _, _, leg, _, wrapped = _two_objects(ring)
    header = envelope.read_header(io.BytesIO(leg))
    body = leg[len(header.raw):]
    kid = header.key_id.encode()
    v1_header = (struct.pack(">4sBBI12s", b"PBXR", 1, 0, header.chunk_size, header.base_nonce)
                 + bytes([len(kid)]) + kid + struct.pack(">H", 0)
                 + struct.pack(">H", len(header.aad)) + header.aad)
    as_v1 = v1_header + body
    assert envelope.read_header(io.BytesIO(as_v1)).version == 1
    with pytest.raises(CryptoError, match="failed authentication"):
        _open_all(ring, as_v1, wrapped, "audio")
    flipped = bytearray(leg)
    flipped[4] = 1
    with pytest.raises(CryptoError):
        _open_all(ring, bytes(flipped), wrapped, "audio")


def _fixture_ring(tmp_path: Path) -> tuple[dict, KeyRing]:
    doc = json.loads(FIXTURE.read_text())
    keys = tmp_path / "v1-keys"
    keys.mkdir(mode=0o700)
    (keys / "k1.key").write_bytes(bytes.fromhex(doc["master_key_hex"]))
    (keys / "k1.key").chmod(0o600)
    return doc, KeyRing(keys)


def test_version_1_envelopes_written_before_still_open(tmp_path: Path) -> None:
    """Objects stored by the release before version 2 (the fixture was written by that code):
    they carry no role and open as the object the reader names, as before."""
    doc, ring = _fixture_ring(tmp_path)
    rid, wrapped = doc["recording_id"], doc["wrapped_key"]
    for role, aad in (("audio", rid), ("leg:write", rid), ("manifest", rid + ":manifest")):
        blob = base64.b64decode(doc["objects"][role])
        header = envelope.read_header(io.BytesIO(blob))
        assert (header.version, header.role) == (1, "")
        plain = b"".join(envelope.decrypt_chunks(io.BytesIO(blob), ring, wrapped_key=wrapped, key_id="k1",
                                                 expected_aad=aad, expected_role=role))
        assert hashlib.sha256(plain).hexdigest() == doc["plaintext"][role]["sha256"]
        if role != "manifest":
            assert envelope.plaintext_size(header, len(blob)) == doc["plaintext"][role]["size"]
            part = b"".join(envelope.decrypt_range(io.BytesIO(blob), ring, 1000, 1100, wrapped_key=wrapped,
                                                   key_id="k1", expected_aad=aad, expected_role=role))
            assert part == plain[1000:1100]
    sidecar = base64.b64decode(doc["objects"]["manifest"])
    with pytest.raises(CryptoError, match="another recording"):  # v1 kept the sidecar apart by its aad
        b"".join(envelope.decrypt_chunks(io.BytesIO(sidecar), ring, wrapped_key=wrapped, key_id="k1",
                                         expected_aad=rid, expected_role="audio"))


def test_a_rewrapped_data_key_keeps_every_objects_role(ring: KeyRing) -> None:
    """``keys rotate`` re-wraps the data key only: the objects, and the roles in their headers,
    are untouched, so after it each still opens as itself and only as itself."""
    main, main_plain, leg, leg_plain, wrapped = _two_objects(ring)
    ring.generate("k2")
    new = envelope.rewrap(wrapped, "k1", ring, "k2")
    for blob, role, plain in ((main, "audio", main_plain), (leg, "leg:write", leg_plain)):
        got = b"".join(envelope.decrypt_chunks(io.BytesIO(blob), ring, wrapped_key=new, key_id="k2",
                                               expected_aad=RID, expected_role=role))
        assert got == plain
    with pytest.raises(ObjectRoleMismatch):
        b"".join(envelope.decrypt_chunks(io.BytesIO(leg), ring, wrapped_key=new, key_id="k2",
                                         expected_aad=RID, expected_role="audio"))


def test_the_encrypt_stage_binds_the_role_it_is_told_and_refuses_none(ring: KeyRing, tmp_path: Path) -> None:
    for name in ("in.wav", "out.wav", "meta.json"):
        (tmp_path / name).write_bytes(os.urandom(1500))
    m = Manifest(recording_id=RID, call_id="c1",
                 files=(ManifestFile("in.wav", 1500, "", role="read"),
                        ManifestFile("out.wav", 1500, "", role="write")))
    stage = envelope.EncryptStage(ring, "k1", chunk_size=CHUNK)
    assert stage.takes_role is True
    with pytest.raises(CryptoError, match="no object role"):
        stage(tmp_path / "in.wav", m)
    main, m = stage(tmp_path / "in.wav", m, role="audio")
    leg, m = stage(tmp_path / "out.wav", m, role="leg:write")
    sidecar = stage.seal_sidecar(tmp_path / "meta.json", m, role="manifest")
    p = m.processing
    assert p["envelope"] == "PBXR2"
    assert {n: f["role"] for n, f in p["encrypted_files"].items()} == {"in.wav": "audio",
                                                                        "out.wav": "leg:write"}
    roles = [envelope.read_header(io.BytesIO(f.read_bytes())).role for f in (main, leg, sidecar)]
    assert roles == ["audio", "leg:write", "manifest"]
    assert envelope.read_header(io.BytesIO(sidecar.read_bytes())).aad == (RID + ":manifest").encode()
