"""Four-eyes for a call written before its rule's tags were recorded (``calls.rule_tags`` ''): the
tags come from its recordings' signed manifests as the catalog holds them (a copy written before
schema 11 is the whole manifest), not from the rule as configured today.  An admin who edits the
rule (and, as an approver, removes the tag from ``calls.tags``) opens no older sensitive call; a
tag a rule gained since the call was recorded does not count either (as for a call that records
its tags).  Only a call whose copies hold no tags still follows the configured rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import MANIFEST_TOKEN, NumberProtection
from pbx_recorder.config.model import FourEyesConfig
from pbx_recorder.core.rules import rules_from_dicts
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.recording.manifest import Manifest, canonical_json
from pbx_recorder.service import four_eyes
from tests.peers.exports_support import finished, start
from tests.peers.qa_support import send
from tests.peers.service_support import NOW, Service, make_service

CALL, REC = "c-red-1", "r-c-red-1"  # alice's call, seeded tagged vip, with its recording


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = make_service(tmp_path, export_dir=tmp_path / "exports",
                           four_eyes=FourEyesConfig(tags=("vip",), grant_minutes=30))
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _rule(svc: Service, *tags: str) -> None:
    """The configuration's rule ``vip-line`` as it is now (after an admin's edit)."""
    svc.ctx.config = SimpleNamespace(rules=rules_from_dicts(  # type: ignore[attr-defined]
        [{"name": "vip-line", "match": {"queue": "sales"}, "action": {"record": "yes", "tags": list(tags)}}]))


def _whole(*tags: str) -> dict:
    """The signed manifest of the call's recording, as a recorder before schema 11 kept it whole."""
    return Manifest(recording_id=REC, call_id=CALL, rule="vip-line", tags=tags, created_at=NOW - 3600,
                    cdr={"src": "+8613812345678", "dst": "8001"}, callee_num="8001").to_dict()


def _old_row(svc: Service, *tags: str, numbers: NumberProtection | None = None,
             call_tags: tuple[str, ...] = ("vip",)) -> None:
    """The call as written before schema 20 (no rule tags recorded; ``call_tags``), its recording's
    catalog copy the whole manifest recording ``tags`` (sealed by ``numbers`` when given)."""
    svc.ctx.catalog.upsert_call({"call_id": CALL, "rule": "vip-line",  # type: ignore[attr-defined]
                                 "tags": list(call_tags)})
    assert svc.ctx.catalog.get_call(CALL)["rule_tags"] == ""  # type: ignore[attr-defined]
    copy = _whole(*tags) if numbers is None else numbers.seal_manifest(REC, _whole(*tags))
    conn = open_catalog(svc.seeded.db)
    try:
        conn.execute("UPDATE recordings SET manifest = ?, manifest_sha256 = '' WHERE recording_id = ?",
                     (canonical_json(copy).decode(), REC))
        conn.commit()
    finally:
        conn.close()


def _untag(svc: Service, user: str, tag: str) -> int:
    client, csrf = svc.login(user)
    return int(send(client, csrf, "POST", f"/api/calls/{CALL}/tags", {"remove": [tag]}).status_code)


def _audio(svc: Service) -> int:
    alice, _ = svc.login("alice")
    return int(alice.get(f"/api/recordings/{REC}/audio").status_code)


def _ask(svc: Service) -> int:
    alice, csrf = svc.login("alice")
    return int(send(alice, csrf, "POST", f"/api/calls/{CALL}/replay-requests", {"reason": "complaint #7"})
               .status_code)


def test_an_edited_rule_does_not_open_an_old_call_its_manifest_tags(svc: Service) -> None:
    _old_row(svc, "vip")
    _rule(svc)  # the admin dropped vip from the rule ...
    assert _untag(svc, "root-admin", "vip") == 200  # ... and from the call's tags (an approver)
    assert _audio(svc) == 403  # the manifest says the rule set vip when the call was recorded
    assert _ask(svc) == 201  # a request is accepted (a call that needs none answers 409)
    comp, csrf = svc.login("comp")
    request_id = four_eyes.pending(svc.ctx.catalog.connection())[0].id  # type: ignore[attr-defined]
    assert send(comp, csrf, "POST", f"/api/replay-requests/{request_id}/grant", {}).status_code == 200
    assert _audio(svc) == 200  # with a second person's grant


