"""API tokens: Bearer only, SHA-256 at rest, a role no wider than the owner's, an expiry, revocation,
a disabled or demoted owner, no CSRF for bearer requests but the token's label in their audit."""

from __future__ import annotations

import pytest

from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service import api_token_store, user_admin
from tests.peers.authx_support import bearer
from tests.peers.service_support import USERS


@pytest.fixture
def svc(seeded_service):  # type: ignore[no-untyped-def]
    return seeded_service


def _make(svc, owner: str, role: str, days: int = 30, label: str = "nightly"):  # type: ignore[no-untyped-def]
    return user_admin.create_token(svc.ctx.accounts(), owner, role, days, label, max_days=365, actor="root",
                                   actor_role="host-admin", now=svc.clock.now)


def _db_text(svc) -> str:  # type: ignore[no-untyped-def]
    conn = open_catalog(svc.seeded.db)
    try:
        return repr([tuple(r) for r in conn.execute("SELECT * FROM api_tokens").fetchall()])
    finally:
        conn.close()


def test_a_bearer_token_acts_in_its_owners_scope_and_is_audited_with_its_label(svc) -> None:  # type: ignore[no-untyped-def]
    token, record = _make(svc, "alice", "agent", label="crm-sync")
    assert token not in _db_text(svc) and record.id_hash in _db_text(svc)
    client = svc.client()
    listed = client.get("/api/calls", headers=bearer(token))
    assert listed.status_code == 200 and {c["call_id"] for c in listed.json()["calls"]} == {"c-red-1"}
    assert client.get("/api/calls/c-blue-1", headers=bearer(token)).status_code == 404
    last = svc.audit_rows("alice")[-1]
    assert last["action"] == "denied:calls.view" and '"token":"crm-sync"' in last["detail"]
    # a cookie request afterwards carries no token label
    cookie_client, _ = svc.login("alice")
    cookie_client.get("/api/calls/c-blue-1")
    assert '"token"' not in svc.audit_rows("alice")[-1]["detail"]


