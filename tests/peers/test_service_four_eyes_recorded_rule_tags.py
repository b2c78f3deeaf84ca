"""Four-eyes follows the tags a call's recording rule set *when the call was recorded* (sealed with
the row), not the rule as configured today: an admin who edits, renames or removes the rule (and,
being an approver, removes the tag from ``calls.tags``) does not open an older sensitive call to
anyone without a second person's grant, and a tag the rule set stays guarded.  A row written before
the tags were recorded keeps the old behaviour: its rule's tags as configured now."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder.catalog import Catalog
from pbx_recorder.config.model import FourEyesConfig
from pbx_recorder.core.rules import rules_from_dicts
from pbx_recorder.recording.call_seal import CallSealer, check_calls
from tests.peers.qa_support import send
from tests.peers.service_support import NOW, make_service
from tests.unit.test_call_seal_rule_tags import recorded_call

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(40, 72)))
CALL = "c-red-1"  # alice's call (seeded at NOW - 3600, tagged vip, with recording r-c-red-1)

#: the configuration's rules after an admin's edit
EDITS = {
    "tags dropped": [{"name": "vip-line", "match": {"queue": "sales"}, "action": {"record": "yes"}}],
    "rule renamed": [{"name": "priority-line", "match": {"queue": "sales"},
                      "action": {"record": "yes", "tags": ["vip", "hotline"]}}],
    "rule removed": [],
}


@pytest.fixture
def svc(tmp_path):  # type: ignore[no-untyped-def]
    service = make_service(tmp_path, four_eyes=FourEyesConfig(tags=("vip",), grant_minutes=30))
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _configure(svc, rules: list[dict]) -> None:  # type: ignore[no-untyped-def]
    svc.ctx.config = SimpleNamespace(rules=rules_from_dicts(rules))


def _record(svc, *tags: str) -> None:  # type: ignore[no-untyped-def]
    """The recorder writes the call's row (sealed) under ``vip-line``, which set ``tags``."""
    _configure(svc, [{"name": "vip-line", "match": {"queue": "sales"},
                      "action": {"record": "yes", "tags": list(tags)}}])
    recorder = Catalog(svc.seeded.db, clock=lambda: NOW, sealer=CallSealer(KEY))
    try:
        recorder.upsert_call(recorded_call(CALL, NOW - 3600, *tags))
        assert check_calls(recorder._conn(), KEY.public_key(), CALL) == []
    finally:
        recorder.close()


def _untag_as_admin(svc, tag: str) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = svc.login("root-admin")  # an approver may remove a four-eyes tag (audited)
    answer = send(admin, csrf, "POST", f"/api/calls/{CALL}/tags", {"remove": [tag]})
    assert answer.status_code == 200 and tag not in answer.json()["tags"], answer.text


def _audio(svc) -> int:  # type: ignore[no-untyped-def]
    alice, _ = svc.login("alice")
    return int(alice.get(f"/api/recordings/r-{CALL}/audio").status_code)


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_rule_edited_after_the_call_does_not_open_its_replay(svc, edit: str) -> None:  # type: ignore[no-untyped-def]
    _record(svc, "vip")
    _untag_as_admin(svc, "vip")
    assert _audio(svc) == 403  # sensitive by the rule's recorded tag
    _configure(svc, EDITS[edit])
    assert _audio(svc) == 403  # still: the rule's tags when the call was recorded
    alice, csrf = svc.login("alice")
    asked = send(alice, csrf, "POST", f"/api/calls/{CALL}/replay-requests", {"reason": "complaint #7"})
    assert asked.status_code == 201, asked.text  # (a call that needs no grant answers 409)
    comp, ccsrf = svc.login("comp")
    granted = send(comp, ccsrf, "POST", f"/api/replay-requests/{asked.json()['id']}/grant", {})
    assert granted.status_code == 200, granted.text
    assert _audio(svc) == 200  # with a second person's grant


def test_a_tag_the_rule_set_stays_guarded_after_the_rule_changes(svc) -> None:  # type: ignore[no-untyped-def]
    _record(svc, "vip", "hotline")
    _configure(svc, EDITS["tags dropped"])
    alice, csrf = svc.login("alice")
    for path, body in ((f"/api/calls/{CALL}/tags", {"remove": ["hotline"]}),
                       ("/api/tags/bulk", {"remove": ["hotline"], "call_ids": [CALL]})):
        refused = send(alice, csrf, "POST", path, body)
        assert refused.status_code == 403, (path, refused.text)
    admin, _ = svc.login("root-admin")
    assert "hotline" in admin.get(f"/api/calls/{CALL}").json()["tags"]


def test_a_row_from_before_follows_the_configured_rule_as_it_did(svc) -> None:  # type: ignore[no-untyped-def]
    # the seeded row records no rule tags (as every row written before schema 20)
    svc.ctx.catalog.upsert_call({"call_id": CALL, "rule": "vip-line"})
    assert svc.ctx.catalog.get_call(CALL)["rule_tags"] == ""
    _configure(svc, [{"name": "vip-line", "match": {"queue": "sales"},
                      "action": {"record": "yes", "tags": ["vip"]}}])
    _untag_as_admin(svc, "vip")
    assert _audio(svc) == 403  # its rule's tags, read from the configuration
    _configure(svc, EDITS["tags dropped"])
    assert _audio(svc) == 200  # the old behaviour, kept for rows that record nothing
