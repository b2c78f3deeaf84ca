"""Deletions, erasure, holds and retention over HTTP: every endpoint x role (allowed, 403 audited,
404 audited), the two-person deletion (never by its requester, even for a role holding both
verbs), what a deletion really does (tier objects gone, deletion_log, ledger, destruction
records kept 3 years), held recordings withheld, a crash between approval and execution retried,
an erasure whose number never reaches the audit, holds by caller / saved search, retention paged
and applied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_recorder.lifecycle.deletion_requests import DeletionRequests
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service import roles
from tests.peers.disposal_support import disposal_service
from tests.peers.service_support import NOW, USERS, Service

DAY = 86400.0
YEAR3 = 3 * 365 * DAY


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = disposal_service(tmp_path)
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _sql(svc: Service, sql: str, params: tuple = ()) -> list[tuple]:
    conn = open_catalog(svc.seeded.db)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def _post(client, csrf: str, path: str, body: dict):  # type: ignore[no-untyped-def]
    return client.post(path, json=body, headers={"X-CSRF-Token": csrf})


def _denied(svc: Service, user: str, action: str) -> list[dict]:
    return [r for r in svc.audit_rows(user) if r["action"] == action]


#: (method, path, body, verb(s) that let a role through)
ENDPOINTS = [
    ("GET", "/api/deletions", None, ("calls.delete", "calls.delete_approve")),
    ("POST", "/api/deletions", {"reason": "r", "call_ids": ["c-red-1"]}, ("calls.delete",)),
    ("GET", "/api/holds", None, ("holds.read",)),
    ("POST", "/api/holds", {"scope": "call", "value": "c-red-1", "reason": "case 7"}, ("holds.manage",)),
    ("GET", "/api/erasure", None, ("erasure.read",)),
    ("POST", "/api/erasure/preview", {"number": "+8613900001111"}, ("erasure.manage",)),
    ("POST", "/api/erasure", {"number": "+8613900001111"}, ("erasure.manage",)),
    ("GET", "/api/retention/report", None, ("retention.read",)),
    ("POST", "/api/retention/apply", {"confirm": True}, ("retention.apply",)),
    ("GET", "/deletions", None, ("calls.delete", "calls.delete_approve")),
    ("GET", "/erasure", None, ("erasure.read",)),
    ("GET", "/holds", None, ("holds.read",)),
    ("GET", "/retention", None, ("retention.read",)),
]


@pytest.mark.parametrize("user", sorted(USERS))
def test_every_endpoint_by_every_role(svc: Service, user: str) -> None:
    role = USERS[user][0]
    client, csrf = svc.login(user)
    for method, path, body, verbs in ENDPOINTS:
        allowed = any(roles.may(role, v) for v in verbs)
        answer = client.request(method, path, json=body, headers={"X-CSRF-Token": csrf}, follow_redirects=False)
        if allowed:
            assert answer.status_code in (200, 201), (user, path, answer.status_code, answer.text[:300])
        else:
            assert answer.status_code == 403, (user, path, answer.status_code)
    denials = [r for r in svc.audit_rows(user) if r["action"].startswith("denied:")]
    refused = sum(not any(roles.may(role, v) for v in verbs) for *_, verbs in ENDPOINTS)
    assert len(denials) >= refused  # every refusal left an audit row


def test_ids_that_do_not_exist_answer_404_and_absent_calls_are_audited(svc: Service) -> None:
    admin, csrf = svc.login("root-admin")
    assert admin.get("/api/deletions/DR-nope").status_code == 404
    assert _post(admin, csrf, "/api/holds/H-nope/release", {"reason": "x"}).status_code == 404
    assert admin.get("/api/erasure/ER-nope/receipt").status_code == 404
    asked = _post(admin, csrf, "/api/deletions", {"reason": "r", "call_ids": ["c-red-1", "no-such-call"]})
    assert asked.status_code == 404
    assert any(json.loads(r["detail"]).get("reason") == "absent" for r in _denied(svc, "root-admin",
                                                                                  "denied:deletion.request"))
    assert _post(admin, csrf, "/api/holds", {"scope": "call", "value": "no-such-call", "reason": "r"}
                 ).status_code == 404
    comp, ccsrf = svc.login("comp")
    assert _post(comp, ccsrf, "/api/deletions/DR-nope/approve", {}).status_code == 404


def test_two_person_deletion_destroys_every_copy_and_records_it(svc: Service) -> None:
    admin, csrf = svc.login("root-admin")
    key = "2027/01/c-red-1/r-c-red-1.wav"
    assert svc.seeded.tier.stat(key) is not None
    asked = _post(admin, csrf, "/api/deletions", {"reason": "customer asked, ticket 9", "call_ids": ["c-red-1"]})
    assert asked.status_code == 201, asked.text
    req = asked.json()
    assert req["state"] == "requested" and [r["recording_id"] for r in req["recordings"]] == ["r-c-red-1"]
    sha = req["recordings"][0]["sha256"]
    assert len(sha) == 64
    # the requester lacks the approving verb (403, audited) ...
    assert _post(admin, csrf, f"/api/deletions/{req['id']}/approve", {}).status_code == 403
    assert _denied(svc, "root-admin", "denied:calls.delete_approve")
    assert svc.seeded.tier.stat(key) is not None
    # ... the compliance role approves: every copy goes
    comp, ccsrf = svc.login("comp")
    svc.clock.now = NOW + 60
    done = _post(comp, ccsrf, f"/api/deletions/{req['id']}/approve", {})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["state"] == "executed" and body["approver"] == "comp"
    assert body["result"]["deleted"] == ["r-c-red-1"] and body["result"]["withheld"] == []
    assert svc.seeded.tier.stat(key) is None
    state, wrapped = _sql(svc, "SELECT state, wrapped_key FROM recordings WHERE recording_id='r-c-red-1'")[0]
    assert state == "expired" and wrapped in ("", None)
    records = _sql(svc, "SELECT request_id, kind, requested_by, approved_by, recording_id, call_id, sha256,"
                        " destroyed_at, keep_until FROM destruction_records")
    assert records == [(req["id"], "deletion", "root-admin", "comp", "r-c-red-1", "c-red-1", sha, NOW + 60,
                        pytest.approx(NOW + 60 + YEAR3, abs=2 * DAY))]
    log = _sql(svc, "SELECT reason, actor, sha256 FROM deletion_log WHERE recording_id='r-c-red-1'")
    assert log == [("deletion", "comp", sha)]
    assert _sql(svc, "SELECT event FROM ledger WHERE recording_id='r-c-red-1' AND event='deleted'")
    actions = [r["action"] for r in svc.audit_rows()]
    assert {"deletion.request", "deletion.approve", "deletion.execute"} <= set(actions)
    shown = comp.get(f"/api/deletions/{req['id']}").json()
    assert [d["recording_id"] for d in shown["destroyed"]] == ["r-c-red-1"]
    # decided once only
    assert _post(comp, ccsrf, f"/api/deletions/{req['id']}/approve", {}).status_code == 409


def test_the_requester_never_approves_even_holding_both_verbs(svc: Service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    both = dict(roles.PERMISSIONS)
    both["admin"] = roles.PERMISSIONS["admin"] | {"calls.delete_approve"}
    monkeypatch.setattr(roles, "PERMISSIONS", both)
    admin, csrf = svc.login("root-admin")
    req = _post(admin, csrf, "/api/deletions", {"reason": "mine", "call_ids": ["c-blue-1"]}).json()
    for action in ("approve", "execute", "refuse"):
        answer = _post(admin, csrf, f"/api/deletions/{req['id']}/{action}", {})
        assert answer.status_code == 403, (action, answer.text)
    denied = _denied(svc, "root-admin", "denied:deletion.approve")
    assert denied and json.loads(denied[0]["detail"])["reason"] == "own_request"
    assert svc.seeded.tier.stat("2027/01/c-blue-1/r-c-blue-1.wav") is not None
    assert DeletionRequests(open_catalog(svc.seeded.db)).get(req["id"])["state"] == "requested"


def test_held_recordings_are_withheld_with_the_hold_named(svc: Service) -> None:
    counsel, lcsrf = svc.login("counsel")
    hold = _post(counsel, lcsrf, "/api/holds", {"scope": "call", "value": "c-red-2", "reason": "litigation 12"})
    assert hold.status_code == 201 and hold.json()["recordings"] == ["r-c-red-2"]
    admin, csrf = svc.login("root-admin")
    req = _post(admin, csrf, "/api/deletions", {"reason": "cleanup", "call_ids": ["c-red-2", "c-blue-1"]}).json()
    comp, ccsrf = svc.login("comp")
    result = _post(comp, ccsrf, f"/api/deletions/{req['id']}/approve", {}).json()["result"]
    assert result["deleted"] == ["r-c-blue-1"]
    assert [(w["recording_id"], w["hold_id"]) for w in result["withheld"]] == [("r-c-red-2", hold.json()["hold_id"])]
    assert "litigation 12" in result["withheld"][0]["reason"]
    assert svc.seeded.tier.stat("2027/01/c-red-2/r-c-red-2.wav") is not None
    assert svc.seeded.tier.stat("2027/01/c-blue-1/r-c-blue-1.wav") is None
    assert _sql(svc, "SELECT recording_id FROM destruction_records") == [("r-c-blue-1",)]
    # the held call carries its badge in the search results, on its page and in the player
    page = admin.get("/calls?queue=sales").text
    row = page.split('data-call-id="c-red-2"')[1].split("</tr>")[0]
    assert "held-badge" in row
    assert "held-badge" not in page.split('data-call-id="c-red-1"')[1].split("</tr>")[0]
    assert 'id="held"' in admin.get("/calls/c-red-2").text
    assert 'id="held"' in admin.get("/recordings/r-c-red-2/play").text


def test_refusal_and_a_crash_between_approval_and_execution(svc: Service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = svc.login("root-admin")
    comp, ccsrf = svc.login("comp")
    first = _post(admin, csrf, "/api/deletions", {"reason": "a", "call_ids": ["c-red-1"]}).json()
    refused = _post(comp, ccsrf, f"/api/deletions/{first['id']}/refuse", {"reason": "keep it"})
    assert refused.status_code == 200 and refused.json()["state"] == "refused"
    assert _post(comp, ccsrf, f"/api/deletions/{first['id']}/execute", {}).status_code == 409
    # approved, then the host died before anything was deleted: the request waits, approved
    second = _post(admin, csrf, "/api/deletions", {"reason": "b", "call_ids": ["c-red-1", "c-blue-2"]}).json()
    conn = open_catalog(svc.seeded.db)
    DeletionRequests(conn).decide(second["id"], approver="comp", approve=True, now=NOW)
    conn.close()
    listed = {r["id"]: r for r in comp.get("/api/deletions").json()["requests"]}
    assert listed[second["id"]]["pending_execution"]
    # a tier failing half-way: state failed, the one that went is recorded, the rest waits
    from pbx_recorder.errors import StorageError

    real = svc.seeded.tier.delete

    def flaky(key: str) -> int:
        if "c-blue-2" in key:
            raise StorageError("tier down")
        return real(key)

    monkeypatch.setattr(svc.seeded.tier, "delete", flaky)
    failed = _post(comp, ccsrf, f"/api/deletions/{second['id']}/execute", {}).json()
    assert failed["state"] == "failed" and failed["result"]["deleted"] == ["r-c-red-1"]
    monkeypatch.setattr(svc.seeded.tier, "delete", real)
    again = _post(comp, ccsrf, f"/api/deletions/{second['id']}/execute", {}).json()
    assert again["state"] == "executed"
    assert sorted(again["result"]["deleted"]) == ["r-c-blue-2", "r-c-red-1"]
    rows = _sql(svc, "SELECT recording_id FROM destruction_records WHERE request_id=? ORDER BY recording_id",
                (second["id"],))
    assert rows == [("r-c-blue-2",), ("r-c-red-1",)]  # once each, not twice
    assert svc.seeded.tier.stat("2027/01/c-blue-2/r-c-blue-2.wav") is None
