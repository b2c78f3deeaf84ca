"""Shared pieces of the QA review and tag tests: a second QA reviewer and carol's agent account,
a scorecard, and audit look-ups."""

from __future__ import annotations

from typing import Any

from pbx_recorder.lifecycle.journal import open_catalog
from tests.peers.service_support import NOW, PASSWORD

#: greeting (yes/no, weight 3) and empathy (scale 1..5, weight 1)
CRITERIA = [{"key": "greeting", "label": "Greets the caller", "kind": "yesno", "weight": 3},
            {"key": "empathy", "label": "Empathy", "kind": "scale", "max": 5, "weight": 1}]


def add_accounts(service: Any) -> None:
    """qa2 (another QA reviewer, assigned c-blue-1 too) and carol (the agent of the blue calls)."""
    conn = open_catalog(service.seeded.db)
    try:
        accounts = service.accounts(conn)
        accounts.add("qa2", "qa", PASSWORD, actor="root", actor_role="host-admin", now=NOW)
        accounts.add("carol", "agent", PASSWORD, actor="root", actor_role="host-admin", now=NOW)
        accounts.assign_review("c-blue-1", "qa2", actor="root-admin", actor_role="admin", now=NOW)
    finally:
        conn.close()


def send(client: Any, csrf: str, method: str, url: str, body: Any = None) -> Any:
    return client.request(method, url, json=body, headers={"X-CSRF-Token": csrf})


def make_card(service: Any, name: str = "basic", criteria: list[dict[str, Any]] | None = None) -> int:
    admin, csrf = service.login("root-admin")
    answer = send(admin, csrf, "POST", "/api/qa/scorecards", {"name": name, "criteria": criteria or CRITERIA})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def audited(service: Any, user: str, action: str, target: str | None = None) -> list[dict[str, Any]]:
    return [r for r in service.audit_rows(user)
            if r["action"] == action and (target is None or r["target"] == target)]
