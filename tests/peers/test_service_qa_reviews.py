"""QA reviews over HTTP: a reviewer reviews only the calls assigned to them (admin any), the score
is weighted and computed by the service, comments anchored to marks of the call or to a position
(a new mark), the author alone edits (audited before/after), and who reads which reviews."""

from __future__ import annotations

import json

import pytest

from tests.peers.player_support import put_wav
from tests.peers.qa_support import add_accounts, audited, make_card, send

# POST /api/calls/c-blue-1/reviews (assigned to qa1)
CREATE = {
    "root-admin": 201,
    "lead-red": 403,
    "qa1": 201,
    "alice": 403,
    "comp": 403,
    "counsel": 403,
    "ops": 403,
}
ANSWERS = {"greeting": True, "empathy": 3}  # (3 x 1 + 1 x 0.5) / 4 = 87.5


@pytest.fixture
def service(seeded_service):  # type: ignore[no-untyped-def]
    add_accounts(seeded_service)
    put_wav(seeded_service, "c-blue-1", "r-blue", 30, 1)
    return seeded_service


def _review(client, csrf, card, call="c-blue-1", **extra):  # type: ignore[no-untyped-def]
    return send(
        client,
        csrf,
        "POST",
        f"/api/calls/{call}/reviews",
        {"scorecard_id": card, "answers": ANSWERS, **extra},
    )


@pytest.mark.parametrize("user", sorted(CREATE))
def test_review_by_role(service, user: str) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    client, csrf = service.login(user)
    answer = _review(client, csrf, card)
    assert answer.status_code == CREATE[user], answer.text
    if CREATE[user] == 201:
        review = answer.json()
        assert review["score"] == 87.5 and review["reviewer"] == user and review["agent"] == "carol"
        assert audited(service, user, "qa.review", "c-blue-1")
    else:
        assert audited(service, user, "denied:qa.review", "c-blue-1")


def test_a_reviewer_cannot_review_a_call_not_assigned_to_them(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    qa, csrf = service.login("qa1")
    answer = _review(qa, csrf, card, call="c-red-1")
    assert answer.status_code == 404  # like an absent call
    denied = audited(service, "qa1", "denied:qa.review", "c-red-1")
    assert denied and "out_of_scope" in denied[0]["detail"]
    assert qa.get("/calls/c-red-1/review").status_code == 404
    admin, csrf = service.login("root-admin")
    assert _review(admin, csrf, card, call="c-red-1").status_code == 201  # admin any call


@pytest.mark.parametrize(
    ("answers", "score"),
    [
        ({"greeting": True, "empathy": 5}, 100.0),
        ({"greeting": False, "empathy": 1}, 0.0),
        ({"greeting": False, "empathy": 5}, 25.0),
        ({"greeting": True, "empathy": 1}, 75.0),
        ({"greeting": True, "empathy": 2}, 81.25),
    ],
)
def test_the_score_is_weighted_and_computed_by_the_service(service, answers, score) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    qa, csrf = service.login("qa1")
    answer = send(
        qa,
        csrf,
        "POST",
        "/api/calls/c-blue-1/reviews",
        {"scorecard_id": card, "answers": answers, "score": 100},
    )
    assert answer.status_code == 201 and answer.json()["score"] == score


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({"greeting": True}, "answers.empathy:"),
        ({"greeting": "yes", "empathy": 3}, "answers.greeting:"),
        ({"greeting": True, "empathy": 6}, "answers.empathy:"),
        ({"greeting": True, "empathy": 0}, "answers.empathy:"),
        ({"greeting": True, "empathy": 2.5}, "answers.empathy:"),
        ({"greeting": True, "empathy": True}, "answers.empathy:"),
        ({"greeting": True, "empathy": 3, "bonus": 1}, "answers.bonus:"),
        ([1, 2], "answers:"),
    ],
)
def test_answers_are_checked_against_the_criteria(service, answers, field: str) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    qa, csrf = service.login("qa1")
    answer = send(qa, csrf, "POST", "/api/calls/c-blue-1/reviews", {"scorecard_id": card, "answers": answers})
    assert answer.status_code == 400 and answer.json()["error"].startswith(field), answer.text


