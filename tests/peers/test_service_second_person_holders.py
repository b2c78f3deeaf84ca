"""The second person of a two-person decision is a second person (pbx_recorder/service/provisioning.py):

* an approver's account (admin, auditor) is made, given its role, a new password or a new second
  factor on the host only: from the console each is 409 and audited, while the admins' other
  changes (taking the role away, disabling) stay theirs;
* an account made, or whose password, role or second factor was set, by the requester (or by an
  account the requester holds, and so on) does not decide the requester's requests, and the
  requester does not decide the requests of an account they hold: a replay request of an agent
  account the admin made is not the admin's to grant; a deletion request of the admin is not
  for an auditor whose password that admin once set (before this version, or before the host
  gave the account its role)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_recorder import audit_trail
from pbx_recorder.config.model import FourEyesConfig
from pbx_recorder.core.access_policy import HOST_ADMIN
from pbx_recorder.errors import AccessDenied
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service import provisioning, user_admin
from tests.peers.authx_support import bearer
from tests.peers.disposal_support import disposal_service
from tests.peers.service_support import NOW, PASSWORD, Service, make_service

NEW = "another long passphrase"


def _post(client, csrf: str, path: str, body: dict | None = None):  # type: ignore[no-untyped-def]
    return client.post(path, json=body or {}, headers={"X-CSRF-Token": csrf})


def _reasons(svc: Service, actor: str, action: str) -> list[str]:
    return [json.loads(r["detail"]).get("reason", "") for r in svc.audit_rows(actor) if r["action"] == action]


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = make_service(tmp_path, four_eyes=FourEyesConfig(tags=("vip",), grant_minutes=30))
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def test_an_approvers_account_is_provisioned_on_the_host_only(svc: Service) -> None:
    admin, csrf = svc.login("root-admin")
    for role in ("admin", "auditor"):
        made = _post(admin, csrf, "/api/users", {"name": f"new-{role}", "role": role, "password": PASSWORD})
        assert made.status_code == 409 and "on the host" in made.json()["error"], made.text
    assert _post(admin, csrf, "/api/users/alice/role", {"role": "auditor"}).status_code == 409
    assert _post(admin, csrf, "/api/users/comp/password", {"password": NEW}).status_code == 409
    assert _post(admin, csrf, "/api/users/comp/reset-totp").status_code == 409
    reasons = [r for a in ("users.add", "users.set_role", "users.reset_password", "users.reset_totp")
               for r in _reasons(svc, "root-admin", f"denied:{a}")]
    assert len(reasons) == 5 and all("on the host" in r for r in reasons)
    assert svc.client().post("/api/login", json={"name": "comp", "password": PASSWORD}).status_code == 200
    never_made = svc.client().post("/api/login", json={"name": "new-admin", "password": PASSWORD})
    assert never_made.status_code == 401
    # the host makes them (root or the service user, audited host-admin)
    accounts = svc.ctx.accounts()
    user_admin.add(accounts, "comp2", "auditor", PASSWORD, [], actor="root", actor_role=HOST_ADMIN, now=NOW)
    user_admin.reset_password(accounts, "comp", NEW, actor="root", actor_role=HOST_ADMIN, now=NOW)
    svc.login("comp", NEW)
    # the other admin changes stay the console's: a role taken away, a non-approver's password
    assert _post(admin, csrf, "/api/users/comp2/role", {"role": "agent"}).status_code == 200
    assert _post(admin, csrf, "/api/users/comp2/password", {"password": NEW}).status_code == 200
    assert _post(admin, csrf, "/api/users/comp/disable").status_code == 200
    assert _post(admin, csrf, "/api/users/alice/role", {"role": "legal"}).status_code == 200


def test_an_admin_does_not_grant_the_replay_request_of_an_account_they_made(svc: Service) -> None:
    admin, csrf = svc.login("root-admin")
    made = _post(admin, csrf, "/api/users", {"name": "stooge", "role": "agent", "password": PASSWORD})
    assert made.status_code == 200
    _post(admin, csrf, "/api/teams/red/agents", {"agents": ["alice", "bob", "stooge"]})
    _post(admin, csrf, "/api/users/stooge/role", {"role": "supervisor"})
    _post(admin, csrf, "/api/users/stooge/teams", {"teams": ["red"]})
    stooge, scsrf = svc.login("stooge")
    asked = _post(stooge, scsrf, "/api/calls/c-red-1/replay-requests", {"reason": "complaint #42"})
    assert asked.status_code == 201, asked.text
    grant_id = asked.json()["id"]
    refused = _post(admin, csrf, f"/api/replay-requests/{grant_id}/grant")
    assert refused.status_code == 403 and "made or set" in refused.json()["error"]
    assert any("made or set" in r for r in _reasons(svc, "root-admin", "denied:replay.grant"))
    assert stooge.get("/api/recordings/r-c-red-1/audio").status_code == 403  # still no grant
    comp, ccsrf = svc.login("comp")  # an approver the host made: a second person
    assert _post(comp, ccsrf, f"/api/replay-requests/{grant_id}/grant").status_code == 200
    assert stooge.get("/api/recordings/r-c-red-1/audio").status_code == 200


def test_an_admin_does_not_grant_the_replay_request_made_with_a_token_they_minted(svc: Service) -> None:
    """A token is the account for as long as it lives: its minter holds the account.  Before,
    one admin asked a replay with a supervisor's token they had minted and granted it themselves."""
    admin, csrf = svc.login("root-admin")
    minted = _post(admin, csrf, "/api/tokens", {"user": "lead-red", "role": "supervisor", "days": 1,
                                                "label": "wallboard"})
    assert minted.status_code == 201, minted.text
    as_lead = bearer(minted.json()["token"])
    client = svc.client()
    asked = client.post("/api/calls/c-red-1/replay-requests", json={"reason": "complaint #42"},
                        headers=as_lead)
    assert asked.status_code == 201, asked.text
    grant_id = asked.json()["id"]
    refused = _post(admin, csrf, f"/api/replay-requests/{grant_id}/grant")
    assert refused.status_code == 403 and "made or set" in refused.json()["error"]
    assert client.get("/api/recordings/r-c-red-1/audio", headers=as_lead).status_code == 403  # no grant
    conn = open_catalog(svc.seeded.db)
    try:
        assert "root-admin" in provisioning.holders(conn, "lead-red")
    finally:
        conn.close()
    comp, ccsrf = svc.login("comp")  # a second person
    assert _post(comp, ccsrf, f"/api/replay-requests/{grant_id}/grant").status_code == 200
    assert client.get("/api/recordings/r-c-red-1/audio", headers=as_lead).status_code == 200


