"""Free text staff type about a call (mark labels and notes, QA review comments; replay and
deletion reasons for the first point):

* a payment card number in it is redacted for good before it is stored (``[card ****1111]``:
  PCI DSS, a primary account number is never stored in clear);
* shown to anyone but its author, its numbers are masked like any free text; a reader holding
  ``calls.unmask`` sees them with ``?unmask=1`` (the list row audited ``"unmask": true``), the
  call page masks them unless unmasked;
* a call search by keyword (looked for in the marks' text as stored) with more than 4 digits is a
  full-number search: audited and throttled for a role without ``calls.unmask``.
Before (session 45) all of it was shown as typed and a keyword probed the numbers digit by digit."""

from __future__ import annotations

import json

import pytest

from pbx_recorder.config.model import FourEyesConfig
from pbx_recorder.lifecycle.journal import open_catalog
from tests.peers.disposal_support import disposal_service
from tests.peers.qa_support import make_card, send
from tests.peers.service_support import make_service

NOTE = "card 4111 1111 1111 1111, wants a call back on 13812345678"


@pytest.fixture
def service(marked_service):  # type: ignore[no-untyped-def]
    return marked_service


@pytest.fixture
def replay_service(tmp_path):  # type: ignore[no-untyped-def]
    service = make_service(tmp_path, four_eyes=FourEyesConfig(tags=("vip",), grant_minutes=30))
    yield service
    service.ctx.catalog.close()


@pytest.fixture
def deletions_service(tmp_path):  # type: ignore[no-untyped-def]
    service = disposal_service(tmp_path)
    yield service
    service.ctx.catalog.close()


