"""Four-eyes replay: a sensitive call (tag or rule) plays only with a live grant from a second
person; self-approval refused; the grant expires; a grant for one call opens no other; audited."""

from __future__ import annotations

import pytest

from pbx_recorder.config.model import FourEyesConfig
from pbx_recorder.service.four_eyes import is_sensitive
from tests.peers.service_support import USERS, make_service


@pytest.fixture
def svc(tmp_path):  # type: ignore[no-untyped-def]
    service = make_service(tmp_path, four_eyes=FourEyesConfig(tags=("vip",), grant_minutes=30))
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _ask(svc, name: str, call_id: str):  # type: ignore[no-untyped-def]
    client, csrf = svc.login(name)
    answer = client.post(f"/api/calls/{call_id}/replay-requests", json={"reason": "complaint #42"},
                         headers={"X-CSRF-Token": csrf})
    return client, answer


def _decide(svc, approver: str, grant_id: int, verb: str = "grant"):  # type: ignore[no-untyped-def]
    client, csrf = svc.login(approver)
    return client.post(f"/api/replay-requests/{grant_id}/{verb}", headers={"X-CSRF-Token": csrf})


def test_sensitivity_by_tag_or_rule() -> None:
    assert is_sensitive({"tags": ["vip"], "rule": ""}, ("vip", "finance"), ())
    assert is_sensitive({"tags": [], "rule": "board"}, (), ("board",))
    assert not is_sensitive({"tags": ["sales"], "rule": "other"}, ("vip",), ("board",))
    assert not is_sensitive({"tags": [], "rule": ""}, (), ("",))


def test_play_needs_a_grant_from_someone_else_and_only_for_that_call(svc) -> None:  # type: ignore[no-untyped-def]
    lead, asked = _ask(svc, "lead-red", "c-red-1")
    assert lead.get("/api/recordings/r-c-red-1/audio").status_code == 403
    denied = svc.audit_rows("lead-red")[-1]
    assert denied["action"] == "denied:calls.play" and "four_eyes" in denied["detail"]
    assert asked.status_code == 201
    grant_id = asked.json()["id"]
    assert "replay.request" in [r["action"] for r in svc.audit_rows("lead-red")]
    assert _decide(svc, "comp", grant_id).status_code == 200
    played = lead.get("/api/recordings/r-c-red-1/audio")
    assert played.status_code == 200 and played.content == svc.seeded.audio["r-c-red-1"]
    assert svc.audit_rows("lead-red")[-1]["action"] == "calls.play"
    assert lead.get("/api/recordings/r-c-red-1/audio?download=1").status_code == 200
    assert lead.get("/api/recordings/r-c-red-2/audio").status_code == 403  # another call: no grant
    counsel, _ = svc.login("counsel")  # another user: no grant
    assert counsel.get("/api/recordings/r-c-red-1/audio").status_code == 403
    assert "replay.grant" in [r["action"] for r in svc.audit_rows("comp")]


def test_self_approval_is_refused_even_for_an_approver(svc) -> None:  # type: ignore[no-untyped-def]
    admin, asked = _ask(svc, "root-admin", "c-blue-1")
    grant_id = asked.json()["id"]
    assert _decide(svc, "root-admin", grant_id).status_code == 403
    assert svc.audit_rows("root-admin")[-1]["action"] == "denied:replay.grant"
    assert admin.get("/api/recordings/r-c-blue-1/audio").status_code == 403
    assert _decide(svc, "comp", grant_id, "refuse").status_code == 200
    assert _decide(svc, "comp", grant_id).status_code == 403  # decided once
    assert admin.get("/api/recordings/r-c-blue-1/audio").status_code == 403


def test_the_grant_expires(svc) -> None:  # type: ignore[no-untyped-def]
    lead, asked = _ask(svc, "lead-red", "c-red-2")
    _decide(svc, "root-admin", asked.json()["id"])
    svc.clock.now += 29 * 60
    lead, _ = svc.login("lead-red")  # (the first session went idle)
    assert lead.get("/api/recordings/r-c-red-2/audio").status_code == 200
    svc.clock.now += 61
    lead, _ = svc.login("lead-red")
    assert lead.get("/api/recordings/r-c-red-2/audio").status_code == 403


