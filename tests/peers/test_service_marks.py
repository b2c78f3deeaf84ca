"""Marks over HTTP: every endpoint x role (allowed / 403 / 404 out of scope, denials audited), the
author-or-admin rule on delete, validation, hostile text kept as typed, and the keyword filter
of /api/calls that never reveals a call out of scope."""

from __future__ import annotations

import pytest

from tests.peers.player_support import put_wav

# on alice's call c-red-1: who may list (calls.view + scope) and add (calls.mark + scope)
LIST = {"root-admin": 200, "lead-red": 200, "qa1": 404, "alice": 200, "comp": 200, "counsel": 200, "ops": 403}
ADD = {"root-admin": 201, "lead-red": 201, "qa1": 404, "alice": 403, "comp": 403, "counsel": 201, "ops": 403}
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">&amp;'


@pytest.fixture
def service(seeded_service):  # type: ignore[no-untyped-def]
    put_wav(seeded_service, "c-red-1", "r-wav", 30, 2)
    put_wav(seeded_service, "c-blue-1", "r-blue", 30, 1)
    return seeded_service


def _add(client, csrf, call="c-red-1", rid="r-wav", **body):  # type: ignore[no-untyped-def]
    mark = {"recording_id": rid, "position_s": 12.5, "label": "greeting", "note": "said hello", **body}
    return client.post(f"/api/calls/{call}/marks", json=mark, headers={"X-CSRF-Token": csrf})


def _audited(service, user: str, action: str, target: str) -> bool:  # type: ignore[no-untyped-def]
    return any(r["action"] == action and r["target"] == target for r in service.audit_rows(user))


@pytest.mark.parametrize("user", sorted(LIST))
def test_list_marks_by_role(service, user: str) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = service.login("root-admin")
    assert _add(admin, csrf).status_code == 201
    client, _ = service.login(user)
    answer = client.get("/api/calls/c-red-1/marks")
    assert answer.status_code == LIST[user]
    if LIST[user] == 200:
        assert [m["label"] for m in answer.json()["marks"]] == ["greeting"]  # shared with the team
    else:
        assert _audited(service, user, "denied:calls.view", "c-red-1")


@pytest.mark.parametrize("user", sorted(ADD))
def test_add_mark_by_role(service, user: str) -> None:  # type: ignore[no-untyped-def]
    client, csrf = service.login(user)
    answer = _add(client, csrf)
    assert answer.status_code == ADD[user], answer.text
    if ADD[user] == 201:
        mark = answer.json()
        assert mark["author"] == user and mark["position_s"] == 12.5 and mark["call_id"] == "c-red-1"
        assert _audited(service, user, "marks.add", "c-red-1")
    else:
        assert _audited(service, user, "denied:calls.mark", "c-red-1")


def test_qa_marks_the_call_assigned_to_them(service) -> None:  # type: ignore[no-untyped-def]
    client, csrf = service.login("qa1")
    assert _add(client, csrf, call="c-blue-1", rid="r-blue").status_code == 201
    assert [m["author"] for m in client.get("/api/calls/c-blue-1/marks").json()["marks"]] == ["qa1"]


def test_absent_and_out_of_scope_calls_are_the_same_404(service) -> None:  # type: ignore[no-untyped-def]
    client, csrf = service.login("lead-red")
    other, absent = _add(client, csrf, call="c-blue-1", rid="r-blue"), _add(client, csrf, call="c-nope")
    assert other.status_code == absent.status_code == 404 and other.json() == absent.json()
    assert _audited(service, "lead-red", "denied:calls.mark", "c-blue-1")
    assert _audited(service, "lead-red", "calls.mark.absent", "c-nope")


def test_delete_author_or_admin_only(service) -> None:  # type: ignore[no-untyped-def]
    lead, lead_csrf = service.login("lead-red")
    mine = _add(lead, lead_csrf).json()["id"]
    second = _add(lead, lead_csrf, label="second").json()["id"]
    counsel, counsel_csrf = service.login("counsel")
    refused = counsel.delete(f"/api/marks/{mine}", headers={"X-CSRF-Token": counsel_csrf})
    assert refused.status_code == 403 and _audited(service, "counsel", "denied:marks.delete", f"mark:{mine}")
    alice, alice_csrf = service.login("alice")
    assert alice.delete(f"/api/marks/{mine}", headers={"X-CSRF-Token": alice_csrf}).status_code == 403
    qa, qa_csrf = service.login("qa1")  # may mark, but c-red-1 is not theirs: as if absent
    assert qa.delete(f"/api/marks/{mine}", headers={"X-CSRF-Token": qa_csrf}).status_code == 404
    assert qa.delete("/api/marks/999999", headers={"X-CSRF-Token": qa_csrf}).status_code == 404
    assert _audited(service, "qa1", "denied:calls.mark", f"mark:{mine}")
    assert lead.delete(f"/api/marks/{mine}").status_code == 403  # no CSRF token
    assert lead.delete(f"/api/marks/{mine}", headers={"X-CSRF-Token": lead_csrf}).status_code == 200
    admin, admin_csrf = service.login("root-admin")
    assert admin.delete(f"/api/marks/{second}", headers={"X-CSRF-Token": admin_csrf}).status_code == 200
    assert lead.get("/api/calls/c-red-1/marks").json()["marks"] == []
    assert _audited(service, "lead-red", "marks.delete", "c-red-1")
    assert _audited(service, "root-admin", "marks.delete", "c-red-1")


