"""QA assignments by hand over HTTP: every endpoint x role, a lead only within their row scope and
only to QA accounts, unassign, every change and refusal audited; a reviewer lists only their own."""

from __future__ import annotations

import json

import pytest

from tests.peers.qa_support import add_accounts, audited, send

# on alice's call c-red-1 (team red), to qa1
ASSIGN = {
    "root-admin": 201,
    "lead-red": 201,
    "qa1": 403,
    "alice": 403,
    "comp": 403,
    "counsel": 403,
    "ops": 403,
}
LIST = {"root-admin": 200, "lead-red": 200, "qa1": 200, "alice": 403, "comp": 403, "counsel": 403, "ops": 403}


@pytest.mark.parametrize("user", sorted(ASSIGN))
def test_assign_by_role(seeded_service, user: str) -> None:  # type: ignore[no-untyped-def]
    client, csrf = seeded_service.login(user)
    answer = send(client, csrf, "POST", "/api/calls/c-red-1/qa-assignments", {"reviewer": "qa1"})
    assert answer.status_code == ASSIGN[user], answer.text
    if ASSIGN[user] == 201:
        row = audited(seeded_service, user, "qa.assign", "c-red-1")
        assert row and json.loads(row[0]["detail"])["reviewer"] == "qa1"
    else:
        assert audited(seeded_service, user, "denied:qa.assign", "c-red-1")


def test_a_lead_cannot_assign_a_call_of_another_team(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client, csrf = seeded_service.login("lead-red")
    answer = send(client, csrf, "POST", "/api/calls/c-blue-2/qa-assignments", {"reviewer": "qa1"})
    assert answer.status_code == 404  # like an absent call
    denied = audited(seeded_service, "lead-red", "denied:qa.assign", "c-blue-2")
    assert denied and "out_of_scope" in denied[0]["detail"]
    qa, _ = seeded_service.login("qa1")
    assert "c-blue-2" not in {a["call_id"] for a in qa.get("/api/qa/assignments").json()["assignments"]}
    admin, csrf = seeded_service.login("root-admin")  # admin assigns any call
    assert (
        send(admin, csrf, "POST", "/api/calls/c-blue-2/qa-assignments", {"reviewer": "qa1"}).status_code
        == 201
    )


@pytest.mark.parametrize("reviewer", ["alice", "lead-red", "nobody", "", None, 5])
def test_only_qa_accounts_get_assignments(seeded_service, reviewer) -> None:  # type: ignore[no-untyped-def]
    client, csrf = seeded_service.login("root-admin")
    answer = send(client, csrf, "POST", "/api/calls/c-red-1/qa-assignments", {"reviewer": reviewer})
    assert answer.status_code == 400 and answer.json()["error"].startswith("reviewer:")
    assert audited(seeded_service, "root-admin", "denied:qa.assign", "c-red-1")


def test_unassign_is_audited_and_scoped(seeded_service) -> None:  # type: ignore[no-untyped-def]
    lead, csrf = seeded_service.login("lead-red")
    assert (
        send(lead, csrf, "POST", "/api/calls/c-red-2/qa-assignments", {"reviewer": "qa1"}).status_code == 201
    )
    assert (
        send(lead, csrf, "POST", "/api/calls/c-red-2/qa-assignments", {"reviewer": "qa1"}).status_code == 200
    )
    qa, _ = seeded_service.login("qa1")
    assert "c-red-2" in {a["call_id"] for a in qa.get("/api/qa/assignments").json()["assignments"]}
    assert send(lead, csrf, "DELETE", "/api/calls/c-red-2/qa-assignments/qa1").status_code == 200
    assert audited(seeded_service, "lead-red", "qa.unassign", "c-red-2")
    assert send(lead, csrf, "DELETE", "/api/calls/c-red-2/qa-assignments/qa1").status_code == 404
    assert qa.get("/calls/c-red-2/review").status_code == 404  # no longer theirs
    # the lead cannot remove the sampling's assignment of another team's call
    assert send(lead, csrf, "DELETE", "/api/calls/c-blue-1/qa-assignments/qa1").status_code == 404
    assert audited(seeded_service, "lead-red", "denied:qa.assign", "c-blue-1")
    agent, csrf = seeded_service.login("alice")
    assert send(agent, csrf, "DELETE", "/api/calls/c-red-1/qa-assignments/qa1").status_code == 403


@pytest.mark.parametrize("user", sorted(LIST))
def test_list_assignments_by_role(seeded_service, user: str) -> None:  # type: ignore[no-untyped-def]
    add_accounts(seeded_service)
    admin, csrf = seeded_service.login("root-admin")
    assert (
        send(admin, csrf, "POST", "/api/calls/c-red-1/qa-assignments", {"reviewer": "qa2"}).status_code == 201
    )
    client, _ = seeded_service.login(user)
    answer = client.get("/api/qa/assignments")
    assert answer.status_code == LIST[user]
    if LIST[user] != 200:
        assert audited(seeded_service, user, "denied:qa.assignments") or audited(
            seeded_service, user, "denied:qa.read"
        )
        return
    pairs = {(a["call_id"], a["reviewer"]) for a in answer.json()["assignments"]}
    expected = {
        "root-admin": {("c-blue-1", "qa1"), ("c-blue-1", "qa2"), ("c-red-1", "qa2")},
        "lead-red": {("c-red-1", "qa2")},  # the lead's team only
        "qa1": {("c-blue-1", "qa1")},
    }[user]  # a reviewer their own only
    assert pairs == expected
