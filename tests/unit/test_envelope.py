"""storage/envelope.py + storage/keyring.py: round trips, tamper detection, bounded memory, rewrap."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tracemalloc

import pytest

from pbx_recorder.errors import CryptoError
from storage import envelope
from storage.envelope import decrypt_stream, encrypt_stream, read_header, rewrap
from storage.keyring import KeyRing

CHUNK = 1024  # the smallest allowed segment keeps multi-segment tests fast


@pytest.fixture()
def ring(tmp_path):
    r = KeyRing(tmp_path / "keys")
    r.generate("k1")
    return r


def roundtrip(ring, data: bytes, **kw) -> tuple[bytes, envelope.EnvelopeInfo]:
    out = io.BytesIO()
    info = encrypt_stream(io.BytesIO(data), out, ring, "k1", b"rec-1", chunk_size=CHUNK)
    plain = io.BytesIO()
    digest, size = decrypt_stream(io.BytesIO(out.getvalue()), plain, ring, **kw)
    assert plain.getvalue() == data
    assert size == len(data) == info.size
    assert digest == info.plaintext_sha256 == hashlib.sha256(data).hexdigest()
    assert info.ciphertext_sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    assert info.ciphertext_size == len(out.getvalue())
    return out.getvalue(), info


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 7 * CHUNK + 3])
def test_round_trip_sizes(ring, size):
    data = os.urandom(size)
    blob, info = roundtrip(ring, data)
    assert blob.startswith(b"PBXR\x02")
    assert size < 32 or data[:32] not in blob  # ciphertext, not the audio
    assert info.key_id == "k1"
    assert info.aad == b"rec-1"


def test_key_file_mode_and_no_overwrite(ring):
    path = ring.path_for("k1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    with pytest.raises(CryptoError):
        ring.generate("k1")
    with pytest.raises(CryptoError):
        ring.generate("../evil")
    assert ring.ids() == ["k1"]


def test_path_round_trip_is_atomic(ring, tmp_path):
    src = tmp_path / "a.wav"
    src.write_bytes(os.urandom(3 * CHUNK + 10))
    enc = tmp_path / "a.wav.pbxr"
    info = encrypt_stream(src, enc, ring, "k1", "rec-1", chunk_size=CHUNK)
    dec = tmp_path / "b.wav"
    assert decrypt_stream(enc, dec, ring, expected_aad="rec-1") == (info.plaintext_sha256, info.size)
    assert dec.read_bytes() == src.read_bytes()
    # a tampered file publishes nothing at the destination path
    blob = bytearray(enc.read_bytes())
    blob[-5] ^= 1
    enc.write_bytes(bytes(blob))
    bad = tmp_path / "c.wav"
    with pytest.raises(CryptoError):
        decrypt_stream(enc, bad, ring)
    assert not bad.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _encrypted(ring, n_chunks=4) -> tuple[bytes, int]:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(os.urandom(n_chunks * CHUNK + 100)), out, ring, "k1", b"rec-1",
                   chunk_size=CHUNK)
    blob = out.getvalue()
    return blob, len(read_header(io.BytesIO(blob)).raw)


def _must_fail(ring, blob: bytes, **kw) -> None:
    with pytest.raises(CryptoError):
        decrypt_stream(io.BytesIO(blob), io.BytesIO(), ring, **kw)


def test_tamper_header_every_field(ring):
    blob, hlen = _encrypted(ring)
    for pos in range(hlen):  # magic, version, chunk size, nonce, key id, wrapped key, aad
        b = bytearray(blob)
        b[pos] ^= 0x01
        _must_fail(ring, bytes(b))


def test_tamper_segments(ring):
    blob, hlen = _encrypted(ring)
    seg = CHUNK + 16
    flipped = bytearray(blob)
    flipped[hlen + seg + 7] ^= 0x80  # inside segment 1
    _must_fail(ring, bytes(flipped))
    _must_fail(ring, blob[: hlen + 2 * seg])  # truncated at a segment boundary
    _must_fail(ring, blob[:-1])  # truncated inside the last segment
    _must_fail(ring, blob[:hlen])  # all segments gone
    _must_fail(ring, blob + b"\x00" * 17)  # junk appended
    s0, s1 = blob[hlen:hlen + seg], blob[hlen + seg:hlen + 2 * seg]
    _must_fail(ring, blob[:hlen] + s1 + s0 + blob[hlen + 2 * seg:])  # swapped
    _must_fail(ring, blob[:hlen] + s0 + blob[hlen + 2 * seg:])  # one dropped


def test_wrong_key_and_wrong_recording(ring, tmp_path):
    blob, _ = _encrypted(ring)
    other = KeyRing(tmp_path / "other")
    other.generate("k1")  # same id, different bytes
    _must_fail(other, blob)
    _must_fail(ring, blob, expected_aad=b"rec-2")
    _must_fail(KeyRing(tmp_path / "empty"), blob)  # key missing


def test_header_splice_between_files_detected(ring):
    a, hlen = _encrypted(ring)
    b, _ = _encrypted(ring)
    _must_fail(ring, a[:hlen] + b[hlen:])


class CountingSource(io.RawIOBase):
    """A 16 MiB source generated on the fly; records the largest read requested."""

    def __init__(self, total: int) -> None:
        self.left, self.max_read, self.h = total, 0, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        assert n is not None and n > 0, "whole-file read attempted"
        self.max_read = max(self.max_read, n)
        block = bytes([self.left % 251]) * min(n, self.left)
        self.left -= len(block)
        self.h.update(block)
        return block


class NullSink:
    def __init__(self) -> None:
        self.size = 0

    def write(self, b: bytes) -> int:
        self.size += len(b)
        return len(b)


def test_memory_bounded(ring):
    total = 16 * 1024 * 1024
    src = CountingSource(total)
    tracemalloc.start()
    try:
        info = encrypt_stream(src, NullSink(), ring, "k1", b"rec-1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total
    assert info.plaintext_sha256 == src.h.hexdigest()
    assert src.max_read <= envelope.DEFAULT_CHUNK
    assert peak < 1024 * 1024, f"peak {peak} bytes for a {total}-byte file"


def test_rewrap_then_retire_old_key(ring):
    data = os.urandom(2 * CHUNK + 5)
    out = io.BytesIO()
    info = encrypt_stream(io.BytesIO(data), out, ring, "k1", b"rec-1", chunk_size=CHUNK)
    before = hashlib.sha256(out.getvalue()).hexdigest()
    ring.generate("k2")
    new_wrapped = rewrap(info.wrapped_key, "k1", ring, "k2")
    assert new_wrapped != info.wrapped_key
    ring.retire("k1")
    assert ring.ids() == ["k2"]
    plain = io.BytesIO()
    decrypt_stream(io.BytesIO(out.getvalue()), plain, ring, wrapped_key=new_wrapped, key_id="k2")
    assert plain.getvalue() == data
    assert hashlib.sha256(out.getvalue()).hexdigest() == before  # audio untouched
    _must_fail(ring, out.getvalue())  # header copy names the retired key
    with pytest.raises(CryptoError):
        rewrap(info.wrapped_key, "k2", ring, "k2")  # wrong old key


def test_decrypt_memory_bounded(ring, tmp_path):
    total = 16 * 1024 * 1024
    enc = tmp_path / "big.pbxr"
    info = encrypt_stream(CountingSource(total), enc, ring, "k1", b"rec-1")
    sink = NullSink()
    tracemalloc.start()
    try:
        digest, size = decrypt_stream(enc, sink, ring)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (digest, size, sink.size) == (info.plaintext_sha256, total, total)
    assert peak < 1024 * 1024, f"peak {peak} bytes decrypting a {total}-byte file"


def test_encrypt_stage_shares_one_dek_per_recording(ring, tmp_path):
    from pbx_recorder.recording.manifest import Manifest, ManifestFile

    legs = {}
    for name in ("in.wav", "out.wav"):
        legs[name] = os.urandom(3000)
        (tmp_path / name).write_bytes(legs[name])
    m = Manifest(recording_id="rec-1", call_id="c1",
                 files=(ManifestFile("in.wav", 3000, ""), ManifestFile("out.wav", 3000, "")))
    stage = envelope.EncryptStage(ring, "k1", chunk_size=CHUNK)
    out1, m = stage(tmp_path / "in.wav", m, role="audio")
    out2, m = stage(tmp_path / "out.wav", m, role="leg:2")
    assert out1.name == "in.wav.pbxr" and out2.name == "out.wav.pbxr"
    p = m.processing
    assert p["encrypted"] is True and p["key_id"] == "k1" and p["envelope"] == "PBXR2"
    assert set(p["encrypted_files"]) == {"in.wav", "out.wav"}
    for out, name in ((out1, "in.wav"), (out2, "out.wav")):  # both open with the catalog's one key
        plain = io.BytesIO()
        decrypt_stream(out, plain, ring, wrapped_key=p["wrapped_key"], key_id="k1", expected_aad="rec-1")
        assert plain.getvalue() == legs[name]
        assert p["encrypted_files"][name]["ciphertext_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    nonces = [read_header(io.BytesIO(o.read_bytes())).base_nonce for o in (out1, out2)]
    assert nonces[0] != nonces[1]
    with pytest.raises(CryptoError):
        envelope.EncryptStage(ring, "missing")


def test_keyring_from_config_path(ring):
    assert KeyRing.from_config_path(ring.path_for("k1")).ids() == ["k1"]
    assert KeyRing.from_config_path(ring.key_dir).ids() == ["k1"]
