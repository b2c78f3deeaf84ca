"""A remote agent's dial string (``Local/<mobile>@from-queue/n``) is masked in every list; a role
without ``calls.unmask`` could still guess its hidden digits by exact-match searches on ``agent=``
(unthrottled) or by the bulk tag change's count answer (no audit row at all; session-45 review).
Now an agent value with more than 4 digits counts as a full-number search (audited, throttled),
the bulk change's count answer is audited, and the agent value is masked in both audit rows."""

from __future__ import annotations

import json

import pytest

from pbx_recorder.lifecycle.journal import open_catalog
from tests.peers.service_support import make_service

MOBILE = "4915112345678"
AGENT = f"Local/{MOBILE}@from-queue/n"


@pytest.fixture
def svc(tmp_path):  # type: ignore[no-untyped-def]
    service = make_service(tmp_path)
    conn = open_catalog(service.seeded.db)
    conn.execute("UPDATE calls SET agent = ? WHERE call_id = 'c-blue-1'", (AGENT,))  # assigned to qa1
    conn.close()
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def test_agent_guesses_are_throttled_like_number_searches(svc) -> None:  # type: ignore[no-untyped-def]
    qa, _ = svc.login("qa1")
    for i in range(20):
        answer = qa.get("/api/calls", params={"agent": f"Local/491511234{i:04d}@from-queue/n"})
        assert answer.status_code == 200
        svc.clock.now += 1
    refused = qa.get("/api/calls", params={"agent": AGENT})
    assert refused.status_code == 429  # before: 200, and the right guess returned the call
    rows = svc.audit_rows("qa1")
    assert [r["action"] for r in rows].count("calls.search.number") == 20
    assert rows[-1]["action"] == "throttled:calls.search.number"
    assert MOBILE not in json.dumps([r["detail"] for r in rows])
    assert qa.get("/api/calls", params={"agent": "alice"}).status_code == 200  # a name: no number


def test_the_bulk_tag_count_answer_is_audited_and_masked(svc) -> None:  # type: ignore[no-untyped-def]
    qa, csrf = svc.login("qa1")
    before = len(svc.audit_rows("qa1"))
    answer = qa.post("/api/tags/bulk", params={"agent": AGENT}, json={"remove": ["zzz"]},
                     headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 409 and answer.json()["count"] == 1
    rows = svc.audit_rows("qa1")[before:]
    assert "tags.bulk.count" in [r["action"] for r in rows]  # before: no row at all
    assert "calls.search.number" in [r["action"] for r in rows]
    assert MOBILE not in json.dumps([r["detail"] for r in rows])