def test_comments_are_anchored_to_marks_of_the_call(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    put_wav(service, "c-red-1", "r-red", 30, 1)
    admin, csrf = service.login("root-admin")
    other = send(
        admin,
        csrf,
        "POST",
        "/api/calls/c-red-1/marks",
        {"recording_id": "r-red", "position_s": 1, "label": "x"},
    ).json()["id"]
    qa, csrf = service.login("qa1")
    own = send(
        qa,
        csrf,
        "POST",
        "/api/calls/c-blue-1/marks",
        {"recording_id": "r-blue", "position_s": 2, "label": "hold"},
    ).json()["id"]
    bad = _review(qa, csrf, card, comments=[{"text": "t", "mark_id": other}])
    assert bad.status_code == 400 and bad.json()["error"].startswith("comments[0].mark_id:")
    bad = _review(qa, csrf, card, comments=[{"text": "unanchored"}])
    assert bad.status_code == 400 and bad.json()["error"].startswith("comments[0]: anchor")
    bad = _review(qa, csrf, card, comments=[{"text": "t", "recording_id": "r-red", "position_s": 1}])
    assert bad.status_code == 400 and bad.json()["error"].startswith("comments[0].recording_id:")
    bad = _review(qa, csrf, card, comments=[{"text": "t", "recording_id": "r-blue", "position_s": 99}])
    assert bad.status_code == 400 and bad.json()["error"].startswith("comments[0].position_s:")
    good = _review(
        qa,
        csrf,
        card,
        comments=[
            {"text": "long hold", "mark_id": own},
            {"text": "<b>rude</b>", "recording_id": "r-blue", "position_s": 7.5},
        ],
    )
    assert good.status_code == 201, good.text
    comments = good.json()["comments"]
    assert comments[0] == {"mark_id": own, "text": "long hold"}
    made = [
        m for m in qa.get("/api/calls/c-blue-1/marks").json()["marks"] if m["id"] == comments[1]["mark_id"]
    ]
    assert made and made[0]["position_s"] == 7.5 and made[0]["note"] == "<b>rude</b>"
    assert audited(service, "qa1", "marks.add", "c-blue-1")
    html = qa.get("/calls/c-blue-1/review").text
    assert "&lt;b&gt;rude&lt;/b&gt;" in html and "<b>rude</b>" not in html
    assert _review(qa, csrf, card).status_code == 409  # one review per reviewer and scorecard: edit it


def test_the_author_alone_edits_audited_before_and_after(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    qa, csrf = service.login("qa1")
    review = _review(qa, csrf, card).json()
    edit = send(
        qa,
        csrf,
        "PUT",
        f"/api/qa/reviews/{review['id']}",
        {
            "answers": {"greeting": False, "empathy": 5},
            "comments": [{"text": "better", "recording_id": "r-blue", "position_s": 3}],
        },
    )
    assert edit.status_code == 200 and edit.json()["score"] == 25.0
    row = audited(service, "qa1", "qa.review.edit", "c-blue-1")
    detail = json.loads(row[0]["detail"])
    assert detail["before"]["score"] == 87.5 and detail["after"]["score"] == 25.0
    assert detail["before"]["answers"] == ANSWERS and detail["after"]["answers"]["greeting"] is False
    for user in ("qa2", "root-admin"):  # another reviewer of the same call, an admin: not the author
        client, csrf = service.login(user)
        answer = send(client, csrf, "PUT", f"/api/qa/reviews/{review['id']}", {"answers": ANSWERS})
        assert answer.status_code == 403
        assert audited(service, user, "denied:qa.review.edit")
    lead, csrf = service.login("lead-red")
    assert send(lead, csrf, "PUT", f"/api/qa/reviews/{review['id']}", {"answers": ANSWERS}).status_code == 403
    assert send(qa, csrf, "PUT", "/api/qa/reviews/999", {"answers": ANSWERS}).status_code in (403, 404)


# GET /api/calls/c-blue-1/reviews after qa1 and the admin reviewed it: who reads whose
READS = {
    "root-admin": {"qa1", "root-admin"},
    "qa1": {"qa1"},
    "qa2": set(),
    "carol": {"qa1", "root-admin"},
    "alice": 404,
    "lead-red": 404,
    "comp": 403,
    "counsel": 403,
    "ops": 403,
}


@pytest.mark.parametrize("user", sorted(READS))
def test_who_reads_which_reviews(service, user: str) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    for author in ("qa1", "root-admin"):
        client, csrf = service.login(author)
        assert _review(client, csrf, card).status_code == 201
    client, _ = service.login(user)
    answer = client.get("/api/calls/c-blue-1/reviews")
    expected = READS[user]
    if isinstance(expected, int):
        assert answer.status_code == expected
        assert audited(service, user, "denied:qa.read", "c-blue-1")
        return
    assert {r["reviewer"] for r in answer.json()["reviews"]} == expected
    page = client.get("/qa")
    assert page.status_code == 200
    assert ("87.5" in page.text) == bool(expected)


def test_the_qa_page_shows_a_reviewer_their_sample(service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(service)
    admin, csrf = service.login("root-admin")
    assert (
        send(admin, csrf, "POST", "/api/calls/c-red-1/qa-assignments", {"reviewer": "qa2"}).status_code == 201
    )
    qa, csrf = service.login("qa1")
    page = qa.get("/qa").text
    assert "c-blue-1" in page and "c-red-1" not in page
    assert _review(qa, csrf, card).status_code == 201
    page = qa.get("/qa").text
    done = page.split('id="qa-done"')[1]
    assert "c-blue-1" in done
    lead, _ = service.login("lead-red")
    assert "c-red-1" in lead.get("/qa").text and "c-blue-1" not in lead.get("/qa").text
    agent, _ = service.login("carol")
    assert 'id="qa-todo"' not in agent.get("/qa").text  # an agent never sees the sample


def test_a_review_out_of_scope_answers_as_an_absent_one(service) -> None:  # type: ignore[no-untyped-def]
    """Session-45 review: an absent review id answered "no such review" (not audited), a review on
    a call out of scope "no such call": anyone holding qa.review could list which ids exist."""
    card = make_card(service)
    admin, acsrf = service.login("root-admin")
    other = _review(admin, acsrf, card, call="c-red-1")
    assert other.status_code == 201, other.text
    qa, csrf = service.login("qa1")  # c-red-1 is not assigned to qa1
    hidden = send(qa, csrf, "PUT", f"/api/qa/reviews/{other.json()['id']}", {"answers": ANSWERS})
    absent = send(qa, csrf, "PUT", "/api/qa/reviews/99999", {"answers": ANSWERS})
    assert (hidden.status_code, hidden.json()) == (absent.status_code, absent.json()) == (
        404, {"error": "no such review"})
    assert audited(service, "qa1", "qa.review.absent") and audited(service, "qa1", "denied:qa.review")
