"""Audio over HTTP: Range requests (206, the right bytes, 416 past the end), plain and encrypted
recordings (a seek decrypts from the segment that holds it, every segment authenticated), play vs
download per role, the download's file name, and each read audited with the client address."""

from __future__ import annotations

import io
import json
import os

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.errors import CryptoError
from pbx_recorder.service.api_audio import download_name
from pbx_recorder.service.ranges import ByteRange, RangeNotSatisfiable, parse_range
from storage import envelope
from storage.keyring import KeyRing
from tests.peers.service_support import NOW

AUDIO = bytes(range(256)) * 40 + b"c-red-1"


@pytest.fixture
def service(seeded_service):  # type: ignore[no-untyped-def]
    return seeded_service


def test_no_range_is_the_whole_file_with_accept_ranges(service) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login("alice")
    answer = client.get("/api/recordings/r-c-red-1/audio")
    assert answer.status_code == 200 and answer.content == AUDIO
    assert answer.headers["accept-ranges"] == "bytes" and answer.headers["content-type"] == "audio/wav"
    assert answer.headers["content-disposition"].startswith("inline")


@pytest.mark.parametrize(("header", "lo", "hi"), [
    ("bytes=100-199", 100, 200), ("bytes=0-0", 0, 1), ("bytes=10000-", 10000, len(AUDIO)),
    ("bytes=-7", len(AUDIO) - 7, len(AUDIO)), ("bytes=10000-99999999", 10000, len(AUDIO)),
])
def test_a_range_answers_206_with_exactly_those_bytes(service, header: str, lo: int, hi: int) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login("lead-red")
    answer = client.get("/api/recordings/r-c-red-1/audio", headers={"Range": header})
    assert answer.status_code == 206
    assert answer.content == AUDIO[lo:hi]
    assert answer.headers["content-range"] == f"bytes {lo}-{hi - 1}/{len(AUDIO)}"
    assert answer.headers["content-length"] == str(hi - lo)
    last = service.audit_rows("lead-red")[-1]
    assert last["action"] == "calls.play" and "192.0.2.7" in last["detail"] and header in last["detail"]
    assert (json.loads(last["detail"])["first_byte"], json.loads(last["detail"])["last_byte"]) == (lo, hi - 1)


def test_a_seek_offset_survives_the_audits_number_scrubber() -> None:
    """A byte position of 7+ digits is kept as an integer, which the scrubber leaves alone (in
    text it would be masked like a phone number: the audit could not say where a play started)."""
    from pbx_recorder.audit_trail import scrub

    assert scrub({"first_byte": 12345760, "last_byte": 99999999}) == {"first_byte": 12345760,
                                                                      "last_byte": 99999999}
    assert scrub({"bytes": "12345760-99999999"}) != {"bytes": "12345760-99999999"}


def test_a_range_past_the_end_is_416(service) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login("alice")
    answer = client.get("/api/recordings/r-c-red-1/audio", headers={"Range": f"bytes={len(AUDIO)}-"})
    assert answer.status_code == 416 and answer.headers["content-range"] == f"bytes */{len(AUDIO)}"


def test_agents_play_their_own_calls_but_never_download(service) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login("alice")
    assert client.get("/api/recordings/r-c-red-1/audio").status_code == 200
    refused = client.get("/api/recordings/r-c-red-1/audio?download=1")
    assert refused.status_code == 403 and not refused.content.startswith(AUDIO[:16])
    assert service.audit_rows("alice")[-1]["action"] == "denied:calls.download"
    lead, _ = service.login("lead-red")
    got = lead.get("/api/recordings/r-c-red-1/audio?download=1")
    assert got.status_code == 200 and got.content == AUDIO
    assert got.headers["content-disposition"] == 'attachment; filename="c-red-1_20270115T070000Z.wav"'
    assert service.audit_rows("lead-red")[-1]["action"] == "calls.download"


