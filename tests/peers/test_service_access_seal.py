"""README "Security": the operator service's access control lives in the catalog, and an insider
who can write the catalog (a PostgreSQL DBA) but cannot read ``web.secret_key_file`` tries to
widen it by hand.  Each row written or changed that way is not honoured by the service (whose
access rows are sealed, ``service/access_seal.py``), and a legitimate change made afterwards does
not launder it.  Every test here fails on the code before the seal (the forged row was honoured).
"""

from __future__ import annotations

import pytest

from pbx_recorder.config.model import FourEyesConfig
from pbx_recorder.errors import CatalogError
from pbx_recorder.lifecycle.journal import Tx, open_catalog
from pbx_recorder.service import access_rows, access_seal, api_token_store, sessions
from tests.peers.service_support import NOW, PASSWORD, insider_sql, make_service

CHOSEN = "a token the insider chose, long enough"


@pytest.fixture
def svc(tmp_path):  # type: ignore[no-untyped-def]
    service = make_service(tmp_path, four_eyes=FourEyesConfig(tags=("vip",), grant_minutes=30))
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _login(svc, name: str) -> int:  # type: ignore[no-untyped-def]
    return int(svc.client().post("/api/login", json={"name": name, "password": PASSWORD}).status_code)


def test_a_role_written_by_hand_makes_no_admin_and_ends_the_account(svc) -> None:  # type: ignore[no-untyped-def]
    alice, _ = svc.login("alice")
    assert alice.get("/api/calls/c-blue-1").status_code == 404  # an agent: her own calls only
    insider_sql(svc, "UPDATE users SET role = 'admin' WHERE name = 'alice'")
    assert alice.get("/api/calls/c-blue-1").status_code == 401  # her session's account is none now
    assert alice.get("/api/users").status_code == 401
    assert _login(svc, "alice") == 401
    refused = [r for r in svc.audit_rows("alice") if r["action"] == "login.failed"]
    assert refused and '"reason":"seal"' in refused[-1]["detail"]


def test_a_legitimate_change_does_not_launder_a_forged_row(svc) -> None:  # type: ignore[no-untyped-def]
    insider_sql(svc, "UPDATE users SET role = 'admin' WHERE name = 'alice'")
    admin, csrf = svc.login("root-admin")
    answer = admin.post("/api/users/alice/password", json={"password": "another long password"},
                        headers={"X-CSRF-Token": csrf})
    assert answer.status_code in (404, 409, 500)  # refused, never re-sealed with role admin
    assert _login(svc, "alice") == 401
    conn = open_catalog(svc.seeded.db)
    try:  # every sealed change first checks the row's seal: the CLI, TOTP and grants alike
        with pytest.raises(CatalogError, match="fails its seal"), Tx(conn):
            access_seal.update(conn, svc.ctx.access_seal, "users", {"name": "alice"}, {"disabled": 0})
        assert conn.execute("SELECT role FROM users WHERE name = 'alice'").fetchone()[0] == "admin"
    finally:
        conn.close()


def test_a_session_or_token_written_by_hand_is_none(svc) -> None:  # type: ignore[no-untyped-def]
    insider_sql(svc, "INSERT INTO sessions (id_hash, user_name, csrf_hash, created_at, last_seen, client, "
                "stage) VALUES (?, 'root-admin', ?, ?, ?, '', 'ok')",
                (sessions.digest(CHOSEN), sessions.digest(sessions.csrf_for(CHOSEN)), NOW, NOW))
    client = svc.client()
    client.cookies.set("pbxr_session", CHOSEN)
    assert client.get("/api/users").status_code == 401
    insider_sql(svc, "INSERT INTO api_tokens (id_hash, user_name, role, label, created_at, expires_at, "
                "revoked) VALUES (?, 'root-admin', 'admin', 'x', ?, ?, 0)",
                (api_token_store.digest("pbxr_" + CHOSEN), NOW, NOW + 86400))
    bearer = {"Authorization": "Bearer pbxr_" + CHOSEN}
    assert svc.client().get("/api/users", headers=bearer).status_code == 401


