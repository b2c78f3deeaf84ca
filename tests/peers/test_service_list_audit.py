"""List reads of personal data are audited, one row per request: the call search (API and console
page), marks, QA reviews and QA assignments name the actor, the filter (numbers masked, free text
through the free-text masker) and how many rows came back; a refused list writes only the refusal
row; the call page names the other calls it lists; a poll without personal data writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.peers.qa_support import make_card, send

FULL = "+8613812345678"  # the caller of c-red-1 (alice's) and c-blue-2 (carol's)
ANSWERS = {"greeting": True, "empathy": 3}


@pytest.fixture
def service(marked_service):  # type: ignore[no-untyped-def]
    return marked_service


def _new_rows(service: Any, before: int) -> list[dict[str, Any]]:
    """The audit rows written since there were ``before``, details parsed."""
    return [{**r, "detail": json.loads(r["detail"])} for r in service.audit_rows()[before:]]


def _get(service: Any, client: Any, url: str, **params: str) -> tuple[Any, list[dict[str, Any]]]:
    before = len(service.audit_rows())
    answer = client.get(url, params=params)
    return answer, _new_rows(service, before)


def test_a_number_search_by_an_agent_writes_one_list_row_with_the_masked_filter(service) -> None:  # type: ignore[no-untyped-def]
    alice, _ = service.login("alice")
    answer, rows = _get(service, alice, "/api/calls", caller=FULL, agent="alice", **{"from": "1700000000"})
    assert answer.status_code == 200
    returned = answer.json()["calls"]
    assert [c["call_id"] for c in returned] == ["c-red-1"]  # her own call only
    listed = [r for r in rows if r["action"] == "calls.search"]
    assert len(listed) == 1, rows  # one row for the request, not one per call returned
    row = listed[0]
    assert (row["actor"], row["role"], row["target"]) == ("alice", "agent", "")
    detail = row["detail"]
    assert detail["results"] == 1 and detail["client"] == "192.0.2.7"
    assert detail["caller"] != FULL and "*" in detail["caller"] and detail["caller"].endswith("5678")
    assert detail["agent"] == "alice" and detail["start"] == 1_700_000_000.0  # a time stays a time
    assert "13812345678" not in json.dumps(rows)
    # the throttle's own row of the number search comes first, as before: nothing else
    assert [r["action"] for r in rows] == ["calls.search.number", "calls.search"]


def test_a_number_in_a_free_text_filter_is_masked(service) -> None:  # type: ignore[no-untyped-def]
    alice, _ = service.login("alice")
    answer, rows = _get(service, alice, "/api/calls", keyword="call 13800138000 back",
                        queue="销售13800138000")
    assert answer.status_code == 200 and answer.json()["calls"] == []
    # a keyword with a number is a number search (its throttle row first: test_free_text_numbers.py)
    assert [r["action"] for r in rows] == ["calls.search.number", "calls.search"]
    assert rows[0]["detail"]["keyword"] == "call 138****8000 back"
    detail = rows[1]["detail"]
    assert detail["keyword"] == "call 138****8000 back" and detail["queue"] == "销售138****8000"
    assert detail["results"] == 0 and "13800138000" not in json.dumps(rows, ensure_ascii=False)


def test_every_search_request_writes_exactly_one_row(service) -> None:  # type: ignore[no-untyped-def]
    lead, _ = service.login("lead-red")
    searches = ({}, {"queue": "sales"}, {"status": "answered", "limit": "1"},
                {"tag": "vip", "sort": "oldest"})
    for params in searches:
        answer, rows = _get(service, lead, "/api/calls", **params)
        assert answer.status_code == 200
        assert [r["action"] for r in rows] == ["calls.search"], params
        assert rows[0]["detail"]["results"] == len(answer.json()["calls"])
        assert all(rows[0]["detail"][k] == (int(v) if k == "limit" else v) for k, v in params.items()
                   if k != "sort")
    assert rows[0]["detail"]["order"] == "oldest"


def test_an_unmasked_search_writes_its_one_unmask_row(service) -> None:  # type: ignore[no-untyped-def]
    admin, _ = service.login("root-admin")
    answer, rows = _get(service, admin, "/api/calls", queue="sales", unmask="1")
    assert answer.status_code == 200 and len(answer.json()["calls"]) == 4
    assert [r["action"] for r in rows] == ["calls.search.unmask"]
    assert rows[0]["detail"]["results"] == 4 and rows[0]["detail"]["queue"] == "sales"


def test_the_console_search_page_writes_one_row_naming_the_page(service) -> None:  # type: ignore[no-untyped-def]
    lead, _ = service.login("lead-red")
    answer, rows = _get(service, lead, "/calls", caller="5678")
    assert answer.status_code == 200
    assert [r["action"] for r in rows] == ["calls.search.last4", "calls.search"]
    assert rows[1]["detail"]["page"] == "/calls" and rows[1]["detail"]["results"] == 1
    assert rows[1]["detail"]["caller"] != "5678"  # masked like any number in the log


def test_marks_list_writes_one_row(service) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = service.login("root-admin")
    for label in ("greeting", "complaint"):
        mark = {"recording_id": "r-wav", "position_s": 3, "label": label, "note": "n"}
        assert send(admin, csrf, "POST", "/api/calls/c-red-1/marks", mark).status_code == 201
    lead, _ = service.login("lead-red")
    answer, rows = _get(service, lead, "/api/calls/c-red-1/marks")
    assert answer.status_code == 200 and len(answer.json()["marks"]) == 2
    assert [(r["action"], r["actor"], r["target"]) for r in rows] == [("marks.list", "lead-red", "c-red-1")]
    assert rows[0]["detail"]["results"] == 2


def test_reviews_list_writes_one_row(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    qa, csrf = service.login("qa1")
    body = {"scorecard_id": card, "answers": ANSWERS}
    assert send(qa, csrf, "POST", "/api/calls/c-blue-1/reviews", body).status_code == 201
    carol, _ = service.login("carol")  # the agent reads the reviews of her own call
    answer, rows = _get(service, carol, "/api/calls/c-blue-1/reviews")
    assert answer.status_code == 200 and len(answer.json()["reviews"]) == 1
    assert [(r["action"], r["actor"], r["target"]) for r in rows] == [("qa.review.list", "carol", "c-blue-1")]
    assert rows[0]["detail"]["results"] == 1


@pytest.mark.parametrize("user,count,reviewer",
                         [("qa1", 1, "qa1"), ("root-admin", 2, None), ("lead-red", 0, None)])
def test_assignments_list_writes_one_row(service, user: str, count: int, reviewer: str | None) -> None:  # type: ignore[no-untyped-def]
    client, _ = service.login(user)
    answer, rows = _get(service, client, "/api/qa/assignments")
    assert answer.status_code == 200 and len(answer.json()["assignments"]) == count
    assert [(r["action"], r["actor"]) for r in rows] == [("qa.assignments.list", user)]
    assert rows[0]["detail"]["results"] == count and rows[0]["detail"].get("reviewer") == reviewer


def test_the_qa_page_writes_one_row(service) -> None:  # type: ignore[no-untyped-def]
    qa, _ = service.login("qa1")
    answer, rows = _get(service, qa, "/qa")
    assert answer.status_code == 200
    assert [r["action"] for r in rows] == ["qa.list"]
    assert rows[0]["detail"] | {"client": ""} == {"client": "", "page": "/qa", "assignments": 1, "reviews": 0,
                                                  "results": 1}


@pytest.mark.parametrize("user,url,status,refusal", [
    ("ops", "/api/calls", 403, "denied:calls.view"),
    ("ops", "/api/calls/c-red-1/marks", 403, "denied:calls.view"),
    ("qa1", "/api/calls/c-red-1/marks", 404, "denied:calls.view"),
    ("ops", "/api/qa/assignments", 403, "denied:qa.read"),
    ("alice", "/api/qa/assignments", 403, "denied:qa.assignments"),
    ("ops", "/api/calls/c-blue-1/reviews", 403, "denied:qa.read"),
    ("alice", "/api/calls/c-blue-1/reviews", 404, "denied:qa.read"),
])
def test_a_refused_list_writes_only_its_refusal(service, user: str, url: str, status: int,  # type: ignore[no-untyped-def]
                                               refusal: str) -> None:
    client, _ = service.login(user)
    answer, rows = _get(service, client, url)
    assert answer.status_code == status
    assert [r["action"] for r in rows] == [refusal]


def test_the_call_page_names_the_other_calls_it_lists_in_its_one_row(service) -> None:  # type: ignore[no-untyped-def]
    admin, _ = service.login("root-admin")
    answer, rows = _get(service, admin, "/calls/c-red-1")
    assert answer.status_code == 200 and "c-blue-2" in answer.text  # the same caller's other call
    assert [(r["action"], r["target"]) for r in rows] == [("calls.view", "c-red-1")]
    assert rows[0]["detail"]["others"] == ["c-blue-2"]
    api, rows = _get(service, admin, "/api/calls/c-red-1")  # one call over the API: audited as before
    assert api.status_code == 200
    assert [(r["action"], r["target"]) for r in rows] == [("calls.view", "c-red-1")]


def test_a_health_poll_writes_no_row(service) -> None:  # type: ignore[no-untyped-def]
    ops, _ = service.login("ops")
    for _ in range(3):  # the console polls it; it shows counts, no caller, no call
        answer, rows = _get(service, ops, "/api/health")
        assert answer.status_code == 200 and rows == []
