"""Exports of the search result (CSV / XLSX in an AES ZIP): who may, which rows, masking, formula
neutralising, the password, ownership of jobs, expiry, and a crash mid-job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyzipper import BadZipFile

from pbx_recorder.exports import jobs, store
from tests.peers.exports_support import (
    HOSTILE_NAMES,
    PASSWORD,
    csv_rows,
    export_service,
    finished,
    seed_calls,
    start,
    unzip,
    xlsx_strings,
)
from tests.peers.service_support import USERS, Service

EXPORTERS = {"root-admin", "lead-red", "counsel"}


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = export_service(tmp_path)
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _done(svc: Service, user: str, kind: str = "csv", query: str = "", **body: object) -> tuple[dict, dict]:
    client, csrf = svc.login(user)
    answer = start(client, csrf, kind, query, **body)
    assert answer.status_code == 202, answer.text
    job = finished(client, answer.json()["id"])
    assert job["state"] == "done", job
    data = client.get(f"/api/exports/{job['id']}/file")
    assert data.status_code == 200
    return job, unzip(data.content)


@pytest.mark.parametrize("user", sorted(USERS))
def test_every_role_on_every_export_endpoint(svc: Service, user: str) -> None:
    client, csrf = svc.login(user)
    created = start(client, csrf)
    listed = client.get("/api/exports")
    page = client.get("/exports", follow_redirects=False)
    if user in EXPORTERS:
        assert created.status_code == 202, created.text
        job = finished(client, created.json()["id"])
        assert listed.status_code == 200 and page.status_code == 200
        assert client.get(f"/api/exports/{job['id']}").status_code == 200
        assert client.get(f"/api/exports/{job['id']}/file").status_code == 200
        return
    assert (created.status_code, listed.status_code, page.status_code) == (403, 403, 403)
    assert client.get("/api/exports/0123abcd/file").status_code == 403
    denied = [r for r in svc.audit_rows(user) if r["action"] == "denied:calls.export"]
    assert len(denied) >= 4  # create, list, page, file: each refusal audited


def test_a_write_without_the_csrf_token_is_refused_and_audited(svc: Service) -> None:
    client, _ = svc.login("root-admin")
    answer = client.post("/api/exports", json={"kind": "csv", "password": PASSWORD})
    assert answer.status_code == 403
    assert any(r["action"] == "denied:csrf" and r["target"] == "/api/exports"
               for r in svc.audit_rows("root-admin"))
    assert jobs.listed(svc.ctx.catalog.connection(), "root-admin") == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("body", "status"), [
    ({"fields": ["call_id", "password_hash"]}, 400), ({"fields": ["call_id", "call_id"]}, 400),
    ({"fields": "call_id"}, 400), ({"kind": "pdf"}, 400), ({"password": "short"}, 400),
    ({"password": 12345678901234}, 400), ({"unmasked": True}, 202)])
def test_the_request_is_checked(svc: Service, body: dict, status: int) -> None:
    client, csrf = svc.login("lead-red")
    answer = start(client, csrf, **{"kind": "csv", **body})  # type: ignore[arg-type]
    assert answer.status_code == status, answer.text
    if status == 202:
        finished(client, answer.json()["id"])


def test_rows_follow_the_row_scope_and_the_filter(svc: Service) -> None:
    _, lead = _done(svc, "lead-red", fields=["call_id", "agent"])
    rows = csv_rows(lead["calls.csv"])
    assert rows[0] == ["call_id", "agent"]
    assert sorted(r[0] for r in rows[1:]) == ["c-red-1", "c-red-2"]  # team red only
    _, admin = _done(svc, "root-admin", fields=["call_id"])
    every = sorted(r[0] for r in csv_rows(admin["calls.csv"])[1:])
    assert every == ["c-blue-1", "c-blue-2", "c-red-1", "c-red-2"]
    job, filtered = _done(svc, "root-admin", query="agent=carol", fields=["call_id"])
    assert sorted(r[0] for r in csv_rows(filtered["calls.csv"])[1:]) == ["c-blue-1", "c-blue-2"]
    assert job["filter"] == {"agent": "carol"} and job["rows_total"] == 2 and job["rows_done"] == 2


def test_numbers_are_masked_as_the_search_page_masks_them(svc: Service) -> None:
    client, _ = svc.login("lead-red")
    shown = {c["call_id"]: c["caller_num"] for c in client.get("/api/calls").json()["calls"]}
    _, files = _done(svc, "lead-red", fields=["call_id", "caller_num"])
    exported = {r[0]: r[1] for r in csv_rows(files["calls.csv"])[1:]}
    assert exported == {k: "'" + v for k, v in shown.items()}  # masked alike; '+' is a formula start
    assert "+8613812345678" not in files["calls.csv"].decode("utf-8-sig")
    assert all("*" in v for v in exported.values()), exported


def test_unmasked_needs_the_tick_and_is_audited(svc: Service) -> None:
    job, files = _done(svc, "lead-red", fields=["call_id", "caller_num"], unmasked=True)
    exported = dict(csv_rows(files["calls.csv"])[1:])
    assert exported["c-red-1"] == "'+8613812345678"
    actions = [r["action"] for r in svc.audit_rows("lead-red")]
    assert "calls.export.unmask" in actions


def test_the_export_and_its_download_are_audited(svc: Service) -> None:
    client, csrf = svc.login("root-admin")
    job_id = start(client, csrf, "csv", "caller=%2B8613812345678&status=answered",
                   fields=["call_id", "caller_num"]).json()["id"]
    job = finished(client, job_id)
    data = client.get(f"/api/exports/{job_id}/file").content
    import hashlib

    rows = {r["action"]: json.loads(r["detail"]) for r in svc.audit_rows("root-admin")
            if r["target"] == job_id}
    asked = rows["calls.export"]
    assert asked["kind"] == "csv" and asked["fields"] == ["call_id", "caller_num"]
    assert asked["filter"]["status"] == "answered" and "12345678" not in json.dumps(asked["filter"])
    assert rows["calls.export.done"]["rows"] == 2
    assert rows["calls.export.download"]["sha256"] == hashlib.sha256(data).hexdigest() == job["sha256"]
    text = json.dumps(svc.audit_rows("root-admin"))
    assert PASSWORD not in text  # the password is never audited
    stored = svc.ctx.catalog.connection().execute("SELECT * FROM export_jobs").fetchall()  # type: ignore[attr-defined]
    assert PASSWORD not in repr(stored) and "12345678" not in repr(stored)


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_hostile_caller_names_are_neutralised(svc: Service, kind: str) -> None:
    seed_calls(svc.seeded.db, len(HOSTILE_NAMES), agent="alice", names=HOSTILE_NAMES)
    for unmasked in (False, True):
        _, files = _done(svc, "lead-red", kind, "tag=bulk", fields=["call_id", "caller_name"],
                         unmasked=unmasked)
        if kind == "csv":
            names = [r[1] for r in csv_rows(files["calls.csv"])[1:]]
        else:
            names = xlsx_strings(files["calls.xlsx"])[2:][1::2]
        assert sorted(names) == sorted("'" + n for n in HOSTILE_NAMES), names


def test_the_file_opens_only_with_the_password(svc: Service) -> None:
    client, csrf = svc.login("counsel")
    job_id = start(client, csrf, "xlsx", fields=["call_id", "caller_num", "duration"]).json()["id"]
    finished(client, job_id)
    data = client.get(f"/api/exports/{job_id}/file").content
    with pytest.raises((RuntimeError, BadZipFile)):
        unzip(data, "the wrong password!")
    strings = xlsx_strings(unzip(data)["calls.xlsx"])
    assert strings[:3] == ["call_id", "caller_num", "duration"]
    assert "+8613812345678" not in strings and "c-blue-1" in strings


def test_another_users_job_answers_404_and_is_audited(svc: Service) -> None:
    owner, csrf = svc.login("root-admin")
    job_id = start(owner, csrf).json()["id"]
    finished(owner, job_id)
    other, _ = svc.login("counsel")
    assert other.get(f"/api/exports/{job_id}").status_code == 404
    assert other.get(f"/api/exports/{job_id}/file").status_code == 404
    assert other.get("/api/exports/ffffffffffffffff/file").status_code == 404
    assert [j["id"] for j in other.get("/api/exports").json()["jobs"]] == []
    reasons = [json.loads(r["detail"])["reason"] for r in svc.audit_rows("counsel")
               if r["action"] in ("denied:calls.export", "calls.export.absent")]
    assert reasons == ["not_owner", "not_owner", "absent"]


def test_files_are_private_and_removed_at_expiry(svc: Service) -> None:
    client, csrf = svc.login("root-admin")
    job_id = start(client, csrf).json()["id"]
    finished(client, job_id)
    folder = svc.seeded.db.parent / "exports"
    path = folder / f"{job_id}.zip"
    assert oct(folder.stat().st_mode & 0o777) == "0o700" and oct(path.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in folder.iterdir()) == [f"{job_id}.zip"]  # no leftover work file
    svc.clock.now += 24 * 3600 + 1
    client, _ = svc.login("root-admin")  # the first session ended meanwhile
    assert client.get(f"/api/exports/{job_id}").json()["state"] == "expired"
    assert not path.exists()
    assert client.get(f"/api/exports/{job_id}/file").status_code == 409


def test_a_job_left_running_by_a_dead_process_becomes_failed(svc: Service) -> None:
    from pbx_recorder.service.app import build_app

    folder = svc.seeded.db.parent / "exports"
    conn = svc.ctx.catalog.connection()  # type: ignore[attr-defined]
    jobs.create(conn, "deadbeef" * 4, "root-admin", "csv", {}, ["call_id"], "x.zip", svc.clock.now)
    jobs.start(conn, "deadbeef" * 4, 10)
    store.create(folder / f"{'deadbeef' * 4}.part").close()
    store.create(folder / f"{'deadbeef' * 4}.xlsxpart").close()
    store.create(folder / "tmpabc123").close()  # xlsxwriter's constant_memory temp file
    build_app(svc.ctx)  # type: ignore[arg-type]  # what `serve` does at start
    job = jobs.get(conn, "deadbeef" * 4, "root-admin")
    assert job is not None and job.state == "failed" and "stopped" in job.error
    assert not list(folder.iterdir())  # the partial file and the work files of the dead job


def test_an_unfit_export_folder_is_refused_naming_the_key(tmp_path: Path) -> None:
    from pbx_recorder.errors import ConfigError

    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(ConfigError, match="web.export_dir"):
        store.prepare(tmp_path / "link")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="web.export_dir"):
        store.prepare(tmp_path / "file" / "sub")


def test_exports_are_off_without_a_folder(seeded_service: Service) -> None:
    client, csrf = seeded_service.login("root-admin")
    assert start(client, csrf).status_code == 409
    assert "web.export_dir" in client.get("/exports").text


def test_a_result_past_the_row_limit_fails(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    from pbx_recorder.exports import table_job

    monkeypatch.setattr(table_job, "MAX_ROWS", 3)
    client, csrf = svc.login("root-admin")
    job = finished(client, start(client, csrf).json()["id"])
    assert job["state"] == "failed" and "more than 3 rows" in job["error"]
    assert not list((svc.seeded.db.parent / "exports").iterdir())
    assert finished(client, start(client, csrf, query="agent=carol").json()["id"])["state"] == "done"


def test_too_many_running_exports_answer_429(svc: Service) -> None:
    conn = svc.ctx.catalog.connection()  # type: ignore[attr-defined]
    for n in range(2):
        jobs.create(conn, f"{n:032x}", "counsel", "csv", {}, ["call_id"], "x.zip", svc.clock.now)
    client, csrf = svc.login("counsel")
    assert start(client, csrf).status_code == 429
    other, other_csrf = svc.login("root-admin")
    answer = start(other, other_csrf)
    assert answer.status_code == 202  # the limit is per user first
    finished(other, answer.json()["id"])


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_each_call_in_a_list_export_has_its_own_audit_row_on_its_access_list(svc: Service, kind: str) -> None:
    """Who took a call's data out in a list: found under the call's id, as for an audio export
    (a CSV/XLSX export was named by its filter only, on the job's rows); only the calls in the
    file, whether the numbers left unmasked, and the job."""
    from pbx_recorder.web.call_details import access_of

    job, _ = _done(svc, "lead-red", kind, fields=["call_id", "caller_num"], unmasked=True)
    items = {r["target"]: json.loads(r["detail"]) for r in svc.audit_rows("lead-red")
             if r["action"] == "calls.export.item"}
    assert sorted(items) == ["c-red-1", "c-red-2"]  # team red's rows only: what the file holds
    assert all(i["job"] == job["id"] and i["kind"] == kind and i["unmasked"] is True for i in items.values())
    listed = access_of(svc.ctx, "c-red-1", [])  # type: ignore[arg-type]
    assert ("lead-red", "calls.export.item") in [(a["actor"], a["action"]) for a in listed]
    assert access_of(svc.ctx, "c-blue-1", []) == []  # type: ignore[arg-type]
    from pbx_recorder import audit_trail

    problems, _ = audit_trail.verify_chain(svc.ctx.catalog.connection())  # type: ignore[attr-defined]
    assert problems == []  # written in batches, yet chained row by row
    svc.ctx.release()  # type: ignore[attr-defined]


def test_an_export_asked_with_a_token_names_it_in_the_rows_its_thread_writes(svc: Service) -> None:
    """The job's thread writes calls.export.item and calls.export.done: with the request's
    context, as the request's own calls.export row (they carried no token before)."""
    admin, csrf = svc.login("root-admin")
    made = admin.post("/api/tokens", json={"user": "lead-red", "role": "supervisor", "days": 5,
                                           "label": "robot"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code in (200, 201), made.text
    robot = svc.client()
    robot.headers["Authorization"] = f"Bearer {made.json()['token']}"
    answer = robot.post("/api/exports", json={"kind": "csv", "fields": ["call_id"], "password": PASSWORD})
    assert answer.status_code == 202, answer.text
    assert finished(robot, answer.json()["id"])["state"] == "done"
    rows = [r for r in svc.audit_rows("lead-red") if r["action"].startswith("calls.export")]
    assert {r["action"] for r in rows} == {"calls.export", "calls.export.item", "calls.export.done"}
    assert all(json.loads(r["detail"]).get("token") == "robot" for r in rows), rows