def test_only_the_authorization_header_carries_a_token(svc) -> None:  # type: ignore[no-untyped-def]
    token, _ = _make(svc, "root-admin", "admin")
    client = svc.client()
    assert client.get("/api/calls", params={"access_token": token}).status_code == 401
    assert client.get("/api/calls", params={"token": token}).status_code == 401
    client.cookies.set("pbxr_session", token)
    assert client.get("/api/calls").status_code == 401
    fresh = svc.client()
    assert fresh.get("/api/calls", headers={"Authorization": f"Basic {token}"}).status_code == 401
    assert fresh.get("/api/calls", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert fresh.get("/api/calls", headers=bearer(token)).status_code == 200


def test_a_token_wider_than_its_owner_is_refused_at_creation(svc) -> None:  # type: ignore[no-untyped-def]
    from pbx_recorder.errors import ConfigError

    with pytest.raises(ConfigError, match="wider"):
        _make(svc, "alice", "admin")
    with pytest.raises(ConfigError, match="wider"):
        _make(svc, "comp", "legal")  # auditor -> legal adds download/export
    with pytest.raises(ConfigError, match="days"):
        _make(svc, "alice", "agent", days=366)
    with pytest.raises(ConfigError, match="days"):
        _make(svc, "alice", "agent", days=0)
    admin, csrf = svc.login("root-admin")
    answer = admin.post("/api/tokens", json={"user": "alice", "role": "supervisor", "days": 7},
                        headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 400 and svc.audit_rows("root-admin")[-1]["action"] == "denied:tokens.create"
    assert _db_text(svc) == "[]"


def test_revoked_expired_or_disabled_owner_answers_401(svc) -> None:  # type: ignore[no-untyped-def]
    token, record = _make(svc, "lead-red", "supervisor", days=1)
    client = svc.client()
    assert client.get("/api/calls", headers=bearer(token)).status_code == 200
    svc.clock.now += 86400
    assert client.get("/api/calls", headers=bearer(token)).status_code == 401  # expired
    token, record = _make(svc, "lead-red", "supervisor")
    admin, csrf = svc.login("root-admin")
    revoked = admin.delete(f"/api/tokens/{record.id_hash[:16]}", headers={"X-CSRF-Token": csrf})
    assert revoked.status_code == 200
    assert client.get("/api/calls", headers=bearer(token)).status_code == 401  # replay after revoke
    token, _ = _make(svc, "lead-red", "agent")
    assert client.get("/api/calls", headers=bearer(token)).status_code == 200
    user_admin.disable(svc.ctx.accounts(), "lead-red", actor="root", actor_role="host-admin",
                       now=svc.clock.now)
    assert client.get("/api/calls", headers=bearer(token)).status_code == 401


def test_demoting_the_owner_voids_a_token_now_wider_than_them(svc) -> None:  # type: ignore[no-untyped-def]
    token, _ = _make(svc, "counsel", "legal")
    client = svc.client()
    assert client.get("/api/calls", headers=bearer(token)).status_code == 200
    user_admin.set_role(svc.ctx.accounts(), "counsel", "agent", actor="root", actor_role="host-admin",
                        now=svc.clock.now)
    assert client.get("/api/calls", headers=bearer(token)).status_code == 401


def test_bearer_requests_need_no_csrf_but_cannot_mint_tokens(svc) -> None:  # type: ignore[no-untyped-def]
    token, _ = _make(svc, "root-admin", "admin", label="ops-bot")
    _, other = _make(svc, "alice", "agent")
    client = svc.client()
    assert client.delete(f"/api/tokens/{other.id_hash[:16]}", headers=bearer(token)).status_code == 200
    revoked = [r for r in svc.audit_rows("root-admin") if r["action"] == "tokens.revoke"][-1]
    assert '"token":"ops-bot"' in revoked["detail"]
    minted = client.post("/api/tokens", json={"user": "alice", "role": "agent", "days": 1},
                         headers=bearer(token))
    assert minted.status_code == 403


def test_last_used_is_rewritten_at_most_every_touch_interval(svc) -> None:  # type: ignore[no-untyped-def]
    token, record = _make(svc, "alice", "agent")
    client = svc.client()

    def last_used() -> float | None:
        rows = api_token_store.listing(svc.ctx.catalog.connection(), "alice")
        return next(t.last_used for t in rows if t.id_hash == record.id_hash)

    client.get("/api/calls", headers=bearer(token))
    first = last_used()
    svc.clock.now += 10
    client.get("/api/calls", headers=bearer(token))
    assert last_used() == first == svc.clock.now - 10
    svc.clock.now += svc.ctx.web.token_touch_s
    client.get("/api/calls", headers=bearer(token))
    assert last_used() == svc.clock.now


@pytest.mark.parametrize("name", sorted(USERS))
def test_token_endpoints_by_role(svc, name: str) -> None:  # type: ignore[no-untyped-def]
    client, csrf = svc.login(name)
    hdr = {"X-CSRF-Token": csrf}
    _, victim = _make(svc, "alice", "agent")
    answers = [client.get("/api/tokens"),
               client.post("/api/tokens", json={"user": "alice", "role": "agent", "days": 1}, headers=hdr),
               client.delete(f"/api/tokens/{victim.id_hash[:16]}", headers=hdr)]
    if USERS[name][0] == "admin":
        assert [a.status_code for a in answers] == [200, 201, 200]
        assert "token" not in answers[0].text.replace('"tokens"', "")
        assert client.delete("/api/tokens/00000000000000000", headers=hdr).status_code == 404
    else:
        assert [a.status_code for a in answers] == [403, 403, 403]
        assert [r["action"] for r in svc.audit_rows(name)][-3:] == ["denied:tokens.manage"] * 3
