"""A remote agent's mobile number (the call's ``agent`` is then a dial string such as
``Local/4915112345678@from-queue/n``) is masked in every QA output as ``/api/calls`` masks it:
assignments, reviews (listed, created, edited), the /qa page, the review page and the call page."""

from __future__ import annotations

import pytest

from pbx_recorder.lifecycle.journal import open_catalog
from tests.peers.qa_support import make_card, send
from tests.peers.service_support import NOW

AGENT = "Local/4915112345678@from-queue/n"
CLEAR = "4915112345678"
MASKED = "Local/491******5678@from-queue/n"


@pytest.fixture
def service(seeded_service):  # type: ignore[no-untyped-def]
    call = {"call_id": "c-remote", "agent": AGENT, "caller_num": "+8613811112222", "callee_num": "8001",
            "status": "answered", "started_at": NOW - 100}
    seeded_service.ctx.catalog.upsert_call(call)
    conn = open_catalog(seeded_service.seeded.db)
    try:
        seeded_service.accounts(conn).assign_review("c-remote", "qa1", actor="root-admin", actor_role="admin",
                                                    now=NOW)
    finally:
        conn.close()
    return seeded_service


def test_qa_outputs_mask_a_remote_agents_number(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    qa, csrf = service.login("qa1")
    created = send(qa, csrf, "POST", "/api/calls/c-remote/reviews",
                   {"scorecard_id": card, "answers": {"greeting": True, "empathy": 3}})
    assert created.status_code == 201, created.text
    assert created.json()["agent"] == MASKED
    edited = send(qa, csrf, "PUT", f"/api/qa/reviews/{created.json()['id']}",
                  {"answers": {"greeting": False, "empathy": 1}})
    assert edited.status_code == 200 and edited.json()["agent"] == MASKED, edited.text
    assignments = qa.get("/api/qa/assignments").json()["assignments"]
    assert {a["call_id"]: a["agent"] for a in assignments} == {"c-remote": MASKED, "c-blue-1": "carol"}
    reviews = qa.get("/api/calls/c-remote/reviews").json()["reviews"]
    assert [r["agent"] for r in reviews] == [MASKED]
    for url in ("/qa", "/calls/c-remote", "/calls/c-remote/review", "/api/calls/c-remote"):
        answer = qa.get(url)
        assert answer.status_code == 200 and CLEAR not in answer.text, url
    assert "491******5678" in qa.get("/qa").text


def test_a_role_with_unmask_sees_the_number_only_where_it_asks(service) -> None:  # type: ignore[no-untyped-def]
    admin, _ = service.login("root-admin")
    assert admin.get("/api/calls/c-remote?unmask=1").json()["agent"] == AGENT  # explicit, audited
    assert admin.get("/api/calls/c-remote").json()["agent"] == MASKED
    assert CLEAR not in admin.get("/api/qa/assignments").text and CLEAR not in admin.get("/qa").text