def test_an_approvers_token_is_minted_on_the_host_only(svc: Service) -> None:
    """A token is a credential: an admin does not mint one of the compliance officer's account
    (or another admin's) from the console; their own, and a non-approver's, they do."""
    admin, csrf = svc.login("root-admin")
    for owner, role in (("comp", "auditor"), ("comp", "agent")):
        refused = _post(admin, csrf, "/api/tokens", {"user": owner, "role": role, "days": 1, "label": "x"})
        assert refused.status_code == 409 and "on the host" in refused.json()["error"], refused.text
    assert len([r for r in _reasons(svc, "root-admin", "denied:tokens.create") if "on the host" in r]) == 2
    own = _post(admin, csrf, "/api/tokens", {"user": "root-admin", "role": "agent", "days": 1, "label": "me"})
    assert own.status_code == 201, own.text
    assert _post(admin, csrf, "/api/tokens", {"user": "alice", "role": "agent", "days": 1}).status_code == 201
    token, _ = user_admin.create_token(svc.ctx.accounts(), "comp", "auditor", 1, "host", max_days=365,
                                       actor="root", actor_role=HOST_ADMIN, now=NOW)
    assert svc.client().get("/api/calls", headers=bearer(token)).status_code == 200


def test_holders_follow_the_chain_and_ignore_the_host(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    try:
        conn = open_catalog(svc.seeded.db)
        try:  # rows an older version let the console write: an admin made another admin, who made x
            audit_trail.record(conn, actor="root-admin", role="admin", action="users.add", target="adm2",
                               detail={"role": "admin"}, now=NOW)
            audit_trail.record(conn, actor="adm2", role="admin", action="users.reset_totp", target="x",
                               detail={}, now=NOW + 1)
            audit_trail.record(conn, actor="adm2", role="admin", action="users.set_teams", target="y",
                               detail={}, now=NOW + 2)  # not a holder's change
            conn.commit()
            assert provisioning.holders(conn, "x") == {"adm2", "root-admin"}
            assert provisioning.holders(conn, "y") == set()
            assert provisioning.holders(conn, "comp") == set()  # made by root on the host
            with pytest.raises(AccessDenied, match="made or set"):
                provisioning.require_independent(conn, "x", "root-admin", "a replay request")
            with pytest.raises(AccessDenied, match="the requester made or set"):
                provisioning.require_independent(conn, "root-admin", "x", "a deletion request")
            with pytest.raises(AccessDenied, match="someone other than its requester"):
                provisioning.require_independent(conn, "comp", "comp", "a deletion request")
            provisioning.require_independent(conn, "x", "comp", "a replay request")
            provisioning.require_independent(conn, "y", "root-admin", "a replay request")
        finally:
            conn.close()
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]


def test_an_auditor_whose_password_the_admin_set_does_not_approve_the_admins_deletion(tmp_path: Path) -> None:
    svc = disposal_service(tmp_path)
    try:
        admin, csrf = svc.login("root-admin")
        # the admin made an agent and set its password; the host later made it an auditor
        assert _post(admin, csrf, "/api/users", {"name": "x", "role": "agent", "password": PASSWORD}
                     ).status_code == 200
        assert _post(admin, csrf, "/api/users/x/password", {"password": NEW}).status_code == 200
        user_admin.set_role(svc.ctx.accounts(), "x", "auditor", actor="root", actor_role=HOST_ADMIN, now=NOW)
        asked = _post(admin, csrf, "/api/deletions", {"reason": "customer asked", "call_ids": ["c-red-1"]})
        assert asked.status_code == 201, asked.text
        req = asked.json()["id"]
        x, xcsrf = svc.login("x", NEW)
        refused = _post(x, xcsrf, f"/api/deletions/{req}/approve")
        assert refused.status_code == 403 and "made or set" in refused.json()["error"]
        assert _reasons(svc, "x", "denied:deletion.approve") == ["account_holder"]
        comp, ccsrf = svc.login("comp")
        done = _post(comp, ccsrf, f"/api/deletions/{req}/approve")
        assert done.status_code == 200 and done.json()["state"] == "executed", done.text
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]
