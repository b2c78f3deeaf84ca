"""README "Security", open until now: "the envelope's associated data names the recording, not
which of its objects".  A two-leg recording shipped by the real Shipper (encryption, signing,
ledger); an insider with write access to the tier puts one of its objects' ciphertext in place
of another.  Every object is now sealed with its role: the player refuses the swap before any
audio, ``verify --deep`` names it, plain ``verify`` still sees it by the ledger's hashes."""

from __future__ import annotations

import io
import shutil

import pytest
from tamper_support import NOW, Deployment

from pbx_recorder import audio_access
from pbx_recorder.errors import IntegrityError, ObjectRoleMismatch
from pbx_recorder.recording import ledger
from pbx_recorder.recording.recording_objects import objects_of
from storage import envelope

CALL = "n1_7.7"
RID = f"{CALL}_call001"


@pytest.fixture()
def dep(tmp_path):
    d = Deployment(tmp_path)
    d.call(CALL)
    assert d.record_two_legs(CALL) == RID
    yield d
    d.close()


def _path_of(dep: Deployment, role: str):
    row = dep.catalog.get_recording(RID)
    return dep.tier.root / next(o.key for o in objects_of(row) if o.role == role)


def test_every_object_is_sealed_with_the_role_the_catalog_lists(dep, capsys):
    row = dep.catalog.get_recording(RID)
    roles = {o.role: envelope.read_header(io.BytesIO((dep.tier.root / o.key).read_bytes())).role
             for o in objects_of(row)}
    assert roles == {"audio": "audio", "leg:write": "leg:write", "manifest": "manifest"}
    assert dep.cli(capsys, "verify", "--deep")[0] == 0


def test_a_legs_ciphertext_in_place_of_the_main_object_is_never_played(dep):
    main = _path_of(dep, "audio")
    shutil.copyfile(_path_of(dep, "leg:write"), main)
    rec = dep.catalog.get_recording(RID)
    with pytest.raises(ObjectRoleMismatch, match="'leg:write' object, not its 'audio' object"):
        audio_access.plaintext_size(rec, dep.tier)  # what the player asks first
    released: list[bytes] = []
    with pytest.raises(ObjectRoleMismatch):
        for block in audio_access.plaintext_range(rec, dep.tier, dep.ring, 0, 10_000):
            released.append(block)
    assert released == []
    out = dep.root / "export.wav"
    conn = ledger.connection_of(dep.catalog)
    with pytest.raises(ObjectRoleMismatch):
        audio_access.open_plaintext(conn, rec, dep.tier, dep.ring, actor="root", role="admin", dst=out,
                                    now=NOW)
    assert not out.exists()


def test_verify_reports_the_swap_as_tampering(dep, capsys):
    shutil.copyfile(_path_of(dep, "leg:write"), _path_of(dep, "audio"))
    code, out = dep.cli(capsys, "verify", "--deep")
    assert code == IntegrityError.exit_code, out
    assert f"{RID}: decryption failed: encrypted object is the recording's 'leg:write' object" in out
    code, out = dep.cli(capsys, "verify")  # the ledger's stored-bytes hash, without decrypting
    assert code == IntegrityError.exit_code and f"{RID}: stored bytes hash differs" in out, out


def test_the_main_object_in_place_of_a_leg_is_named_by_deep_verify(dep, capsys):
    shutil.copyfile(_path_of(dep, "audio"), _path_of(dep, "leg:write"))
    code, out = dep.cli(capsys, "verify", "--deep")
    assert code == IntegrityError.exit_code, out
    assert "leg:write object decryption failed: encrypted object is the recording's 'audio' object" in out
    assert "leg:write stored bytes hash differs" in out
