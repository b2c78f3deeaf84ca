"""Reports and the storage page over HTTP, every endpoint x role: admin and auditor read any team
and the overall report; the red team's lead only red (never blue, never overall); every other role
nothing; refusals are 403 and audited; views and downloads are audited; schedules are saved by
``reports.schedule`` holders for reports they may read; produced reports are seen by their owner
and admin only.  (Seeded: team red = alice, bob; blue = carol; every call in ISO week 2027-W02.)"""

from __future__ import annotations

import io
import json

import pytest

from tests.peers.service_support import USERS

WEEK = "2027-W02"
READERS_ANY = {"root-admin", "comp"}
ALL = sorted(USERS)


def _figures(svc, user: str, team: str | None):  # type: ignore[no-untyped-def]
    client, _ = svc.login(user)
    query = f"?period={WEEK}" + ("" if team is None else f"&team={team}")
    return client.get("/api/reports/figures" + query)


@pytest.mark.parametrize("user", ALL)
@pytest.mark.parametrize("team", ["", "red", "blue"])
def test_figures_by_role_and_team(seeded_service, user: str, team: str) -> None:  # type: ignore[no-untyped-def]
    answer = _figures(seeded_service, user, team)
    allowed = user in READERS_ANY or (user == "lead-red" and team == "red")
    assert answer.status_code == (200 if allowed else 403), (user, team, answer.text)
    actions = [r["action"] for r in seeded_service.audit_rows(user)]
    if allowed:
        data = answer.json()
        assert data["team"] == team and data["period"] == WEEK
        assert data["totals"]["calls"] == {"": 4, "red": 2, "blue": 2}[team]
        assert "reports.read" in actions
        assert "+86" not in answer.text  # counts only: no caller number
    else:
        assert "denied:reports.read" in actions


def test_a_lead_defaults_to_their_own_team(seeded_service) -> None:  # type: ignore[no-untyped-def]
    answer = _figures(seeded_service, "lead-red", None)
    assert answer.status_code == 200 and answer.json()["team"] == "red"