def test_ones_own_session_moved_to_another_user_is_none(svc) -> None:  # type: ignore[no-untyped-def]
    alice, _ = svc.login("alice")
    assert alice.get("/api/calls/c-red-1").status_code == 200
    insider_sql(svc, "UPDATE sessions SET user_name = 'root-admin'")
    assert alice.get("/api/users").status_code == 401


def test_a_revoked_token_revived_by_hand_stays_revoked(svc) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = svc.login("root-admin")
    made = admin.post("/api/tokens", json={"user": "root-admin", "role": "agent", "days": 5},
                      headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    bearer = {"Authorization": "Bearer " + made.json()["token"]}
    assert svc.client().get("/api/calls").status_code == 401
    assert svc.client().get("/api/calls", headers=bearer).status_code == 200
    insider_sql(svc, "UPDATE api_tokens SET role = 'admin'")  # wider than issued
    assert svc.client().get("/api/calls", headers=bearer).status_code == 401
    insider_sql(svc, "UPDATE api_tokens SET role = 'agent'")  # back as issued: the seal holds again
    assert svc.client().get("/api/calls", headers=bearer).status_code == 200
    assert admin.delete(f"/api/tokens/{made.json()['id']}", headers={"X-CSRF-Token": csrf}).status_code == 200
    insider_sql(svc, "UPDATE api_tokens SET revoked = 0")
    assert svc.client().get("/api/calls", headers=bearer).status_code == 401


def test_an_agent_added_to_a_team_by_hand_widens_neither_scope_nor_report(svc) -> None:  # type: ignore[no-untyped-def]
    lead, _ = svc.login("lead-red")
    assert lead.get("/api/calls/c-blue-1").status_code == 404
    before = lead.get("/api/reports/figures?period=2027-01&team=red").json()
    insider_sql(svc, "INSERT INTO team_agents (team, agent) VALUES ('red', 'carol')")
    insider_sql(svc, "INSERT INTO user_teams (user_name, team) VALUES ('lead-red', 'blue')")
    assert lead.get("/api/calls/c-blue-1").status_code == 404
    assert {c["call_id"] for c in lead.get("/api/calls").json()["calls"]} == {"c-red-1", "c-red-2"}
    assert lead.get("/api/reports/figures?period=2027-01&team=red").json() == before
    assert lead.get("/api/reports/figures?period=2027-01&team=blue").status_code == 403


def test_a_qa_assignment_written_by_hand_opens_no_call(svc) -> None:  # type: ignore[no-untyped-def]
    qa, _ = svc.login("qa1")
    assert qa.get("/api/calls/c-red-1").status_code == 404
    insider_sql(svc, "INSERT INTO qa_assignments (call_id, reviewer, assigned_by, assigned_at) "
                "VALUES ('c-red-1', 'qa1', 'root-admin', ?)", (NOW,))
    assert qa.get("/api/calls/c-red-1").status_code == 404
    assert {c["call_id"] for c in qa.get("/api/calls").json()["calls"]} == {"c-blue-1"}
    assert {a["call_id"] for a in qa.get("/api/qa/assignments").json()["assignments"]} == {"c-blue-1"}
    admin, csrf = svc.login("root-admin")  # an admin's own assignment of the same call replaces it
    answer = admin.post("/api/calls/c-red-1/qa-assignments", json={"reviewer": "qa1"},
                        headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 201, answer.text
    assert qa.get("/api/calls/c-red-1").status_code == 200


def test_a_replay_grant_written_by_hand_is_not_honoured(svc) -> None:  # type: ignore[no-untyped-def]
    lead, csrf = svc.login("lead-red")
    assert lead.get("/api/recordings/r-c-red-1/audio").status_code == 403  # vip: four-eyes
    insider_sql(svc, "INSERT INTO replay_grants (call_id, requester, reason, requested_at, state, approver, "
                "decided_at, expires_at) VALUES ('c-red-1', 'lead-red', 'x', ?, 'granted', 'comp', ?, ?)",
                (NOW, NOW, NOW + 3600))
    assert lead.get("/api/recordings/r-c-red-1/audio").status_code == 403
    asked = lead.post("/api/calls/c-red-1/replay-requests", json={"reason": "complaint #7"},
                      headers={"X-CSRF-Token": csrf})
    assert asked.status_code == 201
    insider_sql(svc, "UPDATE replay_grants SET state = 'granted', approver = 'comp', decided_at = ?, "
                "expires_at = ? WHERE id = ?", (NOW, NOW + 3600, asked.json()["id"]))
    assert lead.get("/api/recordings/r-c-red-1/audio").status_code == 403
    comp, comp_csrf = svc.login("comp")
    assert asked.json()["id"] not in [r["id"] for r in comp.get("/api/replay-requests").json()["requests"]]


def test_the_admins_check_names_the_rows_and_seal_repairs_only_when_asked(svc) -> None:  # type: ignore[no-untyped-def]
    """In a catalog sealed before, a row without a seal was not written by the recorder: ``users
    seal`` leaves it (like a row failing its seal) unless asked, and names what each grants."""
    insider_sql(svc, "UPDATE users SET role = 'admin' WHERE name = 'alice'")
    insider_sql(svc, "INSERT INTO team_agents (team, agent) VALUES ('red', 'carol')")
    insider_sql(svc, "INSERT INTO users (name, role, password_hash, created_at, updated_at) "
                "VALUES ('mallory', 'admin', 'x', 1, 1)")
    conn = open_catalog(svc.seeded.db)
    try:
        seal = svc.ctx.access_seal
        found = access_rows.survey(conn, seal)
        assert found.sealed_before and found.broken == {"users": ["alice (role admin)"]}
        assert found.unsealed == {"team_agents": ["red/carol"], "users": ["mallory (role admin)"]}
        done = access_rows.seal_rows(conn, seal, include_broken=False, actor="root", role="host-admin",
                                     now=NOW)
        assert done.sealed == {}  # nothing sealed by default in a catalog sealed before
        audit = conn.execute("SELECT detail FROM audit_log WHERE action = 'users.seal'").fetchone()[0]
        assert "alice (role admin)" in audit and "mallory (role admin)" in audit and "red/carol" in audit
    finally:
        conn.close()
    assert _login(svc, "mallory") == 401 and _login(svc, "alice") == 401
    conn = open_catalog(svc.seeded.db)
    try:  # the admin checked them and says they are right after all
        access_rows.seal_rows(conn, svc.ctx.access_seal, include_broken=True, actor="root", role="host-admin",
                              now=NOW)
        assert access_rows.survey(conn, svc.ctx.access_seal).clean
    finally:
        conn.close()
    assert _login(svc, "alice") == 200


def test_the_service_does_not_start_on_rows_without_a_seal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A catalog upgraded to schema 21, or a key turned on later: its rows have no seal, and the
    service refuses to start (naming the command) rather than lock everyone out or seal them."""
    from pbx_recorder.errors import ConfigError
    from pbx_recorder.service.context import ServiceContext
    from pbx_recorder.service.secret_box import create_key_file
    from tests.peers.service_support import login_from_config, seed, service_config

    seeded = seed(tmp_path)  # written without a key: no row sealed
    key = create_key_file(tmp_path / "keys" / "web.key")
    config = service_config(tmp_path, seeded.db, key)
    with pytest.raises(ConfigError, match=r"users seal --check"):
        ServiceContext.from_config(config)
    conn = open_catalog(seeded.db)
    try:
        access_rows.seal_rows(conn, access_seal.from_file(key), include_broken=False, actor="root",
                              role="host-admin", now=NOW)
    finally:
        conn.close()
    assert login_from_config(config, "alice") == 200