def _stored(service, sql: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    conn = open_catalog(service.seeded.db)
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def test_a_marks_card_number_is_never_stored_and_its_numbers_are_masked_to_others(service) -> None:  # type: ignore[no-untyped-def]
    lead, csrf = service.login("lead-red")
    made = lead.post("/api/calls/c-red-1/marks", headers={"X-CSRF-Token": csrf},
                     json={"recording_id": "r-wav", "position_s": 3, "label": "cb 13812345678", "note": NOTE})
    assert made.status_code == 201, made.text
    assert _stored(service, "SELECT label, note FROM marks") == [
        ("cb 13812345678", "card [card ****1111], wants a call back on 13812345678")]
    # the author reads it as stored
    own = lead.get("/api/calls/c-red-1/marks").json()["marks"][0]
    assert own["note"].endswith("13812345678") and own["label"] == "cb 13812345678"
    # alice (the call's agent, no calls.unmask) reads it masked, ?unmask=1 changes nothing for her
    alice, _ = service.login("alice")
    for query in ("", "?unmask=1"):
        mark = alice.get(f"/api/calls/c-red-1/marks{query}").json()["marks"][0]
        assert "13812345678" not in json.dumps(mark) and "138****5678" in mark["note"]
        assert mark["label"] == "cb 138****5678" and "[card ****1111]" in mark["note"]
    # the auditor (calls.unmask) sees it masked, and as stored when asking
    comp, _ = service.login("comp")
    assert "13812345678" not in comp.get("/api/calls/c-red-1/marks").text
    assert "13812345678" in comp.get("/api/calls/c-red-1/marks?unmask=1").text
    rows = [json.loads(r["detail"]) for r in service.audit_rows("comp") if r["action"] == "marks.list"]
    assert [r.get("unmask", False) for r in rows] == [False, True]
    # the call page: masked, and as stored once unmasked (audited as the call's unmasked view)
    assert "13812345678" not in comp.get("/calls/c-red-1").text
    assert "13812345678" in comp.get("/calls/c-red-1?unmask=1").text


def test_a_qa_comments_card_number_is_never_stored_and_readers_see_its_numbers_masked(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    qa, csrf = service.login("qa1")
    made = send(qa, csrf, "POST", "/api/calls/c-blue-1/reviews",
                {"scorecard_id": card, "answers": {"greeting": True, "empathy": 3},
                 "comments": [{"text": NOTE, "recording_id": "r-blue", "position_s": 2}]})
    assert made.status_code == 201, made.text
    stored = _stored(service, "SELECT comments FROM qa_reviews")[0][0]
    assert "4111" not in stored and "[card ****1111]" in stored and "13812345678" in stored
    assert "4111" not in json.dumps(_stored(service, "SELECT note FROM marks"))  # the comment's mark
    mine = qa.get("/api/calls/c-blue-1/reviews").json()["reviews"][0]["comments"][0]["text"]
    assert mine.endswith("13812345678")  # the reviewer reads their own as typed
    admin, _ = service.login("root-admin")
    theirs = admin.get("/api/calls/c-blue-1/reviews").json()["reviews"][0]["comments"][0]["text"]
    assert "13812345678" not in theirs and "138****5678" in theirs
    assert "13812345678" not in admin.get("/calls/c-blue-1").text  # the call page's QA block and marks


def test_a_keyword_with_a_number_is_a_throttled_number_search(service) -> None:  # type: ignore[no-untyped-def]
    lead, csrf = service.login("lead-red")
    lead.post("/api/calls/c-red-1/marks", headers={"X-CSRF-Token": csrf},
              json={"recording_id": "r-wav", "position_s": 3, "label": "cb", "note": NOTE})
    alice, _ = service.login("alice")
    answers = [alice.get(f"/api/calls?keyword=1381234{n:04d}").status_code for n in range(25)]
    assert answers[:20] == [200] * 20 and set(answers[20:]) == {429}
    actions = [r["action"] for r in service.audit_rows("alice")]
    assert actions.count("calls.search.number") == 20 and "throttled:calls.search.number" in actions
    detail = next(json.loads(r["detail"]) for r in service.audit_rows("alice")
                  if r["action"] == "calls.search.number")
    assert "13812340000" not in json.dumps(detail)
    # a short keyword is a last-4 search (audited, not throttled)
    assert alice.get("/api/calls?keyword=5678").status_code == 200
    assert service.audit_rows("alice")[-2]["action"] == "calls.search.last4"


def test_a_card_number_in_a_replay_reason_is_never_stored(replay_service) -> None:  # type: ignore[no-untyped-def]
    service = replay_service
    lead, csrf = service.login("lead-red")
    asked = lead.post("/api/calls/c-red-1/replay-requests", headers={"X-CSRF-Token": csrf},
                      json={"reason": "dispute on card 4111-1111-1111-1111"})
    assert asked.status_code == 201, asked.text
    assert _stored(service, "SELECT reason FROM replay_grants") == [("dispute on card [card ****1111]",)]


def test_a_card_number_in_a_deletion_reason_is_never_stored(deletions_service) -> None:  # type: ignore[no-untyped-def]
    service = deletions_service
    admin, csrf = service.login("root-admin")
    made = admin.post("/api/deletions", headers={"X-CSRF-Token": csrf},
                      json={"reason": "told us 5500 0055 5555 5559 on the line", "call_ids": ["c-red-1"]})
    assert made.status_code == 201, made.text
    stored = "told us [card ****5559] on the line"
    assert made.json()["reason"] == stored
    assert _stored(service, "SELECT reason FROM deletion_requests") == [(stored,)]


def _unmask_flags(service, user: str, action: str) -> list[bool]:  # type: ignore[no-untyped-def]
    return [json.loads(r["detail"]).get("unmask", False) for r in service.audit_rows(user)
            if r["action"] == action]


REASON = "caller 13812345678 disputes the charge"


def _unmask_flags(service, user: str, action: str) -> list[bool]:  # type: ignore[no-untyped-def]
    return [json.loads(r["detail"]).get("unmask", False) for r in service.audit_rows(user)
            if r["action"] == action]


def test_a_replay_reason_is_shown_as_typed_to_its_requester_and_masked_to_approvers(replay_service) -> None:  # type: ignore[no-untyped-def]
    service = replay_service
    lead, csrf = service.login("lead-red")
    asked = lead.post("/api/calls/c-red-1/replay-requests", headers={"X-CSRF-Token": csrf},
                      json={"reason": REASON})
    assert asked.status_code == 201, asked.text
    assert lead.get("/api/replay-requests").json()["requests"][0]["reason"] == REASON  # the author
    comp, _ = service.login("comp")  # an approver (auditor, holds calls.unmask)
    shown = comp.get("/api/replay-requests").json()["requests"][0]["reason"]
    assert "13812345678" not in shown and "138****5678" in shown
    page = comp.get("/replay-requests").text
    assert "13812345678" not in page and "138****5678" in page and 'id="unmask-link"' in page
    assert comp.get("/api/replay-requests?unmask=1").json()["requests"][0]["reason"] == REASON
    assert REASON in comp.get("/replay-requests?unmask=1").text
    assert _unmask_flags(service, "comp", "replay.list") == [False, False, True, True]
    # a requester reads only their own requests, each as typed
    alice, a_csrf = service.login("alice")
    assert alice.post("/api/calls/c-red-1/replay-requests", headers={"X-CSRF-Token": a_csrf},
                      json={"reason": "for QA 0151 1234 5678"}).status_code == 201
    assert [g["reason"] for g in alice.get("/api/replay-requests").json()["requests"]] == [
        "for QA 0151 1234 5678"]


def test_deletion_reasons_and_refusal_notes_are_masked_but_to_their_authors(deletions_service) -> None:  # type: ignore[no-untyped-def]
    service = deletions_service
    admin, csrf = service.login("root-admin")
    made = admin.post("/api/deletions", headers={"X-CSRF-Token": csrf},
                      json={"reason": REASON, "call_ids": ["c-red-1"]})
    assert made.status_code == 201, made.text
    req = made.json()["id"]
    assert made.json()["reason"] == REASON  # the requester's own answer
    comp, c_csrf = service.login("comp")
    listed = comp.get("/api/deletions").json()["requests"][0]["reason"]
    assert "13812345678" not in listed and "138****5678" in listed
    assert "13812345678" not in comp.get(f"/api/deletions/{req}").text
    page = comp.get("/deletions").text
    assert "13812345678" not in page and 'id="unmask-link"' in page
    assert REASON in comp.get("/deletions?unmask=1").text
    assert comp.get(f"/api/deletions/{req}?unmask=1").json()["reason"] == REASON
    assert _unmask_flags(service, "comp", "deletion.list") == [False, False, True]
    assert _unmask_flags(service, "comp", "deletion.view") == [False, True]
    note = "called back on 0151 1234 5678, card 4111111111111111, no dispute"
    refused = comp.post(f"/api/deletions/{req}/refuse", headers={"X-CSRF-Token": c_csrf},
                        json={"reason": note})
    assert refused.status_code == 200, refused.text
    assert "4111111111111111" not in json.dumps(_stored(service, "SELECT result FROM deletion_requests"))
    # the refusal's author reads their note (card redacted for good), the requester masked
    assert "0151 1234 5678" in refused.json()["result"]["refused"]
    theirs = admin.get("/api/deletions").json()["requests"][0]
    assert theirs["reason"] == REASON and "0151 1234 5678" not in theirs["result"]["refused"]
    assert "[card ****1111]" in theirs["result"]["refused"]
    assert "0151 1234 5678" in admin.get("/api/deletions?unmask=1").text  # admin holds calls.unmask
