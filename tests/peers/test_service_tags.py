"""Tags over HTTP: the vocabulary (admin only, strict, retire never deletes), tagging a call within
the row scope (an agent only their own calls) with vocabulary tags only, at most 20 a call, bulk
tagging from the selected rows or the whole filter (count confirmed, at most 5,000, audited with
the filter and count), the search by tag on the written tags, and hostile labels shown as text."""

from __future__ import annotations

import json

import pytest

from pbx_recorder.service import api_tags, tag_store
from tests.peers.qa_support import audited, send

MANAGE = {
    "root-admin": 201,
    "lead-red": 403,
    "qa1": 403,
    "alice": 403,
    "comp": 403,
    "counsel": 403,
    "ops": 403,
}
# POST /api/calls/c-red-1/tags (alice's call; team red)
TAG = {"root-admin": 200, "lead-red": 200, "qa1": 404, "alice": 200, "comp": 403, "counsel": 403, "ops": 403}
HOSTILE = '<img src=x onerror="alert(1)">'


def _vocab(service, *tags: str) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = service.login("root-admin")
    for tag in tags:
        answer = send(
            admin,
            csrf,
            "POST",
            "/api/tags",
            {"tag": tag, "kind": "topic", "label_en": f"{tag} EN", "label_zh": f"{tag} 中文"},
        )
        assert answer.status_code == 201, answer.text


def _tags(service, call_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    admin, _ = service.login("root-admin")
    return list(admin.get(f"/api/calls/{call_id}").json()["tags"])


def _found(client, tag: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {c["call_id"] for c in client.get("/api/calls", params={"tag": tag}).json()["calls"]}


@pytest.mark.parametrize("user", sorted(MANAGE))
def test_vocabulary_by_role(seeded_service, user: str) -> None:  # type: ignore[no-untyped-def]
    client, csrf = seeded_service.login(user)
    answer = send(
        client, csrf, "POST", "/api/tags", {"tag": "complaint", "kind": "topic", "label_en": "Complaint"}
    )
    assert answer.status_code == MANAGE[user], answer.text
    retire = send(client, csrf, "POST", "/api/tags/vip/retire")
    assert retire.status_code == (404 if MANAGE[user] == 201 else 403)  # vip: on calls, not in the vocabulary
    page = client.get("/admin/tags", follow_redirects=False)
    assert page.status_code == (200 if MANAGE[user] == 201 else 403)
    if MANAGE[user] == 201:
        assert audited(seeded_service, user, "tags.add", "complaint")
    else:
        assert audited(seeded_service, user, "denied:tags.manage")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "topic", "label_en": "x"}, "tag:"),
        ({"tag": "two words", "kind": "topic", "label_en": "x"}, "tag:"),
        ({"tag": "a" * 41, "kind": "topic", "label_en": "x"}, "tag:"),
        ({"tag": "a", "kind": "mood", "label_en": "x"}, "kind:"),
        ({"tag": "a", "kind": "intent"}, "label_en:"),
        ({"tag": "a", "kind": "intent", "label_en": "x\n"}, "label_en:"),
        ({"tag": "a", "kind": "intent", "label_en": "x", "label_zh": "y" * 81}, "label_zh:"),
    ],
)
def test_vocabulary_validation_names_the_field(seeded_service, body, field: str) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = seeded_service.login("root-admin")
    answer = send(admin, csrf, "POST", "/api/tags", body)
    assert answer.status_code == 400 and answer.json()["error"].startswith(field), answer.text


@pytest.mark.parametrize("user", sorted(TAG))
def test_tag_a_call_by_role(seeded_service, user: str) -> None:  # type: ignore[no-untyped-def]
    _vocab(seeded_service, "complaint")
    client, csrf = seeded_service.login(user)
    answer = send(client, csrf, "POST", "/api/calls/c-red-1/tags", {"add": ["complaint"], "remove": ["vip"]})
    assert answer.status_code == TAG[user], answer.text
    if TAG[user] == 200:
        assert answer.json()["tags"] == ["complaint"] == _tags(seeded_service, "c-red-1")
        assert audited(seeded_service, user, "calls.tag", "c-red-1")
        lead, _ = seeded_service.login("lead-red")
        assert _found(lead, "complaint") == {"c-red-1"} and "c-red-1" not in _found(lead, "vip")
    else:
        assert _tags(seeded_service, "c-red-1") == ["vip"]
        assert audited(seeded_service, user, "denied:calls.tag", "c-red-1")


