"""The audio export hands the recipient each recording's signed manifest and its signature: since
schema 11 the stored manifest (the catalog keeps a copy of what display reads), decrypted from the
recording's envelope; an export whose manifest cannot be read fails rather than ship an unsigned
or partial one."""

from __future__ import annotations

import io
import json

import pytest
import pyzipper
from tamper_support import CALLER, Deployment

from pbx_recorder import audio_access
from pbx_recorder.exports.audio_job import ExportFailed, export
from pbx_recorder.recording.signing import verify_manifest

RID = "n1_1.1_call001"


def _export(dep: Deployment) -> dict:
    rec = dep.catalog.get_recording(RID)
    call = dep.catalog.get_call("n1_1.1")
    out = io.BytesIO()
    export([(call, rec, audio_access.plaintext_size(rec, dep.tier))], [], {"hot": dep.tier}, dep.ring, out,
           "pw", lambda _n: None, {})
    with pyzipper.AESZipFile(io.BytesIO(out.getvalue())) as zf:
        zf.setpassword(b"pw")
        return json.loads(zf.read("manifest.json"))


@pytest.mark.parametrize("encrypted", [True, False])
def test_the_recipient_gets_the_signed_manifest(tmp_path, encrypted: bool) -> None:
    dep = Deployment(tmp_path, encrypted=encrypted)
    dep.call("n1_1.1")
    dep.record("n1_1.1")
    [entry] = _export(dep)["files"]
    assert entry["manifest"]["recording_id"] == RID and entry["manifest"]["cdr"]["src"] == CALLER
    assert verify_manifest(entry["manifest"], entry["signature"], dep.sign_key.public_key())
    dep.sidecar_of(RID).unlink()
    with pytest.raises(ExportFailed, match="signed manifest"):
        _export(dep)
    dep.close()
