"""``/admin/teams`` and ``GET /api/teams``: every team with its accounts and the agents it covers,
for roles with ``users.manage`` only (403 audited for the others), one ``teams.list`` row a view;
the page's forms set a team's agents with its CSRF token, and a supervisor's row scope follows;
a team_agents row written by hand (no valid seal) is not listed, as it is not honoured; both
languages."""

from __future__ import annotations

import json
import re

import pytest

from pbx_recorder.service.roles import may
from pbx_recorder.web.messages_admin import MESSAGES
from tests.peers.authx_support import bearer
from tests.peers.service_support import USERS, insider_sql


@pytest.fixture
def svc(seeded_service):  # type: ignore[no-untyped-def]
    return seeded_service


def _csrf(page: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def _row(page: str, team: str) -> str:
    found = re.search(rf'<tr data-team="{team}">(.*?)</tr>', page, re.S)
    assert found, f"no row for team {team}"
    return found.group(1)


@pytest.mark.parametrize("name", sorted(USERS))
def test_only_account_managers_see_the_teams(svc, name: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = svc.login(name)
    page, api = client.get("/admin/teams"), client.get("/api/teams")
    if may(USERS[name][0], "users.manage"):
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        red = _row(page.text, "red")
        assert "lead-red (supervisor)" in red and 'value="alice, bob"' in red
        assert 'value="carol"' in _row(page.text, "blue")
        assert 'href="/admin/teams"' in page.text  # the menu links it
        assert api.status_code == 200
        assert api.json()["teams"] == [
            {"team": "blue", "members": [], "agents": ["carol"]},
            {"team": "red", "members": [{"name": "lead-red", "role": "supervisor", "disabled": False}],
             "agents": ["alice", "bob"]}]
        rows = [r for r in svc.audit_rows(name) if r["action"] == "teams.list"]
        assert len(rows) == 2  # one per read: the page's and the API's
        assert json.loads(rows[0]["detail"])["page"] == "/admin/teams"
        assert json.loads(rows[1]["detail"])["results"] == 2
    else:
        assert page.status_code == 403 and api.status_code == 403
        assert [r["action"] for r in svc.audit_rows(name)][-2:] == ["denied:users.manage"] * 2
        assert 'href="/admin/teams"' not in client.get("/calls").text
        assert "alice, bob" not in page.text and "carol" not in api.text


def test_the_pages_form_sets_a_teams_agents_and_the_scope_follows(svc) -> None:  # type: ignore[no-untyped-def]
    lead, _ = svc.login("lead-red")
    assert lead.get("/api/calls/c-blue-1").status_code == 404  # carol is blue's
    client, _ = svc.login("root-admin")
    page = client.get("/admin/teams").text
    form = _row(page, "red")
    assert 'data-url="/api/teams/{team}/agents"' in form and 'name="team" value="red"' in form
    url = "/api/teams/red/agents"
    assert client.post(url, json={"agents": ["carol"]}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    changed = client.post(url, json={"agents": ["alice", "bob", "carol"]},
                          headers={"X-CSRF-Token": _csrf(page)})
    assert changed.status_code == 200
    assert 'value="alice, bob, carol"' in _row(client.get("/admin/teams").text, "red")
    assert lead.get("/api/calls/c-blue-1").status_code == 200
    change = [r for r in svc.audit_rows("root-admin") if r["action"] == "teams.set_agents"][-1]
    assert change["target"] == "red" and json.loads(change["detail"])["agents"] == ["alice", "bob", "carol"]
    assert client.get("/static/admin_users.js").status_code == 200


def test_a_team_without_agents_says_its_supervisors_see_nothing_through_it(svc) -> None:  # type: ignore[no-untyped-def]
    client, _ = svc.login("root-admin")
    csrf = _csrf(client.get("/admin/teams").text)
    assert client.post("/api/teams/red/agents", json={"agents": []},
                       headers={"X-CSRF-Token": csrf}).status_code == 200
    red = _row(client.get("/admin/teams").text, "red")
    assert "lead-red (supervisor)" in red and MESSAGES["en"]["admin.teams.no_agents"] in red
    assert 'value=""' in red


def test_a_row_written_by_hand_is_not_listed(svc) -> None:  # type: ignore[no-untyped-def]
    insider_sql(svc, "INSERT INTO team_agents (team, agent, seal) VALUES ('red', 'carol', 'a1.forged')")
    insider_sql(svc, "INSERT INTO team_agents (team, agent, seal) VALUES ('ghost', 'dave', '')")
    client, _ = svc.login("root-admin")
    teams = {t["team"]: t["agents"] for t in client.get("/api/teams").json()["teams"]}
    assert teams == {"blue": ["carol"], "red": ["alice", "bob"]}  # what the row scopes honour
    lead, _ = svc.login("lead-red")
    assert lead.get("/api/calls/c-blue-1").status_code == 404


def test_a_token_of_an_admin_reads_the_teams(svc) -> None:  # type: ignore[no-untyped-def]
    from pbx_recorder.service import user_admin

    token, _ = user_admin.create_token(svc.ctx.accounts(), "root-admin", "admin", 30, "sync", max_days=365,
                                       actor="root", actor_role="host-admin", now=svc.clock.now)
    answer = svc.client().get("/api/teams", headers=bearer(token))
    assert answer.status_code == 200 and [t["team"] for t in answer.json()["teams"]] == ["blue", "red"]


def test_the_page_speaks_the_users_language(svc) -> None:  # type: ignore[no-untyped-def]
    svc.set_lang("root-admin", "zh")
    client, _ = svc.login("root-admin")
    page = client.get("/admin/teams").text
    assert MESSAGES["zh"]["admin.teams.title"] in page and MESSAGES["en"]["admin.teams.title"] not in page


def test_the_users_page_points_to_the_teams_page(svc) -> None:  # type: ignore[no-untyped-def]
    client, _ = svc.login("root-admin")
    page = client.get("/admin/users").text
    assert 'href="/admin/teams"' in page and MESSAGES["en"]["admin.users.team_agents_page"] in page


def test_without_a_session_the_page_is_refused(svc) -> None:  # type: ignore[no-untyped-def]
    assert svc.client().get("/admin/teams", follow_redirects=False).status_code in (302, 303, 401)
    assert svc.client().get("/api/teams").status_code == 401
