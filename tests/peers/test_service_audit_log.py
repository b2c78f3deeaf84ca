"""The audit log page and API (admin, auditor): every role, filters, paging, the streamed export
(itself audited, formula cells defused), the chain status, numbers masked, hostile text escaped."""

from __future__ import annotations

import csv
import io

import pytest

from pbx_recorder import audit_trail
from pbx_recorder.lifecycle.journal import open_catalog
from tests.peers.service_support import NOW, USERS

READERS = {"root-admin", "comp"}
PATHS = ("/api/audit", "/api/audit/export.csv", "/api/audit/chain", "/audit")


def _record(service, **row) -> None:  # type: ignore[no-untyped-def]
    conn = open_catalog(service.seeded.db)
    try:
        audit_trail.record(conn, now=row.pop("now", NOW), **row)
    finally:
        conn.close()


@pytest.mark.parametrize("name", sorted(USERS))
def test_every_role_on_every_audit_endpoint(seeded_service, name) -> None:  # type: ignore[no-untyped-def]
    client, _ = seeded_service.login(name)
    for path in PATHS:
        answer = client.get(path)
        last = seeded_service.audit_rows(name)[-1]
        if name in READERS:
            assert answer.status_code == 200, (path, answer.text)
            assert last["action"] in ("audit.list", "audit.export") or path.endswith("chain")
        else:
            assert answer.status_code == 403, path
            assert last["action"] == "denied:audit.read" and last["target"] == path
            assert "192.0.2.7" in last["detail"]


def test_filters_and_paging_by_id(seeded_service) -> None:  # type: ignore[no-untyped-def]
    for n in range(5):
        _record(seeded_service, actor="alice", role="agent", action="calls.view", target=f"c-{n}", detail={},
                now=NOW + n)
    client, _ = seeded_service.login("comp")
    first = client.get("/api/audit", params={"actor": "alice", "action": "calls.", "limit": 2}).json()
    assert [e["target"] for e in first["entries"]] == ["c-4", "c-3"]
    second = client.get("/api/audit", params={"actor": "alice", "action": "calls.", "limit": 2,
                                              "before": first["next_before"]}).json()
    third = client.get("/api/audit", params={"actor": "alice", "action": "calls.", "limit": 2,
                                             "before": second["next_before"]}).json()
    assert [e["target"] for e in second["entries"] + third["entries"]] == ["c-2", "c-1", "c-0"]
    assert third["next_before"] is None
    timed = client.get("/api/audit", params={"actor": "alice", "from": NOW + 1, "to": NOW + 3}).json()
    assert [e["target"] for e in timed["entries"]] == ["c-2", "c-1"]
    one = client.get("/api/audit", params={"target": "c-3"}).json()["entries"]
    assert [(e["actor"], e["action"]) for e in one] == [("alice", "calls.view")]
    assert client.get("/api/audit", params={"before": "x"}).status_code == 400
    assert client.get("/api/audit", params={"actor": "a" * 300}).status_code == 400


