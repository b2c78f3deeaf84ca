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

from pbx_recorder.lifecycle import backup_shred
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
        answer = client.request(method, path, json=body, headers={"X-CSRF-Token": csrf},
                                follow_redirects=False)
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
    asked = _post(admin, csrf, "/api/deletions",
                  {"reason": "customer asked, ticket 9", "call_ids": ["c-red-1"]})
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


def test_the_requester_never_approves_even_holding_both_verbs(
        svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
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
    hold = _post(counsel, lcsrf, "/api/holds",
                 {"scope": "call", "value": "c-red-2", "reason": "litigation 12"})
    assert hold.status_code == 201 and hold.json()["recordings"] == ["r-c-red-2"]
    admin, csrf = svc.login("root-admin")
    req = _post(admin, csrf, "/api/deletions",
                {"reason": "cleanup", "call_ids": ["c-red-2", "c-blue-1"]}).json()
    comp, ccsrf = svc.login("comp")
    result = _post(comp, ccsrf, f"/api/deletions/{req['id']}/approve", {}).json()["result"]
    assert result["deleted"] == ["r-c-blue-1"]
    withheld = [(w["recording_id"], w["hold_id"]) for w in result["withheld"]]
    assert withheld == [("r-c-red-2", hold.json()["hold_id"])]
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


def test_refusal_and_a_crash_between_approval_and_execution(
        svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
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


NUMBER = "+8613812345678"  # the caller of c-red-1 and c-blue-2


def test_erasure_preview_open_execute_and_receipt_never_store_the_number(svc: Service) -> None:
    counsel, csrf = svc.login("counsel")
    hold = _post(counsel, csrf, "/api/holds", {"scope": "call", "value": "c-blue-2", "reason": "court order"})
    assert hold.status_code == 201
    preview = _post(counsel, csrf, "/api/erasure/preview", {"number": NUMBER})
    assert preview.status_code == 200, preview.text
    p = preview.json()
    assert [c["call_id"] for c in p["calls"]] == ["c-blue-2", "c-red-1"]
    assert p["recordings"] == 2 and p["held"] == 1 and p["by_tier"] == {"hot": 2}
    held = [r for c in p["calls"] for r in c["recordings"] if r["hold_id"]]
    assert held[0]["recording_id"] == "r-c-blue-2" and held[0]["hold_reason"] == "court order"
    opened = _post(counsel, csrf, "/api/erasure", {"number": NUMBER})
    assert opened.status_code == 201
    req = opened.json()
    assert req["deadline"] == pytest.approx(req["received_at"] + 15 * DAY)
    # the same subject again: the open request is found, not a second one
    assert _post(counsel, csrf, "/api/erasure", {"number": NUMBER}).json()["request_id"] == req["request_id"]
    assert counsel.get(f"/api/erasure/{req['request_id']}/receipt").status_code == 409  # not executed yet
    wrong = _post(counsel, csrf, f"/api/erasure/{req['request_id']}/execute", {"number": "+8613900001111"})
    assert wrong.status_code == 409 and _denied(svc, "counsel", "denied:erase")
    done = _post(counsel, csrf, f"/api/erasure/{req['request_id']}/execute", {"number": NUMBER})
    assert done.status_code == 200, done.text
    receipt = done.json()
    assert receipt["status"] == "refused_partial" and receipt["recordings_erased"] == 1
    assert [w["recording_id"] for w in receipt["withheld"]] == ["r-c-blue-2"]
    # no catalog backup inside the request: the next `catalog backup` shreds the older ones
    assert receipt["backups"]["shred"] == "pending"
    assert svc.seeded.tier.stat("2027/01/c-red-1/r-c-red-1.wav") is None
    assert svc.seeded.tier.stat("2027/01/c-blue-2/r-c-blue-2.wav") is not None
    assert _sql(svc, "SELECT kind, request_id, recording_id FROM destruction_records") == [
        ("erasure", req["request_id"], "r-c-red-1")]
    # the auditor reads the list and downloads the receipt
    comp, _ = svc.login("comp")
    listed = comp.get("/api/erasure").json()["requests"]
    assert [r["request_id"] for r in listed] == [req["request_id"]] and not listed[0]["late"]
    assert listed[0]["backup_shred_pending"] is True
    assert listed[0]["backup_shred_nodes"] == []  # no fresh backup yet: any node's next backup
    download = comp.get(f"/api/erasure/{req['request_id']}/receipt")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    assert json.loads(download.text)["request_id"] == req["request_id"]
    # the number typed is in no audit row and no table, in any form
    digits = "13812345678"
    audit_text = json.dumps(svc.audit_rows())
    assert digits not in audit_text and "138****5678" not in json.dumps(
        [r for r in svc.audit_rows() if r["action"].startswith("erase")])
    assert not _sql(svc, "SELECT 1 FROM erasure_requests WHERE subject LIKE ? OR receipt LIKE ?",
                    (f"%{digits}%", f"%{digits}%"))
    # several nodes: n1 took the fresh backup, n2 (which took backups under its own keys) has not
    # destroyed its keys yet: the list and the page name it
    conn = open_catalog(svc.seeded.db)
    try:
        for node in ("n1", "n2"):
            backup_shred.register(conn, node, NOW)
        backup_shred.record_fresh(conn, [req["request_id"]], "n1", {"fresh_backup": "hot:b"}, NOW)
    finally:
        conn.close()
    listed = comp.get("/api/erasure").json()["requests"]
    assert listed[0]["backup_shred_pending"] is True and listed[0]["backup_shred_nodes"] == ["n2"]
    assert "waiting for the backup keys of node(s): n2" in comp.get("/erasure").text


def test_late_erasure_requests_are_flagged(svc: Service) -> None:
    counsel, csrf = svc.login("counsel")
    req = _post(counsel, csrf, "/api/erasure", {"number": "+8613900001111"}).json()
    svc.clock.now = NOW + 16 * DAY
    counsel, _ = svc.login("counsel")  # the first session has long ended
    listed = counsel.get("/api/erasure").json()["requests"]
    assert listed[0]["late"] and listed[0]["days_left"] < 0
    page = counsel.get("/erasure").text
    assert f'class="erasure-row late" data-request="{req["request_id"]}"' in page


def test_erasure_numbers_are_validated_and_admin_only_roles_act(svc: Service) -> None:
    counsel, csrf = svc.login("counsel")
    for bad in ("", "12", "<script>", "1" * 41):
        assert _post(counsel, csrf, "/api/erasure/preview", {"number": bad}).status_code == 400
    comp, ccsrf = svc.login("comp")
    assert _post(comp, ccsrf, "/api/erasure", {"number": NUMBER}).status_code == 403
    assert _denied(svc, "comp", "denied:erasure.manage")


def test_holds_by_caller_and_saved_search_then_release_with_a_reason(svc: Service) -> None:
    admin, csrf = svc.login("root-admin")
    by_caller = _post(admin, csrf, "/api/holds",
                      {"scope": "caller", "value": "+8613700002222", "reason": "fraud"})
    assert by_caller.status_code == 201 and by_caller.json()["recordings"] == ["r-c-blue-1"]
    added = [r for r in svc.audit_rows("root-admin") if r["action"] == "hold.add"]
    assert "13700002222" not in added[0]["detail"]  # masked in the audit
    saved = admin.post("/api/searches", json={"name": "bob", "query": "agent=bob&queue=sales"},
                       headers={"X-CSRF-Token": csrf})
    assert saved.status_code in (200, 201), saved.text
    by_search = _post(admin, csrf, "/api/holds", {"scope": "saved_search", "value": "bob", "reason": "audit"})
    assert by_search.status_code == 201 and by_search.json()["recordings"] == ["r-c-red-2"]
    assert _post(admin, csrf, "/api/holds", {"scope": "saved_search", "value": "nope", "reason": "x"}
                 ).status_code == 404
    admin.post("/api/searches", json={"name": "kw", "query": "keyword=refund"},
               headers={"X-CSRF-Token": csrf})
    assert _post(admin, csrf, "/api/holds", {"scope": "saved_search", "value": "kw", "reason": "x"}
                 ).status_code == 400
    listed = admin.get("/api/holds").json()["holds"]
    assert {h["scope"] for h in listed} == {"caller", "query"}
    assert all(h["value"] == "" for h in listed if h["scope"] == "caller")  # the blind index stays inside
    hid = by_caller.json()["hold_id"]
    assert _post(admin, csrf, f"/api/holds/{hid}/release", {"reason": ""}).status_code == 400
    released = _post(admin, csrf, f"/api/holds/{hid}/release", {"reason": "case closed"})
    assert released.status_code == 200 and released.json()["released"] == ["r-c-blue-1"]
    assert _post(admin, csrf, f"/api/holds/{hid}/release", {"reason": "again"}).status_code == 409
    audit = [r for r in svc.audit_rows("root-admin") if r["action"] == "hold.remove"]
    assert json.loads(audit[0]["detail"])["reason"] == "case closed"
    assert _sql(svc, "SELECT legal_hold FROM recordings WHERE recording_id='r-c-blue-1'") == [(0,)]
    assert len(admin.get("/api/holds?all=1").json()["holds"]) == 2


def test_retention_report_pages_and_apply_records_destruction(svc: Service) -> None:
    conn = open_catalog(svc.seeded.db)
    conn.execute("UPDATE recordings SET retention_class = 'standard'")  # 1 day in disposal_support's config
    conn.close()
    svc.clock.now = NOW + 3 * DAY  # their retention has run out
    comp, _ = svc.login("comp")
    first = comp.get("/api/retention/report?limit=3").json()
    assert len(first["items"]) == 3 and first["more"]
    second = comp.get("/api/retention/report?limit=3&page=2").json()
    assert len(second["items"]) == 1 and not second["more"]
    ids = {d["recording_id"] for d in first["items"] + second["items"]}
    assert ids == {"r-c-red-1", "r-c-red-2", "r-c-blue-1", "r-c-blue-2"}
    assert comp.get("/api/retention/report?limit=0").status_code == 400
    page = comp.get("/retention?limit=3").text
    assert 'id="retention-next"' in page and page.count('class="retention-row') == 3
    counsel, lcsrf = svc.login("counsel")
    _post(counsel, lcsrf, "/api/holds", {"scope": "call", "value": "c-red-1", "reason": "keep"})
    admin, csrf = svc.login("root-admin")
    assert _post(admin, csrf, "/api/retention/apply", {}).status_code == 400  # no confirmation
    applied = _post(admin, csrf, "/api/retention/apply", {"confirm": True})
    assert applied.status_code == 200, applied.text
    res = applied.json()
    assert sorted(res["disposed"]) == ["r-c-blue-1", "r-c-blue-2", "r-c-red-2"]
    assert [d["recording_id"] for d in res["refused"]] == ["r-c-red-1"]
    kinds = _sql(svc, "SELECT DISTINCT kind, request_id, approved_by FROM destruction_records")
    assert kinds == [("retention", res["run_id"], "")]
    assert svc.seeded.tier.stat("2027/01/c-red-2/r-c-red-2.wav") is None
    assert svc.seeded.tier.stat("2027/01/c-red-1/r-c-red-1.wav") is not None


def test_erasure_opened_before_an_index_key_rotation_executes_from_the_console_mid_rotation(
        svc: Service, tmp_path: Path) -> None:
    """The request's subject is under the key a rotation replaces until the rotation re-keys it:
    the console's execute must still accept the subject's number (it was refused with 409)."""
    from pbx_recorder.hash_key import previous_path

    counsel, csrf = svc.login("counsel")
    req = _post(counsel, csrf, "/api/erasure", {"number": NUMBER}).json()
    key_file = tmp_path / "hmac.key"
    old = key_file.read_bytes()
    previous_path(key_file).write_bytes(old)  # what `keys rotate-index` leaves while it runs
    key_file.write_bytes(b"fedcba9876543210fedcba9876543210")
    wrong = _post(counsel, csrf, f"/api/erasure/{req['request_id']}/execute", {"number": "+8613900001111"})
    assert wrong.status_code == 409
    done = _post(counsel, csrf, f"/api/erasure/{req['request_id']}/execute", {"number": NUMBER})
    assert done.status_code == 200, done.text
    assert done.json()["request_id"] == req["request_id"] and done.json()["recordings_erased"] >= 1


def test_a_held_saved_search_by_number_lists_its_filter_by_kind(svc: Service) -> None:
    # the hold stores the number filter as a blind index: the list names it, shows no number
    # and no index value
    admin, csrf = svc.login("root-admin")
    saved = admin.post("/api/searches", json={"name": "cust", "query": "caller=2222"},  # (last 4 kept)
                       headers={"X-CSRF-Token": csrf})
    assert saved.status_code in (200, 201), saved.text
    held = _post(admin, csrf, "/api/holds", {"scope": "saved_search", "value": "cust", "reason": "case 9"})
    assert held.status_code == 201, held.text
    listed = [h for h in admin.get("/api/holds").json()["holds"] if h["scope"] == "query"]
    value = json.loads(listed[0]["value"])
    assert value["number"].startswith("<") and value["number"].endswith("index>")
    assert "2222" not in listed[0]["value"]