def test_an_agent_cannot_tag_another_agents_call(seeded_service) -> None:  # type: ignore[no-untyped-def]
    _vocab(seeded_service, "complaint")
    alice, csrf = seeded_service.login("alice")
    answer = send(alice, csrf, "POST", "/api/calls/c-red-2/tags", {"add": ["complaint"]})
    assert answer.status_code == 404  # bob's call: like an absent one
    assert "out_of_scope" in audited(seeded_service, "alice", "denied:calls.tag", "c-red-2")[0]["detail"]
    assert _tags(seeded_service, "c-red-2") == ["vip"]
    bulk = send(
        alice, csrf, "POST", "/api/tags/bulk", {"add": ["complaint"], "call_ids": ["c-red-1", "c-red-2"]}
    )
    assert bulk.status_code == 404 and _tags(seeded_service, "c-red-1") == ["vip"]  # nothing changed


def test_only_live_vocabulary_tags_are_set_and_twenty_at_most(seeded_service) -> None:  # type: ignore[no-untyped-def]
    _vocab(seeded_service, "old", *[f"t{i}" for i in range(25)])
    admin, csrf = seeded_service.login("root-admin")
    assert send(admin, csrf, "POST", "/api/calls/c-red-1/tags", {"add": ["old"]}).status_code == 200
    assert send(admin, csrf, "POST", "/api/tags/old/retire").json()["retired"] is True
    assert audited(seeded_service, "root-admin", "tags.retire", "old")
    refused = send(admin, csrf, "POST", "/api/calls/c-red-2/tags", {"add": ["old"]})
    assert refused.status_code == 400 and refused.json()["error"].startswith("add:")
    assert _found(admin, "old") == {"c-red-1"}  # a retired tag stays on its calls and searchable
    assert send(admin, csrf, "POST", "/api/calls/c-red-1/tags", {"add": ["nope"]}).status_code == 400
    assert (
        send(admin, csrf, "POST", "/api/tags", {"tag": "old", "kind": "topic", "label_en": "x"}).status_code
        == 409
    )
    many = send(admin, csrf, "POST", "/api/calls/c-red-1/tags", {"add": [f"t{i}" for i in range(18)]})
    assert many.status_code == 200 and len(many.json()["tags"]) == 20  # vip, old and 18 more
    over = send(admin, csrf, "POST", "/api/calls/c-red-1/tags", {"add": ["t20"]})
    assert over.status_code == 400 and "20" in over.json()["error"]
    whole = send(admin, csrf, "POST", "/api/tags/bulk", {"add": ["t20"], "call_ids": ["c-red-1", "c-blue-1"]})
    assert whole.status_code == 400 and "call c-red-1; nothing was changed" in whole.json()["error"]
    assert _tags(seeded_service, "c-blue-1") == [
        "vip"
    ]  # c-blue-1 (done first) rolled back: the bulk change is all or nothing
    assert send(admin, csrf, "POST", "/api/calls/c-red-1/tags", {"remove": ["old"]}).status_code == 200


def test_bulk_by_filter_confirms_the_count_and_audits_the_filter(seeded_service) -> None:  # type: ignore[no-untyped-def]
    _vocab(seeded_service, "pricing")
    lead, csrf = seeded_service.login("lead-red")
    url = "/api/tags/bulk?queue=sales&caller=%2B8613812345678"
    first = send(lead, csrf, "POST", url, {"add": ["pricing"]})
    assert first.status_code == 409 and first.json()["count"] == 1  # the lead's team: c-red-1 only
    assert _found(lead, "pricing") == set()
    wrong = send(lead, csrf, "POST", url, {"add": ["pricing"], "expect": 4})
    assert wrong.status_code == 409 and _found(lead, "pricing") == set()
    done = send(lead, csrf, "POST", url, {"add": ["pricing"], "expect": 1})
    assert done.status_code == 200 and done.json()["changed"] == 1
    assert _found(lead, "pricing") == {"c-red-1"}
    detail = json.loads(audited(seeded_service, "lead-red", "tags.bulk")[0]["detail"])
    assert detail["count"] == 1 and detail["filter"]["queue"] == "sales"
    assert "12345678" not in detail["filter"]["caller"]  # the number masked in the audit
    admin, csrf = seeded_service.login("root-admin")
    everything = send(admin, csrf, "POST", "/api/tags/bulk?queue=sales", {"add": ["pricing"], "expect": 4})
    assert everything.status_code == 200 and everything.json()["changed"] == 3
    assert _found(admin, "pricing") == {"c-red-1", "c-red-2", "c-blue-1", "c-blue-2"}