def test_a_sealed_whole_copy_is_read_too(svc: Service) -> None:
    numbers = NumberProtection(NumberCipher(lambda _kid: bytes(range(32)), "k1"), BlindIndex(b"h" * 32))
    _old_row(svc, "vip", numbers=numbers)
    svc.ctx.catalog.numbers = numbers  # type: ignore[attr-defined]
    _rule(svc)
    assert _untag(svc, "root-admin", "vip") == 200
    assert _audio(svc) == 403


def test_a_tag_the_rule_gained_since_does_not_count(svc: Service) -> None:
    """The choice: the manifest records what the rule set when the call was recorded, as
    ``rule_tags`` does for a newer call; a rule edited to add a tag changes the calls recorded after."""
    _old_row(svc, "hotline")
    _rule(svc, "hotline", "vip")
    assert _untag(svc, "root-admin", "vip") == 200  # the seeded row's own vip tag, removed
    assert _audio(svc) == 200
    assert _ask(svc) == 409  # needs no grant


def test_a_tag_from_the_manifest_stays_guarded(svc: Service) -> None:
    _old_row(svc, "vip", "hotline", call_tags=("hotline",))
    _rule(svc)
    client, _ = svc.login("root-admin")
    alice, acsrf = svc.login("alice")
    for path, body in ((f"/api/calls/{CALL}/tags", {"remove": ["hotline"]}),
                       ("/api/tags/bulk", {"remove": ["hotline"], "call_ids": [CALL]})):
        assert send(alice, acsrf, "POST", path, body).status_code == 403, path
    assert "hotline" in client.get(f"/api/calls/{CALL}").json()["tags"]


def test_an_export_holds_an_old_call_back_by_its_manifest(svc: Service) -> None:
    _old_row(svc, "vip")
    _rule(svc)
    assert _untag(svc, "root-admin", "vip") == 200
    client, csrf = svc.login("lead-red")
    answer = start(client, csrf, "audio", call_ids=[CALL])
    assert answer.status_code == 202, answer.text
    job = finished(client, answer.json()["id"])
    assert [p["recording_id"] for p in job["pending"]] == [REC]
    assert {p["reason"] for p in job["pending"]} == {"needs a replay grant (four-eyes)"}


def test_copies_without_tags_and_calls_without_recordings_follow_the_configuration(svc: Service) -> None:
    conn = svc.ctx.catalog.connection()  # type: ignore[attr-defined]
    found = four_eyes.manifest_tags_of(conn, ["c-red-2", "no-such", *(f"x{n}" for n in range(600))])
    assert found["c-red-2"] is None  # its copy (as from schema 11 on) keeps no tags
    assert found["no-such"] is None and len(found) == 602
    call = {"call_id": "c-red-2", "rule": "vip-line", "rule_tags": ""}
    rules = rules_from_dicts([{"name": "vip-line", "match": {},
                               "action": {"record": "yes", "tags": ["vip"]}}])
    assert four_eyes.set_by_rule(call, rules, found["c-red-2"]) == {"vip"}
    assert four_eyes.set_by_rule(call, rules, frozenset()) == frozenset()  # a manifest with no tags
    assert four_eyes.set_by_rule({**call, "rule_tags": '["x"]'}, rules, frozenset({"vip"})) == {"x"}


def test_a_token_is_opened_only_for_a_copy_that_shows_no_tags() -> None:
    numbers = NumberProtection(NumberCipher(lambda _kid: bytes(range(32)), "k1"), BlindIndex(b"h" * 32))
    token = numbers.cipher.encrypt(json.dumps({"tags": ["vip"]}), f"manifest/{REC}")
    hidden = {"files": [], MANIFEST_TOKEN: token}
    assert four_eyes.tags_in_copies([(REC, hidden)], numbers) == {"vip"}
    assert four_eyes.tags_in_copies([(REC, hidden)], None) is None
    assert four_eyes.tags_in_copies([("other", hidden)], numbers) is None  # bound to its recording
    copies = [(REC, '{"tags":["a"]}'), ("r2", '{"tags":["b"]}'), ("r3", "{}")]
    assert four_eyes.tags_in_copies(copies) == {"a", "b"}  # the union over the call's recordings