def test_requests_respect_the_row_scope(svc) -> None:  # type: ignore[no-untyped-def]
    _, hidden = _ask(svc, "alice", "c-blue-1")
    _, absent = _ask(svc, "alice", "c-nonexistent")
    assert hidden.status_code == absent.status_code == 404 and hidden.content == absent.content
    _, ops = _ask(svc, "ops", "c-red-1")
    assert ops.status_code == 403


@pytest.mark.parametrize("name", sorted(USERS))
def test_replay_endpoints_by_role(svc, name: str) -> None:  # type: ignore[no-untyped-def]
    _, asked = _ask(svc, "alice", "c-red-1")
    grant_id = asked.json()["id"]
    client, csrf = svc.login(name)
    listed = client.get("/api/replay-requests")
    assert listed.status_code == 200
    decided = client.post(f"/api/replay-requests/{grant_id}/grant", headers={"X-CSRF-Token": csrf})
    if USERS[name][0] in ("admin", "auditor"):
        assert [r["id"] for r in listed.json()["requests"]] == [grant_id]
        assert decided.status_code == 200
    elif name == "alice":
        assert [r["id"] for r in listed.json()["requests"]] == [grant_id]
        assert decided.status_code == 403 and svc.audit_rows(name)[-1]["action"].startswith("denied:")
    else:
        assert listed.json()["requests"] == []
        assert decided.status_code == 403
        assert svc.audit_rows(name)[-1]["action"] == "denied:calls.replay_approve"
    missing = client.post("/api/replay-requests/99999/grant", headers={"X-CSRF-Token": csrf})
    assert missing.status_code == (404 if USERS[name][0] in ("admin", "auditor") else 403)


def test_four_eyes_config_is_validated_with_the_key_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pbx_recorder.config import load_config
    from pbx_recorder.errors import ConfigError

    cfg = tmp_path / "c.yaml"
    cfg.write_text("web:\n  four_eyes: {tags: [vip, finance], rules: [board], grant_minutes: 15}\n")
    rules = load_config(str(cfg)).web.four_eyes
    assert rules == FourEyesConfig(tags=("vip", "finance"), rules=("board",), grant_minutes=15)
    assert rules.enabled
    cfg.write_text("web:\n  four_eyes: {tag: [vip], grant_minutes: 0}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(cfg))
    assert "web.four_eyes.tag: unknown key" in str(err.value)
    assert "web.four_eyes.grant_minutes" in str(err.value)


def test_the_waveform_of_a_sensitive_call_needs_the_grant_too(svc) -> None:  # type: ignore[no-untyped-def]
    lead, _ = svc.login("lead-red")
    assert lead.get("/api/recordings/r-c-red-1/peaks").status_code == 403
    denied = svc.audit_rows("lead-red")[-1]
    assert denied["action"] == "denied:calls.play" and "four_eyes" in denied["detail"]
    _, asked = _ask(svc, "lead-red", "c-red-1")
    assert _decide(svc, "comp", asked.json()["id"]).status_code == 200
    # past the grant the request reaches the decoder (the seeded bytes are no audio: 422, not 403)
    assert lead.get("/api/recordings/r-c-red-1/peaks").status_code == 422


def test_the_player_page_shows_the_request_form_until_granted(svc) -> None:  # type: ignore[no-untyped-def]
    lead, _ = svc.login("lead-red")
    page = lead.get("/recordings/r-c-red-1/play").text
    assert 'id="replay-form"' in page and 'id="audio"' not in page
    _, asked = _ask(svc, "lead-red", "c-red-1")
    page = lead.get("/recordings/r-c-red-1/play").text
    assert 'id="replay-asked"' in page and 'id="audio"' not in page
    listed = svc.login("comp")[0].get("/replay-requests").text
    assert f'data-request="{asked.json()["id"]}"' in listed and "complaint #42" in listed
    assert 'class="replay-decide"' not in svc.login("lead-red")[0].get("/replay-requests").text
    assert _decide(svc, "comp", asked.json()["id"]).status_code == 200
    assert 'id="audio"' in lead.get("/recordings/r-c-red-1/play").text