def test_the_export_is_audited_streamed_and_defuses_formulas(seeded_service) -> None:  # type: ignore[no-untyped-def]
    _record(seeded_service, actor="alice", role="agent", action="mark.add", target='=HYPERLINK("http://x")',
            detail={"note": "@SUM(A1)"})
    client, _ = seeded_service.login("root-admin")
    answer = client.get("/api/audit/export.csv", params={"actor": "alice"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["target"] for r in rows] == ["'=HYPERLINK(\"http://x\")"]
    assert rows[0]["detail"] == '{"note": "@SUM(A1)"}'  # JSON starts with '{': not a formula
    assert seeded_service.audit_rows("root-admin")[-1]["action"] == "audit.export"


def test_numbers_in_details_stay_masked(seeded_service) -> None:  # type: ignore[no-untyped-def]
    conn = open_catalog(seeded_service.seeded.db)
    try:  # a row written around the writer (legacy or forged): its number must still not show
        conn.execute("INSERT INTO audit_log (id, at, actor, role, action, target, detail) "
                     "VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM audit_log), ?, ?, ?, ?, ?, ?)",
                     (NOW, "old", "admin", "calls.search.unmask", "+8613812345678",
                      '{"caller": "+8613812345678", "note": "8613812345678"}'))
        conn.commit()
    finally:
        conn.close()
    client, _ = seeded_service.login("comp")
    for path in ("/api/audit", "/api/audit/export.csv", "/audit"):
        text = client.get(path, params={"actor": "old"}).text
        assert "13812345678" not in text and "old" in text, path


def test_the_chain_status_is_the_verify_check(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client, _ = seeded_service.login("comp")
    intact = client.get("/api/audit/chain").json()
    assert intact["ok"] is True and intact["rows"] > 0 and intact["problems"] == []
    assert "audit-chain ok" in client.get("/audit").text
    conn = open_catalog(seeded_service.seeded.db)
    try:  # an insider rewrites who did something
        conn.execute("UPDATE audit_log SET actor = 'lead-red' WHERE id = (SELECT MIN(id) FROM audit_log)")
        conn.commit()
    finally:
        conn.close()
    broken = client.get("/api/audit/chain", params={"full": "1"}).json()
    assert broken["ok"] is False and any("does not match its hash" in p for p in broken["problems"])
    page = client.get("/audit").text
    assert "audit-chain broken" in page and "BROKEN" in page


def test_between_full_passes_new_rows_are_checked_and_old_ones_at_the_next_full_pass(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client, _ = seeded_service.login("comp")
    assert client.get("/api/audit/chain").json()["full_pass"] is True
    seeded_service.clock.now += 60
    _record(seeded_service, actor="alice", role="agent", action="calls.view", target="c-red-1", detail={})
    quick = client.get("/api/audit/chain").json()
    assert quick["ok"] is True and quick["full_pass"] is False
    _tamper(seeded_service, "MIN")  # an old row rewritten: the quick pass does not recompute it ...
    assert client.get("/api/audit/chain").json()["ok"] is True
    seeded_service.clock.now += 300  # ... the next full pass, at most 5 minutes later, does
    late = client.get("/api/audit/chain").json()
    assert late["full_pass"] is True and late["ok"] is False


def test_a_new_row_rewritten_is_caught_by_the_quick_pass(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client, _ = seeded_service.login("comp")
    assert client.get("/api/audit/chain").json()["ok"] is True  # full pass, remembered
    seeded_service.clock.now += 10
    _record(seeded_service, actor="alice", role="agent", action="calls.view", target="c-red-1", detail={})
    _tamper(seeded_service, "MAX")
    quick = client.get("/api/audit/chain").json()
    assert quick["full_pass"] is False and quick["ok"] is False


def _tamper(service, which: str) -> None:  # type: ignore[no-untyped-def]
    conn = open_catalog(service.seeded.db)
    try:
        conn.execute(f"UPDATE audit_log SET actor = 'x' WHERE id = (SELECT {which}(id) FROM audit_log)")
        conn.commit()
    finally:
        conn.close()


def test_the_page_escapes_hostile_text_and_speaks_the_users_language(seeded_service) -> None:  # type: ignore[no-untyped-def]
    _record(seeded_service, actor="alice", role="agent", action="mark.add",
            target="<script>alert(1)</script>", detail={"label": "<img src=x onerror=alert(2)>"})
    seeded_service.set_lang("comp", "zh")
    client, _ = seeded_service.login("comp")
    page = client.get("/audit", params={"actor": "alice"})
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)" in page.text
    assert "<img src=x" not in page.text
    assert "审计日志" in page.text and 'lang="zh-CN"' in page.text
    english, _ = seeded_service.login("root-admin")
    assert "Audit log" in english.get("/audit").text
