"""``pbx-recorder review sample`` on a catalog (both engines): the week's answered, recorded calls
sampled per agent, spread over the rule's reviewers, written once (a second run and a dry run assign
nothing), audited; and a QA reviewer then sees exactly their calls through the service."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import cli, privilege
from pbx_recorder.errors import AccessDenied, ConfigError
from pbx_recorder.lifecycle.journal import open_catalog
from tests.peers.service_support import NOW, PASSWORD

WEEK = "2027-W02"  # NOW is Friday 2027-01-15 08:00 UTC
PICK = re.compile(r"^2027-W02\s+(\S+)\s+(\S+)\s+(\S+)\s+-> (\S+)$", re.M)


def _add_calls(service) -> set[str]:  # type: ignore[no-untyped-def]
    """More calls of the seeded agents in the week, and calls no rule may pick; the pickable ids."""
    db = service.seeded.db
    catalog = Catalog(db, clock=lambda: NOW)
    pickable = {"c-red-1", "c-red-2", "c-blue-1", "c-blue-2"}
    extra = [(f"a{i}", "alice", "answered", True, NOW - 7200 * (i + 3)) for i in range(6)]
    extra += [(f"b{i}", "bob", "answered", True, NOW - 7300 * (i + 3)) for i in range(3)]
    extra += [("no-answer", "alice", "no_answer", True, NOW - 600),
              ("no-audio", "bob", "answered", False, NOW),
              ("last-week", "alice", "answered", True, NOW - 6 * 86400),
              ("nobody", "", "answered", True, NOW)]
    for call_id, agent, status, recorded, started in extra:
        catalog.upsert_call({"call_id": call_id, "agent": agent, "status": status, "started_at": started,
                             "caller_num": "+8613800000000"})
        if recorded:
            catalog.upsert_recording({"recording_id": f"r-{call_id}", "call_id": call_id, "state": "stored",
                                      "tier": "hot", "storage_key": f"k/{call_id}", "created_at": NOW})
        if agent and status == "answered" and recorded and started > NOW - 5 * 86400:
            pickable.add(call_id)
    catalog.close()
    conn = open_catalog(db)
    service.accounts(conn).add("qa2", "qa", PASSWORD, actor="root", actor_role="host-admin", now=NOW)
    conn.close()
    return pickable


def _config(tmp_path, db, reviewers: str = "[qa1, qa2]", key=None) -> str:  # type: ignore[no-untyped-def]
    """The CLI's config; ``key``: the service's web.secret_key_file (its assignments are sealed)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"catalog: {{path: {db}}}\ntimezone: UTC\n"
                   f"web:\n  qa_sampling:\n    - {{name: weekly, count: 2, reviewers: {reviewers}}}\n"
                   + (f"  secret_key_file: {key}\n" if key else ""))
    return str(cfg)


def _rows(db, sql: str) -> list[tuple]:  # type: ignore[type-arg, no-untyped-def]
    conn = open_catalog(db)
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def _sample(cfg: str, *extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--config", cfg, "review", "sample", "--week", WEEK, *extra])


def test_review_sample_assigns_once_and_the_reviewer_sees_exactly_those_calls(
        seeded_service, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(privilege, "os_user", lambda: (0, "root"))
    db = seeded_service.seeded.db
    pickable = _add_calls(seeded_service)
    cfg = _config(tmp_path, db, key=seeded_service.key_file)
    sampled_sql = "SELECT call_id, reviewer FROM qa_assignments WHERE assigned_by = 'sampling'"

    dry = _sample(cfg, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert _rows(db, sampled_sql) == []
    # a dry run assigns nothing; it writes its one read row (the picks it showed), no qa.sample
    assert _rows(db, "SELECT action, target FROM audit_log WHERE action LIKE 'qa.sa%'") == [
        ("qa.sample.dry_run", WEEK)]
    first = _sample(cfg)
    assert first.exit_code == 0, first.output
    picks = PICK.findall(first.output)
    assert picks == PICK.findall(dry.output)  # the dry run showed exactly what the run did
    per_agent: dict[str, int] = {}
    for _, agent, _, _ in picks:
        per_agent[agent] = per_agent.get(agent, 0) + 1
    assert per_agent == {"alice": 2, "bob": 2, "carol": 2}  # carol had exactly 2 calls: both
    assert {c for _, _, c, _ in picks} <= pickable
    assert sorted(r for *_, r in picks).count("qa1") == 3 and len(picks) == 6  # 3 each
    stored = set(_rows(db, sampled_sql))
    manual = {("c-blue-1", "qa1")}  # the seed's assignment by hand: a pick of it is not written again
    assert stored == {(c, r) for _, _, c, r in picks} - manual

    again = _sample(cfg)
    assert again.exit_code == 0 and "assigned 0 new" in again.output
    assert set(_rows(db, sampled_sql)) == stored
    audits = _rows(db, "SELECT actor, role, action, target, detail FROM audit_log "
                       "WHERE action IN ('qa.assign', 'qa.sample') AND actor = 'root' ORDER BY id")
    assigned = [a for a in audits if a[2] == "qa.assign"]
    assert len(assigned) == len(stored) and all('"sampling"' in a[4] and a[1] == "host-admin"
                                                for a in assigned)
    assert [a[3] for a in audits if a[2] == "qa.sample"] == [WEEK, WEEK]

    client, _ = seeded_service.login("qa1")
    seen = {c["call_id"] for c in client.get("/api/calls?limit=500").json()["calls"]}
    mine = {c for c, r in stored if r == "qa1"} | {"c-blue-1"}  # + the seed's manual assignment
    assert seen == mine
    theirs = next(c for c, r in stored if r == "qa2" and c not in mine)
    assert client.get(f"/api/calls/{theirs}").status_code == 404


def test_a_reviewer_that_is_not_a_qa_account_stops_the_run(seeded_service, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(privilege, "os_user", lambda: (0, "root"))
    db = seeded_service.seeded.db
    _add_calls(seeded_service)
    result = _sample(_config(tmp_path, db, "[qa1, alice]", seeded_service.key_file))
    assert isinstance(result.exception, ConfigError)
    assert "web.qa_sampling[0].reviewers" in str(result.exception) and "'alice'" in str(result.exception)
    assert _rows(db, "SELECT 1 FROM qa_assignments WHERE assigned_by = 'sampling'") == []


@pytest.mark.parametrize("week", ["2027-2", "2027-W60"])
def test_a_bad_week_is_refused(seeded_service, tmp_path, monkeypatch, week: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(privilege, "os_user", lambda: (0, "root"))
    result = CliRunner().invoke(cli, ["--config", _config(tmp_path, seeded_service.seeded.db), "review",
                                      "sample", "--week", week])
    assert result.exit_code == 2 and "--week" in result.output


def test_review_sample_refuses_anyone_but_root_and_the_service_user(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(privilege, "os_user", lambda: (1000, "agent1"))
    result = _sample(_config(tmp_path, tmp_path / "catalog.db"))
    assert isinstance(result.exception, AccessDenied)
    assert not (tmp_path / "catalog.db").exists()
