"""Account management over HTTP: every endpoint x role, each change audited as an admin change,
the last enabled admin kept, and the changes taking effect (login, scope, sessions)."""

from __future__ import annotations

import pytest

from pbx_recorder.core.access_policy import HOST_ADMIN
from pbx_recorder.service import user_admin
from tests.peers.service_support import PASSWORD, USERS

NEW_PASSWORD = "another long passphrase"


@pytest.fixture
def svc(seeded_service):  # type: ignore[no-untyped-def]
    return seeded_service


def _calls(svc, name: str) -> set[str]:  # type: ignore[no-untyped-def]
    client, _ = svc.login(name)
    return {c["call_id"] for c in client.get("/api/calls").json()["calls"]}


CHANGES = (
    ("/api/users", {"name": "newbie", "role": "agent", "password": PASSWORD}),
    ("/api/users/alice/password", {"password": NEW_PASSWORD}),
    ("/api/users/alice/role", {"role": "qa"}),
    ("/api/users/lead-red/teams", {"teams": ["red", "blue"]}),
    ("/api/users/alice/reset-totp", {}),
    ("/api/teams/blue/agents", {"agents": ["carol", "dave"]}),
    ("/api/qa-assignments", {"call_id": "c-red-2", "reviewer": "qa1"}),
    ("/api/users/ops/disable", {}),
)


@pytest.mark.parametrize("name", sorted(USERS))
def test_admin_endpoints_by_role(svc, name: str) -> None:  # type: ignore[no-untyped-def]
    client, csrf = svc.login(name)
    listed = client.get("/api/users")
    answers = [client.post(path, json=body, headers={"X-CSRF-Token": csrf}) for path, body in CHANGES]
    if USERS[name][0] == "admin":
        assert listed.status_code == 200 and "argon2" not in listed.text
        assert [a.status_code for a in answers] == [200] * len(CHANGES), [a.text for a in answers]
        actions = [r["action"] for r in svc.audit_rows(name) if r["role"] == "admin"]
        for expected in ("users.add", "users.reset_password", "users.set_role", "users.set_teams",
                         "users.reset_totp", "teams.set_agents", "qa.assign", "users.disable"):
            assert expected in actions
    else:
        assert listed.status_code == 403
        assert [a.status_code for a in answers] == [403] * len(CHANGES)
        denied = [r for r in svc.audit_rows(name) if r["action"] == "denied:users.manage"]
        assert len(denied) == len(CHANGES) + 1 and all("192.0.2.7" in r["detail"] for r in denied)


def test_changes_need_the_csrf_token_and_name_real_users(svc) -> None:  # type: ignore[no-untyped-def]
    client, csrf = svc.login("root-admin")
    assert client.post("/api/users/alice/disable").status_code == 403
    assert client.post("/api/users/nobody/disable", headers={"X-CSRF-Token": csrf}).status_code == 404
    bad = client.post("/api/users", json={"name": "x", "role": "wizard", "password": PASSWORD},
                      headers={"X-CSRF-Token": csrf})
    assert bad.status_code == 400
    dup = client.post("/api/users", json={"name": "alice", "role": "agent", "password": PASSWORD},
                      headers={"X-CSRF-Token": csrf})
    assert dup.status_code == 409
    not_qa = client.post("/api/qa-assignments", json={"call_id": "c-red-1", "reviewer": "alice"},
                         headers={"X-CSRF-Token": csrf})
    assert not_qa.status_code == 400


def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(svc) -> None:  # type: ignore[no-untyped-def]
    client, csrf = svc.login("root-admin")
    hdr = {"X-CSRF-Token": csrf}
    assert client.post("/api/users/root-admin/disable", headers=hdr).status_code == 409
    assert client.post("/api/users/root-admin/role", json={"role": "auditor"}, headers=hdr).status_code == 409
    assert [r["action"] for r in svc.audit_rows("root-admin")][-2:] == ["denied:users.disable",
                                                                         "denied:users.set_role"]
    # a second admin is made on the host (an approver's account: service/provisioning.py)
    user_admin.add(svc.ctx.accounts(), "admin2", "admin", PASSWORD, [], actor="root", actor_role=HOST_ADMIN,
                   now=svc.clock.now)
    assert client.post("/api/users/admin2/disable", headers=hdr).status_code == 200
    assert client.post("/api/users/root-admin/role", json={"role": "it"}, headers=hdr).status_code == 409
    other, _ = svc.login("root-admin")
    assert other.get("/api/users").status_code == 200


def test_changes_take_effect(svc) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = svc.login("root-admin")
    hdr = {"X-CSRF-Token": csrf}
    alice, _ = svc.login("alice")
    reset = admin.post("/api/users/alice/password", json={"password": NEW_PASSWORD}, headers=hdr)
    assert reset.status_code == 200
    assert alice.get("/api/calls").status_code == 401  # the reset ended her sessions
    assert svc.client().post("/api/login", json={"name": "alice", "password": PASSWORD}).status_code == 401
    svc.login("alice", NEW_PASSWORD)
    assert _calls(svc, "lead-red") == {"c-red-1", "c-red-2"}
    admin.post("/api/users/lead-red/teams", json={"teams": ["blue"]}, headers=hdr)
    assert _calls(svc, "lead-red") == {"c-blue-1", "c-blue-2"}
    admin.post("/api/teams/blue/agents", json={"agents": ["carol", "alice"]}, headers=hdr)
    assert "c-red-1" in _calls(svc, "lead-red")
    admin.post("/api/qa-assignments", json={"call_id": "c-red-2", "reviewer": "qa1"}, headers=hdr)
    assert _calls(svc, "qa1") == {"c-blue-1", "c-red-2"}
    admin.post("/api/users/qa1/role", json={"role": "legal"}, headers=hdr)
    assert _calls(svc, "qa1") == {c for c in ("c-red-1", "c-red-2", "c-blue-1", "c-blue-2")}
    admin.post("/api/users/qa1/disable", headers=hdr)
    assert svc.client().post("/api/login", json={"name": "qa1", "password": PASSWORD}).status_code == 401
    rows = {u["name"]: u for u in admin.get("/api/users").json()["users"]}
    assert rows["qa1"]["disabled"] and rows["qa1"]["role"] == "legal"
    assert rows["lead-red"]["teams"] == ["blue"]
