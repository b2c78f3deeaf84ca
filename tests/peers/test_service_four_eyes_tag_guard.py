"""Four-eyes cannot be switched off by editing a call's tags: a tag of ``web.four_eyes.tags`` (or
one the call's recording rule set) is removed only by a role that approves replays, singly or in
bulk, each refusal audited; the audio stays closed without a grant; the tags a rule set count for
sensitivity even when ``calls.tags`` lost them; a vocabulary tag is still removed freely."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from pbx_recorder.config.model import FourEyesConfig
from pbx_recorder.service.four_eyes import guarded_tags, is_sensitive, rule_tags
from tests.peers.qa_support import audited, send
from tests.peers.service_support import make_service

#: the roles holding calls.tag but not calls.replay_approve, each with a sensitive call of its scope
TAGGERS = {"alice": "c-red-1", "lead-red": "c-red-2", "qa1": "c-blue-1"}
RULES = (SimpleNamespace(name="vip-line", action=SimpleNamespace(tags=("vip", "hotline"))),)


@pytest.fixture
def svc(tmp_path):  # type: ignore[no-untyped-def]
    service = make_service(tmp_path, four_eyes=FourEyesConfig(tags=("vip",), grant_minutes=30))
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _tags(svc, call_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    admin, _ = svc.login("root-admin")
    return list(admin.get(f"/api/calls/{call_id}").json()["tags"])


def _audio(client, call_id: str, user: str) -> int:  # type: ignore[no-untyped-def]
    download = "?download=1" if user == "lead-red" else ""
    return int(client.get(f"/api/recordings/r-{call_id}/audio{download}").status_code)


def _vocab(svc, tag: str) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = svc.login("root-admin")
    answer = send(admin, csrf, "POST", "/api/tags", {"tag": tag, "kind": "topic", "label_en": tag})
    assert answer.status_code == 201, answer.text


def test_rule_tags_count_for_sensitivity_and_are_guarded() -> None:
    assert rule_tags(RULES, "vip-line") == {"vip", "hotline"}
    assert rule_tags(RULES, "") == frozenset() and rule_tags(RULES, "gone") == frozenset()
    assert is_sensitive({"tags": [], "rule": "vip-line"}, ("vip",), (), rule_tags(RULES, "vip-line"))
    assert not is_sensitive({"tags": [], "rule": "other"}, ("vip",), (), rule_tags(RULES, "other"))
    assert guarded_tags(("vip",), {"hotline"}) == {"vip", "hotline"}


@pytest.mark.parametrize("user", sorted(TAGGERS))
def test_a_four_eyes_tag_is_not_removed_singly(svc, user: str) -> None:  # type: ignore[no-untyped-def]
    call_id = TAGGERS[user]
    client, csrf = svc.login(user)
    assert _audio(client, call_id, user) == 403
    refused = send(client, csrf, "POST", f"/api/calls/{call_id}/tags", {"remove": ["vip"]})
    assert refused.status_code == 403, refused.text
    assert _tags(svc, call_id) == ["vip"]
    denied = audited(svc, user, "denied:calls.tag", call_id)
    assert denied and json.loads(denied[-1]["detail"])["reason"] == "guarded_tag"
    assert _audio(client, call_id, user) == 403  # still needs a grant


@pytest.mark.parametrize("user", sorted(TAGGERS))
def test_a_four_eyes_tag_is_not_removed_in_bulk(svc, user: str) -> None:  # type: ignore[no-untyped-def]
    call_id = TAGGERS[user]
    client, csrf = svc.login(user)
    selected = send(client, csrf, "POST", "/api/tags/bulk", {"remove": ["vip"], "call_ids": [call_id]})
    assert selected.status_code == 403, selected.text
    for expect in (None, 1):  # the count step and the confirmed change over the whole filter
        body = {"remove": ["vip"], **({"expect": expect} if expect else {})}
        assert send(client, csrf, "POST", "/api/tags/bulk?queue=sales", body).status_code == 403
    assert _tags(svc, call_id) == ["vip"]
    assert len(audited(svc, user, "denied:tags.bulk", "/api/tags/bulk")) == 3
    assert not audited(svc, user, "tags.bulk")
    assert _audio(client, call_id, user) == 403


def test_a_vocabulary_tag_is_still_removed(svc) -> None:  # type: ignore[no-untyped-def]
    _vocab(svc, "complaint")
    alice, csrf = svc.login("alice")
    assert send(alice, csrf, "POST", "/api/calls/c-red-1/tags", {"add": ["complaint"]}).status_code == 200
    removed = send(alice, csrf, "POST", "/api/calls/c-red-1/tags", {"remove": ["complaint"]})
    assert removed.status_code == 200 and removed.json()["tags"] == ["vip"]
    lead, lcsrf = svc.login("lead-red")
    added = send(lead, lcsrf, "POST", "/api/tags/bulk", {"add": ["complaint"], "call_ids": ["c-red-2"]})
    assert added.status_code == 200, added.text
    bulk = send(lead, lcsrf, "POST", "/api/tags/bulk", {"remove": ["complaint"], "call_ids": ["c-red-2"]})
    assert bulk.status_code == 200 and bulk.json()["changed"] == 1 and _tags(svc, "c-red-2") == ["vip"]


def test_an_approver_may_remove_a_four_eyes_tag(svc) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = svc.login("root-admin")
    answer = send(admin, csrf, "POST", "/api/calls/c-blue-2/tags", {"remove": ["vip"]})
    assert answer.status_code == 200 and answer.json()["tags"] == []
    assert audited(svc, "root-admin", "calls.tag", "c-blue-2")


def test_tags_a_rule_set_stay_sensitive_and_guarded(svc) -> None:  # type: ignore[no-untyped-def]
    svc.ctx.config = SimpleNamespace(rules=RULES)  # type: ignore[attr-defined]
    # recorded under the rule; its tags already gone from calls.tags (edited before this fix)
    catalog = svc.ctx.catalog  # type: ignore[attr-defined]
    catalog.upsert_call({"call_id": "c-red-1", "rule": "vip-line", "tags": ["hotline"]})
    alice, csrf = svc.login("alice")
    assert _audio(alice, "c-red-1", "alice") == 403  # sensitive by the rule's own tags
    single = send(alice, csrf, "POST", "/api/calls/c-red-1/tags", {"remove": ["hotline"]})
    assert single.status_code == 403, single.text
    bulk = send(alice, csrf, "POST", "/api/tags/bulk", {"remove": ["hotline"], "call_ids": ["c-red-1"]})
    assert bulk.status_code == 403, bulk.text
    assert _tags(svc, "c-red-1") == ["hotline"]
    detail = json.loads(audited(svc, "alice", "denied:tags.bulk", "/api/tags/bulk")[-1]["detail"])
    assert detail["reason"] == "guarded_tag" and detail["call_id"] == "c-red-1"
    assert _audio(alice, "c-red-1", "alice") == 403