@pytest.mark.parametrize(("body", "status"), [
    ({"label": ""}, 400), ({"label": "x" * 81}, 400), ({"note": "n" * 2001}, 400),
    ({"position_s": -1}, 400), ({"position_s": 30.5}, 400), ({"position_s": "5"}, 400),
    ({"position_s": True}, 400), ({"rid": "r-c-red-2"}, 400), ({"rid": "r-blue"}, 400),
    ({"label": "x" * 80, "note": "n" * 2000, "position_s": 30}, 201),
])
def test_mark_validation(service, body, status) -> None:  # type: ignore[no-untyped-def]
    client, csrf = service.login("lead-red")
    assert _add(client, csrf, **body).status_code == status


def test_not_json_and_too_large(service) -> None:  # type: ignore[no-untyped-def]
    client, csrf = service.login("lead-red")
    headers = {"X-CSRF-Token": csrf}
    assert client.post("/api/calls/c-red-1/marks", data={"label": "x"}, headers=headers).status_code == 415
    big = client.post("/api/calls/c-red-1/marks", content=b"{" + b" " * 9000 + b"}",
                      headers={**headers, "Content-Type": "application/json"})
    assert big.status_code == 413


def test_hostile_text_is_stored_as_typed_and_never_in_the_page(service) -> None:  # type: ignore[no-untyped-def]
    client, csrf = service.login("lead-red")
    assert _add(client, csrf, label=HOSTILE[:80], note=HOSTILE).status_code == 201
    answer = client.get("/api/calls/c-red-1/marks")
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["marks"][0]["note"] == HOSTILE
    page = client.get("/recordings/r-wav/play").text
    assert "<script>alert" not in page and "onerror" not in page
    audit = [r for r in service.audit_rows("lead-red") if r["action"] == "marks.add"]
    assert "alert" not in audit[0]["detail"]  # the audit keeps lengths, not what the caller said


def test_keyword_search_is_scoped(service) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = service.login("root-admin")
    assert _add(admin, csrf, label="refund promised", note="Customer asked 100%_off").status_code == 201
    assert _add(admin, csrf, call="c-blue-1", rid="r-blue", note="REFUND refused").status_code == 201
    found = admin.get("/api/calls", params={"keyword": "refund"}).json()["calls"]
    assert sorted(c["call_id"] for c in found) == ["c-blue-1", "c-red-1"]
    assert [c["call_id"] for c in admin.get("/api/calls", params={"keyword": "100%_"}).json()["calls"]] \
        == ["c-red-1"]
    assert admin.get("/api/calls", params={"keyword": "0%x"}).json()["calls"] == []  # % is literal
    lead, _ = service.login("lead-red")
    assert [c["call_id"] for c in lead.get("/api/calls", params={"keyword": "refund"}).json()["calls"]] \
        == ["c-red-1"]
    assert lead.get("/api/calls", params={"keyword": "refused"}).json() == \
        lead.get("/api/calls", params={"keyword": "no-such-words"}).json()  # no hint of c-blue-1
    counted = lead.get("/api/calls", params={"keyword": "refused"}).json()["count"]
    assert counted is None or counted["value"] == 0
    ops, _ = service.login("ops")
    assert ops.get("/api/calls", params={"keyword": "refund"}).status_code == 403


def test_without_a_duration_in_the_row_the_waveforms_bounds_the_position(service) -> None:  # type: ignore[no-untyped-def]
    from pbx_recorder.catalog import Catalog

    catalog = Catalog(service.seeded.db)
    catalog.mark_state("r-wav", "stored", duration_s=None)
    catalog.close()
    client, csrf = service.login("lead-red")
    assert _add(client, csrf, position_s=31).status_code == 201  # nothing known yet: accepted
    assert client.get("/api/recordings/r-wav/peaks").json()["duration"] == 30.0
    assert _add(client, csrf, position_s=31).status_code == 400


def test_the_search_page_has_the_keyword_field_and_saves_it(service) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = service.login("root-admin")
    assert _add(admin, csrf, label="refund promised").status_code == 201
    page = admin.get("/calls", params={"keyword": "refund"}).text
    assert 'name="keyword"' in page and 'value="refund"' in page
    assert 'href="/calls/c-red-1"' in page and 'href="/calls/c-blue-1"' not in page
    saved = admin.post("/api/searches", json={"name": "refunds", "query": "keyword=refund&agent=alice"},
                       headers={"X-CSRF-Token": csrf})
    assert saved.status_code in (200, 201)
    kept = [s for s in admin.get("/api/searches").json()["searches"] if s["name"] == "refunds"]
    assert kept and "keyword=refund" in kept[0]["query"]


def test_the_call_page_lists_the_marks_as_text(service) -> None:  # type: ignore[no-untyped-def]
    lead, csrf = service.login("lead-red")
    assert _add(lead, csrf, label=HOSTILE[:80], note="callback at 5").status_code == 201
    page = lead.get("/calls/c-red-1").text
    assert 'id="marks"' in page and "callback at 5" in page and 'href="/recordings/r-wav/play"' in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