def test_a_bad_period_is_a_400(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client, _ = seeded_service.login("root-admin")
    assert client.get("/api/reports/figures?period=2027-W99").status_code == 400


@pytest.mark.parametrize("user", ALL)
def test_page_and_download_by_role(seeded_service, user: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = seeded_service.login(user)
    team = "red"
    page = client.get(f"/reports?period={WEEK}&team={team}", follow_redirects=False)
    xlsx = client.get(f"/reports/download.xlsx?period={WEEK}&team={team}", follow_redirects=False)
    allowed = user in READERS_ANY or user == "lead-red"
    assert page.status_code == (200 if allowed else 403), (user, page.status_code)
    assert xlsx.status_code == (200 if allowed else 403), (user, xlsx.status_code)
    actions = [r["action"] for r in seeded_service.audit_rows(user)]
    if allowed:
        assert 'id="chart-calls"' in page.text and "<svg" in page.text
        assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert {"reports.view", "reports.download"} <= set(actions)
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(xlsx.content))
        assert book["Summary"]["B2"].value == "red"
    else:
        assert actions.count("denied:reports.read") == 2


def test_the_lead_cannot_download_overall_or_another_team(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client, _ = seeded_service.login("lead-red")
    for team in ("", "blue"):
        assert client.get(f"/reports/download.xlsx?period={WEEK}&team={team}").status_code == 403
        assert client.get(f"/reports?period={WEEK}&team={team}").status_code == 403
    denied = [json.loads(r["detail"]) for r in seeded_service.audit_rows("lead-red")
              if r["action"] == "denied:reports.read"]
    assert sorted(d["team"] for d in denied) == ["", "", "blue", "blue"]


@pytest.mark.parametrize("user", ALL)
def test_storage_page_by_role(seeded_service, user: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = seeded_service.login(user)
    answer = client.get("/storage", follow_redirects=False)
    allowed = user in ("root-admin", "ops")
    assert answer.status_code == (200 if allowed else 403), (user, answer.status_code)
    actions = [r["action"] for r in seeded_service.audit_rows(user)]
    assert ("storage.view" if allowed else "denied:storage.read") in actions
    if allowed:
        assert 'id="storage-months"' in answer.text and 'id="storage-forecast"' in answer.text
        assert "c-red-1" not in answer.text and "+86" not in answer.text


def _schedule(client, csrf: str, team: str, **extra: str):  # type: ignore[no-untyped-def]
    return client.post("/api/report-schedules", headers={"X-CSRF-Token": csrf},
                       json={"name": "weekly", "period": "week", "team": team, **extra})


@pytest.mark.parametrize("user", ALL)
def test_saving_a_schedule_by_role(seeded_service, user: str) -> None:  # type: ignore[no-untyped-def]
    client, csrf = seeded_service.login(user)
    own = _schedule(client, csrf, "red")
    overall = _schedule(client, csrf, "")
    assert own.status_code == (201 if user in ("root-admin", "lead-red") else 403), (user, own.text)
    assert overall.status_code == (201 if user == "root-admin" else 403), (user, overall.text)
    actions = [r["action"] for r in seeded_service.audit_rows(user)]
    assert ("reports.schedule" in actions) == (user in ("root-admin", "lead-red"))
    if user not in ("root-admin",):
        assert any(a.startswith("denied:reports.") for a in actions)


def test_schedule_input_is_validated_and_csrf_required(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client, csrf = seeded_service.login("root-admin")
    assert _schedule(client, csrf, "red", mail_to="a@b.example\r\nBcc: x@y.example").status_code == 400
    assert client.post("/api/report-schedules", headers={"X-CSRF-Token": csrf},
                       json={"name": "x", "period": "day", "team": ""}).status_code == 400
    no_csrf = client.post("/api/report-schedules", json={"name": "x", "period": "week", "team": ""})
    assert no_csrf.status_code == 403


def test_deleting_a_schedule_is_for_its_owner_or_admin(seeded_service) -> None:  # type: ignore[no-untyped-def]
    lead, lead_csrf = seeded_service.login("lead-red")
    sid = _schedule(lead, lead_csrf, "red").json()["id"]
    admin, admin_csrf = seeded_service.login("root-admin")
    other = _schedule(admin, admin_csrf, "blue").json()["id"]
    token = {"X-CSRF-Token": lead_csrf}
    assert lead.post(f"/api/report-schedules/{other}/delete", headers=token).status_code == 404
    assert "denied:reports.unschedule" in [r["action"] for r in seeded_service.audit_rows("lead-red")]
    assert [s["id"] for s in lead.get("/api/report-schedules").json()["schedules"]] == [sid]
    assert len(admin.get("/api/report-schedules").json()["schedules"]) == 2
    assert lead.post(f"/api/report-schedules/{sid}/delete", headers=token).status_code == 200
    assert admin.post(f"/api/report-schedules/{other}/delete",
                      headers={"X-CSRF-Token": admin_csrf}).status_code == 200


def test_produced_reports_are_seen_by_their_owner_and_admin(seeded_service) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC

    from pbx_recorder.lifecycle.journal import open_catalog
    from pbx_recorder.reports import periods, queries, store

    lead, csrf = seeded_service.login("lead-red")
    sid = _schedule(lead, csrf, "red").json()["id"]
    conn = open_catalog(seeded_service.seeded.db)
    try:
        schedule = store.schedules(conn, "lead-red")[0]
        assert schedule.id == sid
        fig = queries.figures(conn, periods.parse("week", WEEK, UTC), "red", 1_800_000_000.0)
        report_id = store.produce(conn, schedule, "", fig, 1_800_000_000.0)
    finally:
        conn.close()
    assert report_id is not None
    for user in ALL:
        client, _ = seeded_service.login(user)
        page = client.get(f"/reports/produced/{report_id}", follow_redirects=False)
        xlsx = client.get(f"/reports/produced/{report_id}/download.xlsx", follow_redirects=False)
        expected = 200 if user in ("lead-red", "root-admin") else 403 if user not in READERS_ANY else 404
        assert (page.status_code, xlsx.status_code) == (expected, expected), (user, page.status_code)
        if expected == 200:
            listing = client.get(f"/reports?period={WEEK}&team=red").text
            assert f'href="/reports/produced/{report_id}"' in listing
        if expected == 404:
            assert "denied:reports.view" in [r["action"] for r in seeded_service.audit_rows(user)]


def test_pdf_download_follows_the_same_rules(seeded_service) -> None:  # type: ignore[no-untyped-def]
    from pypdf import PdfReader

    admin, _ = seeded_service.login("root-admin")
    answer = admin.get(f"/reports/download.pdf?period={WEEK}&team=red")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
    text = "".join(PdfReader(io.BytesIO(answer.content)).pages[0].extract_text().replace("\x00", "").split())
    assert f"Reports:{WEEK}·red" in text and "Calls2" in text and "+86" not in text
    assert "reports.download" in [r["action"] for r in seeded_service.audit_rows("root-admin")]
    for user, team in (("lead-red", "blue"), ("lead-red", ""), ("alice", "red")):
        client, _ = seeded_service.login(user)
        assert client.get(f"/reports/download.pdf?period={WEEK}&team={team}").status_code == 403, user
    assert "denied:reports.read" in [r["action"] for r in seeded_service.audit_rows("alice")]


def test_hostile_team_and_name_never_reach_a_header(seeded_service) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = seeded_service.login("root-admin")
    answer = admin.get(f"/reports/download.xlsx?period={WEEK}&team=" + '%22%3B%20x%3D1%0D%0AX-Evil%3A%201')
    assert answer.status_code == 200 and "x-evil" not in answer.headers
    name = f"report-{WEEK}-___x_1__X-Evil__1.xlsx"
    assert answer.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert admin.get("/api/reports/figures?period=9999-W52").status_code == 400  # no date overflow (500)
    bad = admin.post("/api/report-schedules", headers={"X-CSRF-Token": csrf},
                     json={"name": "a\r\nBcc: x@y.example", "period": "week", "team": ""})
    assert bad.status_code == 400


def test_a_lead_moved_off_a_team_no_longer_reads_its_produced_reports(seeded_service) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC

    from pbx_recorder.lifecycle.journal import Tx, open_catalog
    from pbx_recorder.reports import periods, queries, store

    lead, csrf = seeded_service.login("lead-red")
    _schedule(lead, csrf, "red")
    conn = open_catalog(seeded_service.seeded.db)
    try:
        schedule = store.schedules(conn, "lead-red")[0]
        fig = queries.figures(conn, periods.parse("week", WEEK, UTC), "red", 1_800_000_000.0)
        report_id = store.produce(conn, schedule, "", fig, 1_800_000_000.0)
        assert lead.get(f"/reports/produced/{report_id}").status_code == 200
        with Tx(conn):
            conn.execute("DELETE FROM user_teams WHERE user_name = 'lead-red'")
    finally:
        conn.close()
    assert lead.get(f"/reports/produced/{report_id}").status_code == 404