def test_bulk_refuses_a_filter_over_the_limit(seeded_service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _vocab(seeded_service, "pricing")
    monkeypatch.setattr(api_tags, "MAX_BULK", 3)
    admin, csrf = seeded_service.login("root-admin")
    answer = send(admin, csrf, "POST", "/api/tags/bulk?queue=sales", {"add": ["pricing"], "expect": 4})
    assert answer.status_code == 400 and "more than 3" in answer.json()["error"]
    assert _found(admin, "pricing") == set()


def test_bulk_of_selected_rows_by_role(seeded_service) -> None:  # type: ignore[no-untyped-def]
    _vocab(seeded_service, "pricing")
    for user, status in (("comp", 403), ("ops", 403), ("qa1", 200), ("lead-red", 404)):
        client, csrf = seeded_service.login(user)
        answer = send(client, csrf, "POST", "/api/tags/bulk", {"add": ["pricing"], "call_ids": ["c-blue-1"]})
        assert answer.status_code == status, (user, answer.text)
    assert _tags(seeded_service, "c-blue-1") == ["vip", "pricing"]
    detail = json.loads(audited(seeded_service, "qa1", "tags.bulk")[0]["detail"])
    assert detail["call_ids"] == ["c-blue-1"] and detail["add"] == ["pricing"]
    assert audited(seeded_service, "lead-red", "denied:calls.tag", "c-blue-1")
    assert audited(seeded_service, "comp", "denied:calls.tag")


def test_labels_are_shown_as_text_in_the_users_language(seeded_service) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = seeded_service.login("root-admin")
    assert (
        send(
            admin,
            csrf,
            "POST",
            "/api/tags",
            {"tag": "hostile", "kind": "intent", "label_en": HOSTILE, "label_zh": "高意向"},
        ).status_code
        == 201
    )
    assert send(admin, csrf, "POST", "/api/calls/c-red-1/tags", {"add": ["hostile"]}).status_code == 200
    for path in ("/admin/tags", "/calls", "/calls/c-red-1"):
        html = admin.get(path).text
        assert HOSTILE not in html and "&lt;img src=x" in html, path
    assert send(admin, csrf, "POST", "/api/me/lang", {"lang": "zh"}).status_code == 200
    assert "高意向" in admin.get("/calls").text and "高意向" in admin.get("/calls/c-red-1").text
    assert tag_store.TAG_RE.fullmatch("高意向")  # keys may be written in any script


def test_the_api_count_of_a_tag_beside_filters_says_whether_it_read_everything(seeded_service) -> None:  # type: ignore[no-untyped-def]
    # the search API's count of a tag beside a status reads a bounded part of the tag's index
    # (catalog.queries.build_bounded_count): its "complete" says whether the whole range was read
    admin, _ = seeded_service.login("root-admin")
    found = admin.get("/api/calls", params={"tag": "vip", "status": "answered", "queue": "sales"}).json()
    assert found["count"] == {"value": 4, "exact": True, "complete": True} and len(found["calls"]) == 4
    none = admin.get("/api/calls", params={"tag": "vip", "status": "failed"}).json()
    assert none["count"] == {"value": 0, "exact": True, "complete": True} and none["calls"] == []
    lead, _ = seeded_service.login("lead-red")  # a team's scope: the exact count, its own calls
    team = lead.get("/api/calls", params={"tag": "vip", "status": "answered"}).json()
    assert team["count"] == {"value": 2, "exact": True, "complete": True}
