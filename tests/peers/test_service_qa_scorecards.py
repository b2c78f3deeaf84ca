"""QA scorecards over HTTP: only admins make and retire them (every refusal audited), strict
validation with errors naming the field, never deleted, a retired one takes no new review."""

from __future__ import annotations

import pytest

from tests.peers.qa_support import CRITERIA, audited, make_card, send

CREATE = {
    "root-admin": 201,
    "lead-red": 403,
    "qa1": 403,
    "alice": 403,
    "comp": 403,
    "counsel": 403,
    "ops": 403,
}
READ = {"root-admin": 200, "lead-red": 200, "qa1": 200, "alice": 200, "comp": 403, "counsel": 403, "ops": 403}
PAGE = {"root-admin": 200, "lead-red": 403, "qa1": 403, "alice": 403, "comp": 403, "counsel": 403, "ops": 403}


@pytest.mark.parametrize("user", sorted(CREATE))
def test_scorecards_by_role(seeded_service, user: str) -> None:  # type: ignore[no-untyped-def]
    card = make_card(seeded_service, "first")
    client, csrf = seeded_service.login(user)
    answer = send(client, csrf, "POST", "/api/qa/scorecards", {"name": f"by {user}", "criteria": CRITERIA})
    assert answer.status_code == CREATE[user], answer.text
    retire = send(client, csrf, "POST", f"/api/qa/scorecards/{card}/retire")
    assert retire.status_code == (200 if CREATE[user] == 201 else 403)
    if CREATE[user] != 201:
        assert audited(seeded_service, user, "denied:qa.scorecards")
    else:
        assert audited(seeded_service, user, "qa.scorecards.add") and audited(
            seeded_service, user, "qa.scorecards.retire"
        )
    assert client.get("/api/qa/scorecards").status_code == READ[user]
    assert client.get("/admin/scorecards", follow_redirects=False).status_code == PAGE[user]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"criteria": CRITERIA}, "name:"),
        ({"name": "x" * 81, "criteria": CRITERIA}, "name:"),
        ({"name": "n", "criteria": []}, "criteria:"),
        ({"name": "n", "criteria": "greeting"}, "criteria:"),
        ({"name": "n", "criteria": [{"key": "Greeting", "label": "l", "kind": "yesno"}]}, "criteria[0].key:"),
        ({"name": "n", "criteria": [{"key": "a", "label": "", "kind": "yesno"}]}, "criteria[0].label:"),
        ({"name": "n", "criteria": [{"key": "a", "label": "l", "kind": "stars"}]}, "criteria[0].kind:"),
        (
            {"name": "n", "criteria": [{"key": "a", "label": "l", "kind": "scale", "max": 1}]},
            "criteria[0].max:",
        ),
        (
            {"name": "n", "criteria": [{"key": "a", "label": "l", "kind": "scale", "max": 11}]},
            "criteria[0].max:",
        ),
        (
            {"name": "n", "criteria": [{"key": "a", "label": "l", "kind": "yesno", "max": 5}]},
            "criteria[0].max:",
        ),
        (
            {"name": "n", "criteria": [{"key": "a", "label": "l", "kind": "yesno", "weight": 0}]},
            "criteria[0].weight:",
        ),
        (
            {"name": "n", "criteria": [{"key": "a", "label": "l", "kind": "yesno", "weight": True}]},
            "criteria[0].weight:",
        ),
        (
            {"name": "n", "criteria": [{"key": "a", "label": "l", "kind": "yesno", "weight": 101}]},
            "criteria[0].weight:",
        ),
        (
            {"name": "n", "criteria": [{"key": "a", "label": "l", "kind": "yesno", "colour": "red"}]},
            "criteria[0].colour:",
        ),
        (
            {
                "name": "n",
                "criteria": [
                    {"key": "a", "label": "l", "kind": "yesno"},
                    {"key": "a", "label": "m", "kind": "yesno"},
                ],
            },
            "criteria[1].key:",
        ),
        ({"name": "n", "criteria": CRITERIA, "score": 100}, "score:"),
    ],
)
def test_validation_names_the_field(seeded_service, body, field: str) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = seeded_service.login("root-admin")
    answer = send(admin, csrf, "POST", "/api/qa/scorecards", body)
    assert answer.status_code == 400 and answer.json()["error"].startswith(field), answer.text
    assert admin.get("/api/qa/scorecards").json()["scorecards"] == []


def test_retired_scorecards_stay_and_take_no_new_review(seeded_service) -> None:  # type: ignore[no-untyped-def]
    card = make_card(seeded_service)
    admin, csrf = seeded_service.login("root-admin")
    assert (
        send(admin, csrf, "POST", "/api/qa/scorecards", {"name": "basic", "criteria": CRITERIA}).status_code
        == 409
    )
    assert send(admin, csrf, "POST", f"/api/qa/scorecards/{card}/retire").json()["retired"] is True
    listed = admin.get("/api/qa/scorecards").json()["scorecards"]
    assert [(c["id"], c["retired"]) for c in listed] == [(card, True)]  # never deleted
    assert send(admin, csrf, "POST", "/api/qa/scorecards/999/retire").status_code == 404
    qa, csrf = seeded_service.login("qa1")
    answer = send(
        qa,
        csrf,
        "POST",
        "/api/calls/c-blue-1/reviews",
        {"scorecard_id": card, "answers": {"greeting": True, "empathy": 3}},
    )
    assert answer.status_code == 400 and answer.json()["error"].startswith("scorecard_id:")


def test_scorecard_text_is_shown_as_text(seeded_service) -> None:  # type: ignore[no-untyped-def]
    hostile = "<script>alert(1)</script>"
    make_card(seeded_service, hostile, [{"key": "a", "label": hostile, "kind": "yesno"}])
    admin, _ = seeded_service.login("root-admin")
    html = admin.get("/admin/scorecards").text
    assert hostile not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
