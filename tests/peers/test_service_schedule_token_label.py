"""A report schedule made with an API token names the token in its audit row, like every other
row written for a token."""

from __future__ import annotations

import json


def test_a_schedule_made_with_a_token_carries_its_label(seeded_service) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = seeded_service.login("root-admin")
    asked = {"user": "lead-red", "role": "supervisor", "days": 5, "label": "robot"}
    made = admin.post("/api/tokens", json=asked, headers={"X-CSRF-Token": csrf})
    assert made.status_code in (200, 201), made.text
    bearer = {"Authorization": f"Bearer {made.json()['token']}"}
    answer = seeded_service.client().post("/api/report-schedules", headers=bearer,
                                          json={"name": "w", "period": "week", "team": "red", "mail_to": ""})
    assert answer.status_code == 201, answer.text
    rows = [r for r in seeded_service.audit_rows("lead-red") if r["action"] == "reports.schedule"]
    assert len(rows) == 1 and json.loads(rows[0]["detail"])["token"] == "robot"


def test_a_schedule_made_in_a_session_names_no_token(seeded_service) -> None:  # type: ignore[no-untyped-def]
    lead, csrf = seeded_service.login("lead-red")
    answer = lead.post("/api/report-schedules", headers={"X-CSRF-Token": csrf},
                       json={"name": "w", "period": "week", "team": "red", "mail_to": ""})
    assert answer.status_code == 201, answer.text
    row = [r for r in seeded_service.audit_rows("lead-red") if r["action"] == "reports.schedule"][-1]
    assert "token" not in json.loads(row["detail"])
