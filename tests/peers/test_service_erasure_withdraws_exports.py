"""An erasure withdraws the exports made before it: an audio export holds the subject's decrypted
audio (and a list may hold full numbers), so its download is refused from then on, its file goes
at the service's next sweep, and a job still running then never becomes ``done``; the receipt
names the exports withdrawn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_recorder.exports import jobs
from tests.peers.disposal_support import disposal_service
from tests.peers.exports_support import finished, start
from tests.peers.service_support import Service

NUMBER = "+8613812345678"  # the caller of c-red-1 and c-blue-2


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = disposal_service(tmp_path, export_dir=tmp_path / "exports")
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _erase(svc: Service) -> dict:
    counsel, csrf = svc.login("counsel")
    headers = {"X-CSRF-Token": csrf}
    opened = counsel.post("/api/erasure", json={"number": NUMBER}, headers=headers)
    assert opened.status_code == 201, opened.text
    done = counsel.post(f"/api/erasure/{opened.json()['request_id']}/execute", json={"number": NUMBER},
                        headers=headers)
    assert done.status_code == 200, done.text
    return dict(done.json())


def test_a_finished_export_is_withdrawn_by_an_erasure(svc: Service, tmp_path: Path) -> None:
    admin, csrf = svc.login("root-admin")
    answer = start(admin, csrf, "audio", call_ids=["c-red-1"])
    assert answer.status_code == 202, answer.text
    job = finished(admin, answer.json()["id"])
    assert job["state"] == "done" and admin.get(f"/api/exports/{job['id']}/file").status_code == 200
    assert (tmp_path / "exports" / f"{job['id']}.zip").exists()
    receipt = _erase(svc)
    assert receipt["exports_withdrawn"] == [job["id"]]
    assert admin.get(f"/api/exports/{job['id']}/file").status_code != 200  # before: 200, the audio
    shown = admin.get(f"/api/exports/{job['id']}").json()
    assert shown["state"] == "failed" and "withdrawn" in shown["error"]
    assert not (tmp_path / "exports" / f"{job['id']}.zip").exists()  # that request swept the folder


def test_an_export_running_during_an_erasure_never_becomes_done(svc: Service) -> None:
    conn = svc.ctx.catalog.connection()  # type: ignore[attr-defined]
    job_id = jobs.new_id()
    jobs.create(conn, job_id, "root-admin", "audio", {}, [], f"{job_id}.zip", svc.clock.now)
    jobs.start(conn, job_id, 1)
    _erase(svc)  # while it runs
    with pytest.raises(jobs.Withdrawn):
        jobs.finish(conn, job_id, done=1, size=1, sha256="0" * 64, file_name=f"{job_id}.zip",
                    now=svc.clock.now, keep_s=jobs.KEEP_S)
    state = conn.execute("SELECT state FROM export_jobs WHERE id = ?", (job_id,)).fetchone()[0]
    assert state == "failed"


def test_an_export_made_after_the_erasure_stays(svc: Service) -> None:
    _erase(svc)
    svc.clock.now += 1
    admin, csrf = svc.login("root-admin")
    answer = start(admin, csrf, "audio", call_ids=["c-red-2"])  # another caller's call
    assert answer.status_code == 202, answer.text
    job = finished(admin, answer.json()["id"])
    assert job["state"] == "done" and admin.get(f"/api/exports/{job['id']}/file").status_code == 200


def test_a_quiet_service_sweeps_the_withdrawn_file_itself(svc: Service, tmp_path: Path, monkeypatch) -> None:
    """No request to the export API after the erasure: the service's own sweep removes the file."""
    import time

    from starlette.testclient import TestClient

    from pbx_recorder.exports import runner

    admin, csrf = svc.login("root-admin")
    job = finished(admin, start(admin, csrf, "audio", call_ids=["c-red-1"]).json()["id"])
    archive = tmp_path / "exports" / f"{job['id']}.zip"
    assert archive.exists()
    _erase(svc)
    monkeypatch.setattr(runner, "SWEEP_EVERY_S", 0.05)
    with TestClient(admin.app):  # the lifespan runs: the sweep task with it
        deadline = time.monotonic() + 20
        while archive.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not archive.exists()
