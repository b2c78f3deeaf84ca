"""Schema 11's data step (``catalog migrate``, pbx_recorder.catalog.manifest_shrink): rows written
before keep their whole signed manifest; each is checked against its signature, then keeps only
the copy and hash the recorder writes now.  A copy that does not verify is kept whole and
reported by the step and by ``verify``, never dropped.  Both engines."""

from __future__ import annotations

import pytest
from tamper_support import Deployment, two_recorded_calls

from pbx_recorder.errors import IntegrityError
from pbx_recorder.recording import manifest_copy, stored_manifest
from pbx_recorder.recording.manifest import canonical_json

A, B = "n1_1.1_call001", "n1_2.2_call001"


@pytest.fixture()
def dep(tmp_path):
    d = two_recorded_calls(tmp_path)
    yield d
    d.close()


def _as_before_schema_11(dep: Deployment, rid: str, **edit: object) -> dict:
    """The row as the recorder wrote it before: the whole signed manifest, no hash."""
    signed = stored_manifest.read_signed(dep.catalog.get_recording(rid), dep.tier, dep.ring)
    whole = canonical_json({**signed, **edit}).decode()
    dep.sql(f"UPDATE recordings SET manifest = '{whole}', manifest_sha256 = '' WHERE recording_id = '{rid}'")
    return signed


def test_older_rows_shrink_once_checked_and_an_edited_copy_is_kept_and_reported(dep, capsys):
    signed = _as_before_schema_11(dep, A)
    _as_before_schema_11(dep, B, cdr={"src": "4900000000000", "dst": "4930123456"})  # edited copy
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == IntegrityError.exit_code, out
    assert "kept the copy and hash of 1 older rows' signed manifests" in out
    assert f"kept whole: {B}: the catalog's copy does not verify against its signature" in out
    row = dep.catalog.get_recording(A)
    assert row["manifest_sha256"] == manifest_copy.signed_sha256(signed)
    assert "cdr" not in row["manifest"] and row["manifest"]["files"] == signed["files"]
    assert dep.catalog.get_recording(B)["manifest_sha256"] == ""  # left whole, for the investigation
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code
    assert f"{B}: manifest signature does not verify" in out and f"MISMATCH {A}" not in out
    code, out = dep.cli(capsys, "catalog", "migrate")  # resumable: A is done, B is reported again
    assert "kept the copy and hash of 0 older rows' signed manifests" in out and B in out
