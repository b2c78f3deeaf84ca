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


#: the answers the sealed-row tests review with (87.5)
ANSWERS = {"greeting": True, "empathy": 3}


def review_as(service: Any, card: int, call: str = "c-blue-1", user: str = "qa1") -> int:
    """``user`` reviews ``call`` with ``card`` over HTTP (:data:`ANSWERS`); the review's id."""
    client, csrf = service.login(user)
    body = {"scorecard_id": card, "answers": ANSWERS}
    answer = send(client, csrf, "POST", f"/api/calls/{call}/reviews", body)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def seal_all(service: Any, include_broken: bool = False) -> Any:
    """``pbx-recorder users seal`` on the service's catalog (the audit chain checked without a
    signing key: the service tests have none); its report."""
    from pbx_recorder.service import access_rows

    conn = open_catalog(service.seeded.db)
    try:
        return access_rows.seal_rows(conn, service.ctx.access_seal, include_broken=include_broken,
                                     actor="root", role="host-admin", now=NOW)
    finally:
        conn.close()


def listed_reviews(service: Any, call: str = "c-blue-1") -> list[int]:
    """The ids of the call's reviews an admin is shown."""
    admin, _ = service.login("root-admin")
    answer = admin.get(f"/api/calls/{call}/reviews")
    assert answer.status_code == 200, answer.text
    return [int(r["id"]) for r in answer.json()["reviews"]]