def test_the_download_name_keeps_only_safe_characters() -> None:
    assert download_name("../../etc/passwd\r\nX: y", NOW, "wav\"x") == \
        ".._.._etc_passwd__X__y_20270115T080000Z.wavx"
    assert download_name("c1", None, "") == "c1_unknown.bin"


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 10, None), ("", 10, None), ("items=0-1", 10, None), ("bytes=0-1,3-4", 10, None),
    ("bytes=5-2", 10, None), ("bytes=abc", 10, None), ("bytes=-", 10, None),
    ("bytes=2-4", 10, ByteRange(2, 5)), ("bytes=8-", 10, ByteRange(8, 10)),
    ("bytes=-20", 10, ByteRange(0, 10)),
])
def test_parse_range(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def _encrypted_recording(service, tmp_path):  # type: ignore[no-untyped-def]
    ring = KeyRing(tmp_path / "keys")
    ring.generate("k1")
    plain = os.urandom(10_000)
    blob = io.BytesIO()
    info = envelope.encrypt_stream(io.BytesIO(plain), blob, ring, "k1", "r-enc", chunk_size=1024,
                                   key_in_header=False, role="audio")
    key = "2027/01/c-red-2/r-enc.wav.pbxr"
    service.seeded.tier.put(key, io.BytesIO(blob.getvalue()), sha256=info.ciphertext_sha256)
    catalog = Catalog(service.seeded.db)
    catalog.upsert_recording({"recording_id": "r-enc", "call_id": "c-red-2", "state": "stored",
                              "tier": "hot", "storage_key": key, "size": len(blob.getvalue()),
                              "sha256": info.ciphertext_sha256,
                              "encrypted": 1, "key_id": info.key_id, "wrapped_key": info.wrapped_key,
                              "audio_sha256": info.plaintext_sha256, "format": "wav", "created_at": NOW})
    catalog.close()
    service.ctx.keyring = ring
    return plain, blob.getvalue(), ring


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=1023-1024", "bytes=5000-7047", "bytes=-1",
                                    "bytes=9216-", "bytes=3-3"])
def test_encrypted_audio_is_decrypted_per_range(service, tmp_path, header: str) -> None:  # type: ignore[no-untyped-def]
    plain, _, _ = _encrypted_recording(service, tmp_path)
    client, _ = service.login("lead-red")
    answer = client.get("/api/recordings/r-enc/audio", headers={"Range": header})
    wanted = parse_range(header, len(plain))
    assert wanted is not None and answer.status_code == 206
    assert answer.content == plain[wanted.start:wanted.stop]
    assert answer.headers["content-range"] == f"bytes {wanted.start}-{wanted.stop - 1}/{len(plain)}"
    whole = client.get("/api/recordings/r-enc/audio")
    assert whole.status_code == 200 and whole.content == plain


def test_decrypt_range_reads_only_from_the_segment_it_needs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ring = KeyRing(tmp_path / "keys")
    ring.generate("k1")
    plain = os.urandom(8 * 1024 + 5)
    blob = io.BytesIO()
    envelope.encrypt_stream(io.BytesIO(plain), blob, ring, "k1", "r1", chunk_size=1024)
    data = blob.getvalue()
    header = envelope.read_header(io.BytesIO(data))
    assert envelope.plaintext_size(header, len(data)) == len(plain)
    src = io.BytesIO(data)
    assert b"".join(envelope.decrypt_range(src, ring, 7000, 7100, expected_aad="r1")) == plain[7000:7100]
    assert src.tell() <= len(header.raw) + 8 * (1024 + 16)  # it sought past the first six segments
    # a flipped byte in a segment it reads is caught; a swapped-in segment of another index too
    bad = bytearray(data)
    bad[len(header.raw) + 6 * (1024 + 16) + 3] ^= 1
    with pytest.raises(CryptoError):
        b"".join(envelope.decrypt_range(io.BytesIO(bytes(bad)), ring, 7000, 7100, expected_aad="r1"))
    seg = 1024 + 16
    swapped = bytearray(data)
    s5, s6 = len(header.raw) + 5 * seg, len(header.raw) + 6 * seg
    swapped[s6:s6 + seg] = data[s5:s5 + seg]
    with pytest.raises(CryptoError):
        b"".join(envelope.decrypt_range(io.BytesIO(bytes(swapped)), ring, 7000, 7100, expected_aad="r1"))
    # cut at a segment boundary: the last segment read is not flagged final, refused
    with pytest.raises(CryptoError):
        b"".join(envelope.decrypt_range(io.BytesIO(data[:len(header.raw) + 7 * seg]), ring, 7000, 9000,
                                        expected_aad="r1"))
