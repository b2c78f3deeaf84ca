"""The list reads a39a78d left unaudited write one audit row per request too: the four-eyes replay
requests, the deletion requests (and one request), the export jobs, the saved searches, the
accounts, the API tokens and the report schedules, over the API and on their console pages.  Each
row names the actor, the filter and how many rows came back; a refused read writes only its
refusal; the export page's progress poll (states and counts only) writes nothing and shows no
filter and no call.  The reads audited before (audit log, holds, erasure) still write exactly one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pbx_recorder.config.model import FourEyesConfig
from pbx_recorder.exports import jobs
from pbx_recorder.lifecycle.journal import open_catalog
from tests.peers.disposal_support import attach_config
from tests.peers.service_support import NOW, Service, make_service

FULL = "+8613812345678"


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = attach_config(make_service(tmp_path, four_eyes=FourEyesConfig(tags=("vip",), grant_minutes=30),
                                         export_dir=tmp_path / "exports"), tmp_path)
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _rows_of(svc: Service, client: Any, url: str, **params: str) -> tuple[Any, list[dict[str, Any]]]:
    """The answer to GET ``url`` and the audit rows it wrote, details parsed."""
    before = len(svc.audit_rows())
    answer = client.get(url, params=params, follow_redirects=False)
    return answer, [{**r, "detail": json.loads(r["detail"])} for r in svc.audit_rows()[before:]]


def _post(client: Any, csrf: str, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json=body, headers={"X-CSRF-Token": csrf})


def _ask_replay(svc: Service, user: str, call_id: str, reason: str) -> None:
    client, csrf = svc.login(user)
    assert _post(client, csrf, f"/api/calls/{call_id}/replay-requests", {"reason": reason}).status_code == 201


def test_the_replay_request_list_writes_one_row(svc: Service) -> None:
    _ask_replay(svc, "lead-red", "c-red-1", f"caller {FULL} complained")
    _ask_replay(svc, "counsel", "c-blue-1", "case 12")
    comp, _ = svc.login("comp")  # an approver reads every pending request
    answer, rows = _rows_of(svc, comp, "/api/replay-requests")
    assert answer.status_code == 200 and len(answer.json()["requests"]) == 2
    assert [(r["action"], r["actor"], r["target"]) for r in rows] == [("replay.list", "comp", "")]
    assert rows[0]["detail"]["results"] == 2 and "requester" not in rows[0]["detail"]
    lead, _ = svc.login("lead-red")  # anyone else: their own
    answer, rows = _rows_of(svc, lead, "/api/replay-requests")
    assert [g["call_id"] for g in answer.json()["requests"]] == ["c-red-1"]
    assert [r["action"] for r in rows] == ["replay.list"]
    assert rows[0]["detail"]["results"] == 1 and rows[0]["detail"]["requester"] == "lead-red"
    page, rows = _rows_of(svc, comp, "/replay-requests")
    assert page.status_code == 200 and "c-blue-1" in page.text
    assert [r["action"] for r in rows] == ["replay.list"]
    assert rows[0]["detail"]["page"] == "/replay-requests" and rows[0]["detail"]["results"] == 2
    assert "13812345678" not in json.dumps(svc.audit_rows())  # no reason, no number in any row


def test_the_deletion_list_and_one_request_write_one_row_each(svc: Service) -> None:
    admin, csrf = svc.login("root-admin")
    asked = _post(admin, csrf, "/api/deletions", {"reason": "ticket 9", "call_ids": ["c-red-1", "c-red-2"]})
    assert asked.status_code == 201, asked.text
    req_id = asked.json()["id"]
    comp, _ = svc.login("comp")
    answer, rows = _rows_of(svc, comp, "/api/deletions", state="requested")
    assert answer.status_code == 200 and len(answer.json()["requests"]) == 1
    assert [(r["action"], r["actor"]) for r in rows] == [("deletion.list", "comp")]
    assert rows[0]["detail"]["state"] == "requested" and rows[0]["detail"]["results"] == 1
    answer, rows = _rows_of(svc, comp, "/api/deletions", state="refused")
    assert answer.json()["requests"] == [] and rows[0]["detail"]["results"] == 0
    answer, rows = _rows_of(svc, comp, f"/api/deletions/{req_id}")
    assert answer.status_code == 200
    assert [(r["action"], r["target"]) for r in rows] == [("deletion.view", req_id)]
    assert rows[0]["detail"]["calls"] == 2
    page, rows = _rows_of(svc, admin, "/deletions")
    assert page.status_code == 200 and req_id in page.text
    assert [r["action"] for r in rows] == ["deletion.list"]
    assert rows[0]["detail"]["page"] == "/deletions" and rows[0]["detail"]["results"] == 1


def _add_job(svc: Service, owner: str) -> str:
    """A running audio export of ``owner`` waiting for one recording (written as the job does)."""
    conn = open_catalog(svc.seeded.db)
    try:
        job_id = jobs.new_id()
        jobs.create(conn, job_id, owner, "audio", {"caller": "138****5678", "agent": "alice"}, (),
                    f"{job_id}.zip", NOW)
        jobs.start(conn, job_id, 100)
        jobs.set_pending(conn, job_id, [{"call_id": "c-red-1", "recording_id": "r-c-red-1",
                                         "reason": "state archived"}])
    finally:
        conn.close()
    return job_id


def test_the_export_job_list_writes_one_row_and_the_progress_poll_none(svc: Service) -> None:
    job_id = _add_job(svc, "lead-red")
    _add_job(svc, "root-admin")  # someone else's: never listed to the lead
    lead, _ = svc.login("lead-red")
    answer, rows = _rows_of(svc, lead, "/api/exports")
    listed = answer.json()["jobs"]
    assert [j["id"] for j in listed] == [job_id] and listed[0]["pending"][0]["call_id"] == "c-red-1"
    assert [(r["action"], r["actor"]) for r in rows] == [("exports.list", "lead-red")]
    assert rows[0]["detail"]["results"] == 1
    for _ in range(3):  # the page polls this every second while a job runs
        answer, rows = _rows_of(svc, lead, "/api/exports", progress="1")
        assert answer.status_code == 200 and rows == []
        (job,) = answer.json()["jobs"]
        assert job["id"] == job_id and job["state"] == "running" and job["pending_count"] == 1
        assert not {"filter", "fields", "pending", "sha256"} & set(job)
        assert "c-red-1" not in answer.text and "alice" not in answer.text and "5678" not in answer.text
    page, rows = _rows_of(svc, lead, "/exports")
    assert page.status_code == 200 and job_id in page.text
    assert [r["action"] for r in rows] == ["exports.list"]
    assert rows[0]["detail"]["page"] == "/exports" and rows[0]["detail"]["results"] == 1


def test_saved_searches_list_writes_one_row(svc: Service) -> None:
    lead, csrf = svc.login("lead-red")
    for name, query in (("mine", "caller=5678&agent=alice"), ("sales", "queue=sales")):
        assert _post(lead, csrf, "/api/searches", {"name": name, "query": query}).status_code == 200
    answer, rows = _rows_of(svc, lead, "/api/searches")
    assert answer.status_code == 200 and [s["name"] for s in answer.json()["searches"]] == ["mine", "sales"]
    assert [(r["action"], r["actor"], r["target"]) for r in rows] == [("searches.list", "lead-red", "")]
    assert rows[0]["detail"]["results"] == 2


def test_the_accounts_tokens_and_schedules_lists_write_one_row_each(svc: Service) -> None:
    admin, csrf = svc.login("root-admin")
    answer, rows = _rows_of(svc, admin, "/api/users")
    count = len(answer.json()["users"])
    assert count >= 7 and [r["action"] for r in rows] == ["users.list"]
    assert rows[0]["detail"]["results"] == count
    page, rows = _rows_of(svc, admin, "/admin/users")
    assert page.status_code == 200 and [r["action"] for r in rows] == ["users.list"]
    assert rows[0]["detail"]["page"] == "/admin/users" and rows[0]["detail"]["results"] == count
    answer, rows = _rows_of(svc, admin, "/api/tokens")
    assert answer.status_code == 200 and [r["action"] for r in rows] == ["tokens.list"]
    assert rows[0]["detail"]["results"] == len(answer.json()["tokens"])
    page, rows = _rows_of(svc, admin, "/admin/tokens")
    assert page.status_code == 200 and [r["action"] for r in rows] == ["tokens.list"]
    assert rows[0]["detail"]["page"] == "/admin/tokens"
    lead, lcsrf = svc.login("lead-red")
    assert _post(lead, lcsrf, "/api/report-schedules",
                 {"name": "weekly", "period": "week", "team": "red", "mail_to": "lead@bank.example"}
                 ).status_code == 201
    answer, rows = _rows_of(svc, lead, "/api/report-schedules")
    assert len(answer.json()["schedules"]) == 1
    assert [(r["action"], r["actor"]) for r in rows] == [("reports.schedule.list", "lead-red")]
    assert rows[0]["detail"]["owner"] == "lead-red" and rows[0]["detail"]["results"] == 1
    answer, rows = _rows_of(svc, admin, "/api/report-schedules")  # admin: every owner's
    assert [r["action"] for r in rows] == ["reports.schedule.list"] and "owner" not in rows[0]["detail"]


@pytest.mark.parametrize("user,url,status,refusal", [
    ("lead-red", "/api/deletions", 403, "denied:calls.delete"),
    ("lead-red", "/deletions", 403, "denied:calls.delete"),
    ("alice", "/api/exports", 403, "denied:calls.export"),
    ("alice", "/exports", 403, "denied:calls.export"),
    ("ops", "/api/searches", 403, "denied:calls.view"),
    ("lead-red", "/api/users", 403, "denied:users.manage"),
    ("lead-red", "/admin/users", 403, "denied:users.manage"),
    ("comp", "/api/tokens", 403, "denied:tokens.manage"),
    ("comp", "/admin/tokens", 403, "denied:tokens.manage"),
    ("alice", "/api/report-schedules", 403, "denied:reports.schedule"),
])
def test_a_refused_list_writes_only_its_refusal(svc: Service, user: str, url: str, status: int,
                                               refusal: str) -> None:
    client, _ = svc.login(user)
    answer, rows = _rows_of(svc, client, url)
    assert answer.status_code == status
    assert [r["action"] for r in rows] == [refusal]


@pytest.mark.parametrize("url,action", [
    ("/api/audit", "audit.list"), ("/audit", "audit.list"),
    ("/api/holds", "hold.list"), ("/holds", "hold.list"),
    ("/api/erasure", "erase.status"), ("/erasure", "erase.status"),
])
def test_the_lists_audited_before_still_write_exactly_one_row(svc: Service, url: str, action: str) -> None:
    admin, _ = svc.login("root-admin")
    answer, rows = _rows_of(svc, admin, url)
    assert answer.status_code == 200
    assert [r["action"] for r in rows] == [action]
