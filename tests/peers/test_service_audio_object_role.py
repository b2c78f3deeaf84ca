"""The player over HTTP (``GET /api/recordings/{id}/audio``) when a tier insider put the
ciphertext of one of the recording's legs in place of its main object: the envelope opens under
the recording's data key and names the recording, but its header says it is the ``leg:write``
object, so the player answers an error and never a byte of the leg's audio.  A version-1 object
(stored before roles existed) still plays."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.errors import ObjectRoleMismatch
from pbx_recorder.service import peaks as peak_store
from storage import envelope
from storage.keyring import KeyRing
from tests.peers.player_support import tone_blocks
from tests.peers.service_support import NOW

KEY = "2027/01/c-red-2/r-two.wav.pbxr"
V1_FIXTURE = Path(__file__).parent.parent / "fixtures" / "envelope_v1" / "one_recording.json"


@pytest.fixture
def service(seeded_service):  # type: ignore[no-untyped-def]
    return seeded_service


def _store(service, ring: KeyRing, blob: bytes, rid: str, wrapped: str, plain_sha: str) -> None:  # type: ignore[no-untyped-def]
    stored = service.seeded.tier.put(KEY, io.BytesIO(blob))
    catalog = Catalog(service.seeded.db)
    catalog.upsert_recording({"recording_id": rid, "call_id": "c-red-2", "state": "stored", "tier": "hot",
                              "storage_key": KEY, "size": len(blob), "sha256": stored.sha256, "encrypted": 1,
                              "key_id": "k1", "wrapped_key": wrapped, "audio_sha256": plain_sha,
                              "format": "wav", "created_at": NOW})
    catalog.close()
    service.ctx.keyring = ring


def _two_legs(tmp_path: Path) -> tuple[KeyRing, dict[str, tuple[bytes, bytes]], str]:
    ring = KeyRing(tmp_path / "keys")
    ring.generate("k1")
    objects: dict[str, tuple[bytes, bytes]] = {}
    wrapped = None
    for role in ("audio", "leg:write"):
        plain, out = os.urandom(6000), io.BytesIO()
        info = envelope.encrypt_stream(io.BytesIO(plain), out, ring, "k1", "r-two", chunk_size=1024,
                                       wrapped_key=wrapped, key_in_header=False, role=role)
        wrapped = info.wrapped_key
        objects[role] = (plain, out.getvalue())
    assert wrapped is not None
    return ring, objects, wrapped


@pytest.mark.parametrize("header", [None, "bytes=0-", "bytes=2048-4095"])
def test_a_leg_in_place_of_the_main_object_is_never_played(service, tmp_path, header) -> None:  # type: ignore[no-untyped-def]
    ring, objects, wrapped = _two_legs(tmp_path)
    main_plain, _ = objects["audio"]
    leg_plain, leg_blob = objects["leg:write"]
    _store(service, ring, leg_blob, "r-two", wrapped, hashlib.sha256(main_plain).hexdigest())
    client, _ = service.login("lead-red")
    answer = client.get("/api/recordings/r-two/audio", headers={"Range": header} if header else {})
    assert (answer.status_code, answer.json()) == (500, {"error": "recording unreadable"}), answer.text
    assert leg_plain[:64] not in answer.content and leg_plain[2048:2112] not in answer.content


def test_the_main_object_plays(service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ring, objects, wrapped = _two_legs(tmp_path)
    main_plain, main_blob = objects["audio"]
    _store(service, ring, main_blob, "r-two", wrapped, hashlib.sha256(main_plain).hexdigest())
    client, _ = service.login("lead-red")
    answer = client.get("/api/recordings/r-two/audio", headers={"Range": "bytes=2048-4095"})
    assert answer.status_code == 206 and answer.content == main_plain[2048:4096]


def test_a_version_1_object_stored_before_roles_still_plays(service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(V1_FIXTURE.read_text())
    keys = tmp_path / "v1-keys"
    keys.mkdir(mode=0o700)
    (keys / "k1.key").write_bytes(bytes.fromhex(doc["master_key_hex"]))
    (keys / "k1.key").chmod(0o600)
    blob = base64.b64decode(doc["objects"]["audio"])
    _store(service, KeyRing(keys), blob, doc["recording_id"], doc["wrapped_key"],
           doc["plaintext"]["audio"]["sha256"])
    client, _ = service.login("lead-red")
    answer = client.get(f"/api/recordings/{doc['recording_id']}/audio")
    assert answer.status_code == 200, answer.text
    assert hashlib.sha256(answer.content).hexdigest() == doc["plaintext"]["audio"]["sha256"]


def _encrypted_dual(service, tmp_path: Path, *, swap_legs: bool) -> None:  # type: ignore[no-untyped-def]
    """A dual recording as the shipper stores it encrypted: the mix and the two legs under one
    data key, each sealed with its role; ``swap_legs`` puts the read leg's ciphertext in the write
    leg's place (what a tier insider can do)."""
    ring = KeyRing(tmp_path / "keys")
    ring.generate("k1")
    wrapped, objects, blobs = None, [], {}
    for role, start in (("audio", 0), ("leg:read", 4), ("leg:write", 99)):
        out = io.BytesIO()
        info = envelope.encrypt_stream(io.BytesIO(b"".join(tone_blocks(8, 1, caller_from=start))), out, ring,
                                       "k1", "r-dual2", wrapped_key=wrapped, key_in_header=False, role=role)
        wrapped = info.wrapped_key
        key = "2027/01/c-red-2/r-dual2" + ("" if role == "audio" else "-" + role.split(":")[1]) + ".wav.pbxr"
        blobs[role] = (key, out.getvalue())
        objects.append({"role": role, "key": key, "sha256": info.ciphertext_sha256})
    if swap_legs:
        blobs["leg:write"] = (blobs["leg:write"][0], blobs["leg:read"][1])
    for key, blob in blobs.values():
        service.seeded.tier.put(key, io.BytesIO(blob))
    main_key, main_blob = blobs["audio"]
    catalog = Catalog(service.seeded.db)
    catalog.upsert_recording({"recording_id": "r-dual2", "call_id": "c-red-2", "state": "stored",
                              "tier": "hot", "storage_key": main_key, "size": len(main_blob),
                              "sha256": objects[0]["sha256"], "encrypted": 1, "key_id": "k1",
                              "wrapped_key": wrapped, "format": "wav", "mode": "dual", "duration_s": 8.0,
                              "objects": json.dumps(objects), "created_at": NOW})
    catalog.close()
    service.ctx.keyring = ring


def test_an_encrypted_dual_recordings_legs_are_read_as_their_roles(service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _encrypted_dual(service, tmp_path, swap_legs=False)
    client, _ = service.login("lead-red")
    body = client.get("/api/recordings/r-dual2/peaks").json()
    read, write = body["channel_peaks"]
    assert max(read[:40]) == 0 and min(read[40:]) >= 45 and max(write) == 0


def test_a_leg_swapped_for_the_other_leg_gives_no_waveform(service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _encrypted_dual(service, tmp_path, swap_legs=True)
    catalog = Catalog(service.seeded.db)
    rec = dict(catalog.get_recording("r-dual2") or {})
    catalog.close()
    with pytest.raises(ObjectRoleMismatch, match="'leg:read' object, not its 'leg:write' object"):
        peak_store.compute(rec, service.seeded.tier, service.ctx.keyring)
