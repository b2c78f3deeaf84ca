"""Batch audio export: the calls' recordings decrypted into one AES ZIP with a manifest the
recipient verifies; scope; cold recordings pending; a tampered recording fails the export."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_recorder.lifecycle.journal import open_catalog
from tests.peers.exports_support import export_service, finished, start, unzip
from tests.peers.service_support import Service


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = export_service(tmp_path)
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _archive(svc: Service, user: str, **body: object) -> tuple[dict, dict[str, bytes]]:
    client, csrf = svc.login(user)
    answer = start(client, csrf, "audio", **body)
    assert answer.status_code == 202, answer.text
    job = finished(client, answer.json()["id"])
    assert job["state"] == "done", job
    return job, unzip(client.get(f"/api/exports/{job['id']}/file").content)


def test_recordings_and_a_manifest_that_verifies(svc: Service) -> None:
    job, files = _archive(svc, "root-admin", call_ids=["c-red-1", "c-blue-2"])
    manifest = json.loads(files.pop("manifest.json"))
    assert sorted(files) == ["c-blue-2_20270115T040000Z.wav", "c-red-1_20270115T070000Z.wav"]
    for entry in manifest["files"]:
        data = files[entry["file"]]
        assert data == svc.seeded.audio[entry["recording_id"]]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] == entry["expected_sha256"]
    assert manifest["pending"] == [] and "sha256" in manifest["verify"]
    assert job["rows_total"] == job["rows_done"] == sum(len(d) for d in files.values())  # progress in bytes


def test_the_filter_selects_within_the_scope(svc: Service) -> None:
    _, files = _archive(svc, "lead-red")
    assert sorted(n.split("_")[0] for n in files if n != "manifest.json") == ["c-red-1", "c-red-2"]


def test_a_call_outside_the_scope_is_refused_like_an_absent_one(svc: Service) -> None:
    client, csrf = svc.login("lead-red")
    assert start(client, csrf, "audio", call_ids=["c-red-1", "c-blue-1"]).status_code == 404
    assert start(client, csrf, "audio", call_ids=["no-such"]).status_code == 404
    assert start(client, csrf, "audio", call_ids=[]).status_code == 400
    denied = [r for r in svc.audit_rows("lead-red") if r["action"] == "denied:calls.export"]
    assert [r["target"] for r in denied] == ["c-blue-1", "no-such"]


def test_cold_recordings_are_pending(svc: Service) -> None:
    conn = open_catalog(svc.seeded.db)
    conn.execute("UPDATE recordings SET storage_class = 'GLACIER' WHERE recording_id = 'r-c-red-2'")
    conn.commit()
    conn.close()
    job, files = _archive(svc, "lead-red")
    manifest = json.loads(files["manifest.json"])
    assert [p["recording_id"] for p in manifest["pending"]] == ["r-c-red-2"]
    assert [p["recording_id"] for p in job["pending"]] == ["r-c-red-2"]
    assert [f["recording_id"] for f in manifest["files"]] == ["r-c-red-1"]
    assert manifest["pending"][0]["reason"] == "cold storage"


def test_a_tampered_recording_fails_the_export(svc: Service) -> None:
    target = next((svc.seeded.db.parent / "hot").rglob("r-c-red-1.wav"))
    target.write_bytes(b"tampered" + target.read_bytes()[8:])
    client, csrf = svc.login("root-admin")
    job = finished(client, start(client, csrf, "audio", call_ids=["c-red-1"]).json()["id"])
    assert job["state"] == "failed" and "r-c-red-1" in job["error"]
    assert not list((svc.seeded.db.parent / "exports").iterdir())  # nothing half-written left


def test_four_eyes_calls_stay_out_without_a_grant(tmp_path: Path) -> None:
    from pbx_recorder.config.model import FourEyesConfig
    from tests.peers.service_support import make_service

    svc = make_service(tmp_path, export_dir=tmp_path / "exports", four_eyes=FourEyesConfig(tags=("vip",)))
    try:
        job, files = _archive(svc, "lead-red")  # every seeded call carries the tag vip
        manifest = json.loads(files.pop("manifest.json"))
        assert files == {} and manifest["files"] == []
        assert sorted(p["recording_id"] for p in job["pending"]) == ["r-c-red-1", "r-c-red-2"]
        assert {p["reason"] for p in job["pending"]} == {"needs a replay grant (four-eyes)"}
        denied = [r["target"] for r in svc.audit_rows("lead-red") if r["action"] == "denied:calls.download"]
        assert sorted(denied) == ["c-red-1", "c-red-2"]
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]


def test_each_exported_call_has_its_own_audit_row_on_its_access_list(svc: Service) -> None:
    """An auditor asking who took a copy of a call's audio finds the export under the call's id
    (every export row used to target the job only) and the done row names every recording."""
    from pbx_recorder.web.call_details import access_of

    job, _ = _archive(svc, "root-admin", call_ids=["c-red-1", "c-blue-2"])
    items = {r["target"]: json.loads(r["detail"]) for r in svc.audit_rows("root-admin")
             if r["action"] == "calls.export.item"}
    assert sorted(items) == ["c-blue-2", "c-red-1"]
    assert items["c-red-1"]["job"] == job["id"] and items["c-red-1"]["recordings"] == ["r-c-red-1"]
    listed = access_of(svc.ctx, "c-red-1", ["r-c-red-1"])  # type: ignore[arg-type]
    assert [(a["actor"], a["action"]) for a in listed if a["action"] == "calls.export.item"] == [
        ("root-admin", "calls.export.item")]
    svc.ctx.release()  # type: ignore[attr-defined]
    done = [json.loads(r["detail"]) for r in svc.audit_rows("root-admin")
            if r["action"] == "calls.export.done"]
    assert sorted(done[-1]["recordings"]) == ["r-c-blue-2", "r-c-red-1"]


def _link_red_1_with_blue_2(svc: Service) -> None:
    """r-c-red-1's signed manifest (as a catalog before schema 11 kept it) names c-blue-2 and c-red-2
    as the calls a transfer joined c-red-1 with."""
    links = [{"kind": "replaces", "call_id": "c-blue-2"}, {"kind": "replaces", "call_id": "c-red-2"}]
    signed = {"recording_id": "r-c-red-1", "call_id": "c-red-1", "files": [],
              "consent": {"decision": "granted", "transfer": links}}
    conn = open_catalog(svc.seeded.db)
    conn.execute("UPDATE recordings SET manifest = ?, signature = 'c2lnbmVk'"
                 " WHERE recording_id = 'r-c-red-1'", (json.dumps(signed),))
    conn.commit()
    conn.close()


def test_an_export_names_no_linked_call_outside_the_exporters_scope(svc: Service) -> None:
    _link_red_1_with_blue_2(svc)
    _, files = _archive(svc, "lead-red", call_ids=["c-red-1"])
    assert b"c-blue-2" not in files["manifest.json"]
    entry = json.loads(files["manifest.json"])["files"][0]
    assert [link["call_id"] for link in entry["manifest"]["consent"]["transfer"]] == ["c-red-2"]
    assert entry["signature"] == "" and "outside the exporter's row scope" in entry["signature_withheld"]
    assert entry["sha256"] == entry["expected_sha256"]  # the audio is still checked
    done = [json.loads(r["detail"]) for r in svc.audit_rows("lead-red") if r["action"] == "calls.export.done"]
    assert done[-1]["signature_withheld"] == ["r-c-red-1"]
    # a role that sees every call gets the signed manifest and its signature
    _, files = _archive(svc, "root-admin", call_ids=["c-red-1"])
    entry = json.loads(files["manifest.json"])["files"][0]
    assert entry["signature"] == "c2lnbmVk" and "signature_withheld" not in entry
    assert [link["call_id"] for link in entry["manifest"]["consent"]["transfer"]] == ["c-blue-2", "c-red-2"]
