"""Schema 11: the catalog keeps a copy of what display reads and the signed manifest's hash; the
signed manifest is the object stored beside the audio.  What ``verify`` detected when the catalog
held the whole manifest it still detects, now by reading the stored one (pbx_recorder.recording.manifest_copy,
pbx_recorder.recording.stored_manifest).  Both engines (the attacks' SQL is plain)."""

from __future__ import annotations

import hashlib
import json

import pytest
from tamper_support import CALLER, Deployment

from pbx_recorder.catalog.protected_rows import CLEAR_MANIFEST_FIELDS
from pbx_recorder.errors import IntegrityError, ObjectNotRestored
from pbx_recorder.recording import manifest_copy, stored_manifest
from pbx_recorder.recording.manifest import canonical_json
from pbx_recorder.recording.signing import verify_manifest
from storage.local import LocalTier

RID = "n1_1.1_call001"


@pytest.fixture(params=["sealed", "clear"])
def dep(tmp_path, request):
    d = Deployment(tmp_path, encrypted=request.param == "sealed")
    d.call("n1_1.1")
    d.record("n1_1.1")
    yield d
    d.close()


def _mismatches(dep, capsys) -> str:
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code, out
    return out


def test_the_catalog_keeps_a_copy_and_the_hash_of_what_was_signed(dep, capsys):
    row = dep.catalog.get_recording(RID)
    signed = stored_manifest.read_signed(row, dep.tier, dep.ring)
    assert signed["recording_id"] == RID and signed["cdr"]["src"] == CALLER
    assert row["manifest_sha256"] == hashlib.sha256(canonical_json(signed)).hexdigest()
    assert verify_manifest(signed, row["signature"], dep.sign_key.public_key())
    # this catalog's numbers are not protected: it keeps the numbers erasure finds a call by
    assert row["manifest"] == manifest_copy.catalog_copy(signed, CLEAR_MANIFEST_FIELDS)[0]
    assert set(row["manifest"]) <= {*manifest_copy.COPY_KEYS, "processing", *CLEAR_MANIFEST_FIELDS}
    raw = dep.catalog.connection().execute("SELECT manifest FROM recordings").fetchone()[0]
    assert len(raw) < len(canonical_json(signed))
    code, out = dep.cli(capsys, "verify")
    assert code == 0 and "status ok" in out, out


def test_an_edited_copy_is_caught(dep, capsys):
    copy = dict(dep.catalog.get_recording(RID)["manifest"])
    copy["pauses"] = [[1772618350.0, 1772618355.0]]  # hides what the recorder paused, or invents it
    dep.sql(f"UPDATE recordings SET manifest = '{json.dumps(copy)}' WHERE recording_id = '{RID}'")
    assert f"{RID}: catalog copy of the manifest differs from the signed one" in _mismatches(dep, capsys)


def test_edited_row_fields_are_caught_against_the_stored_manifest(dep, capsys):
    sealed = bool(dep.catalog.get_recording(RID)["encrypted"])
    dep.sql(f"UPDATE recordings SET encrypted = 1 - encrypted WHERE recording_id = '{RID}'")
    out = _mismatches(dep, capsys)
    assert f"{RID}: row encryption flag differs from the ledger" in out
    if sealed:  # a clear manifest says nothing of encryption (as before schema 11)
        assert f"{RID}: row encryption flag differs from its signed manifest" in out


def test_an_edited_hash_or_signature_is_caught(dep, capsys):
    dep.sql(f"UPDATE recordings SET manifest_sha256 = '{'0' * 64}' WHERE recording_id = '{RID}'")
    assert f"{RID}: stored manifest differs from the catalog's hash of it" in _mismatches(dep, capsys)
    row = dep.catalog.get_recording(RID)
    good = manifest_copy.signed_sha256(stored_manifest.read_signed(row, dep.tier, dep.ring))
    other = "A" * 86 + "=="
    dep.sql(f"UPDATE recordings SET manifest_sha256 = '{good}', signature = '{other}' "
            f"WHERE recording_id = '{RID}'")
    assert f"{RID}: manifest signature does not verify" in _mismatches(dep, capsys)


def test_a_deleted_manifest_object_is_caught(dep, capsys):
    dep.sidecar_of(RID).unlink()
    out = _mismatches(dep, capsys)
    assert f"{RID}: manifest object missing" in out and f"{RID}: signed manifest not readable" in out


def test_a_rewritten_stored_manifest_is_caught_even_with_the_row_adjusted(tmp_path, capsys):
    """Someone with write access to the clear sidecar, the catalog and no signing key: the CDR's
    number changed, the row's hash of it and its objects list rewritten to match."""
    dep = Deployment(tmp_path, encrypted=False)
    dep.call("n1_1.1")
    dep.record("n1_1.1")
    path = dep.sidecar_of(RID)
    forged = json.loads(path.read_bytes())
    forged["cdr"]["src"] = "4900000000000"
    path.write_bytes(canonical_json(forged))
    objects = dep.catalog.get_recording(RID)["objects"]
    for o in objects:
        if o["role"] == "manifest":
            o["sha256"], o["size"] = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size
    out = _mismatches(dep, capsys)
    assert f"{RID}: stored manifest differs from the catalog's hash of it" in out
    dep.sql(f"UPDATE recordings SET objects = '{json.dumps(objects)}', "
            f"manifest_sha256 = '{manifest_copy.signed_sha256(forged)}' WHERE recording_id = '{RID}'")
    out = _mismatches(dep, capsys)
    assert f"{RID}: manifest signature does not verify" in out
    dep.close()


def test_a_row_written_before_schema_11_is_verified_from_its_own_copy(dep, capsys):
    """An upgraded catalog: the row holds the whole signed manifest and no hash (as before)."""
    row = dep.catalog.get_recording(RID)
    signed = stored_manifest.read_signed(row, dep.tier, dep.ring)
    whole = canonical_json(signed).decode()
    dep.sql(f"UPDATE recordings SET manifest = '{whole}', manifest_sha256 = '' WHERE recording_id = '{RID}'")
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out
    signed["call_id"] = "n1_9.9"
    edited = canonical_json(signed).decode()
    dep.sql(f"UPDATE recordings SET manifest = '{edited}' WHERE recording_id = '{RID}'")
    out = _mismatches(dep, capsys)
    assert f"{RID}: row call_id differs from its signed manifest" in out
    assert f"{RID}: manifest signature does not verify" in out


def test_a_recording_moved_to_another_call_is_caught_with_its_manifest_archived(dep, capsys, monkeypatch):
    dep.call("n1_2.2", caller="4917000000000")
    dep.sql(f"UPDATE recordings SET call_id = 'n1_2.2' WHERE recording_id = '{RID}'")
    out = _mismatches(dep, capsys)
    assert f"{RID}: row call_id differs from its signed manifest" in out
    assert f"{RID}: row call_id differs from its storage key" in out
    manifest_key = dep.sidecar_of(RID).relative_to(dep.tier.root).as_posix()
    real_open = LocalTier.open

    def archived(tier: LocalTier, key: str):  # the manifest object in an archive class, not restored
        if key == manifest_key:
            raise ObjectNotRestored(f"{key} is archived")
        return real_open(tier, key)

    monkeypatch.setattr(LocalTier, "open", archived)
    out = _mismatches(dep, capsys)
    assert f"{RID}: manifest in an archive class, not restored: signature not checked" in out
    assert f"{RID}: row call_id differs from its storage key" in out
