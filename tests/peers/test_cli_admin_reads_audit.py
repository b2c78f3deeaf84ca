"""The host administrator's CLI reads write one audit row per run, before anything is printed, as
the service's lists of the same rows do: ``users list`` (``users.list``), ``users teams``
(``teams.list``), ``users token list`` (``tokens.list``), ``review sample --dry-run``
(``qa.sample.dry_run``: the calls and agents it would assign) and ``reports run --dry-run``
(``reports.schedule.list``: owners and teams).  Root
or the service account acting themselves is audited as ``host-admin``; an operator named by a
root front end as themselves.  A refusal keeps its ``denied:*`` row only; no row, no output.
Both catalog engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from pbx_recorder import audit_trail
from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import cli, privilege
from pbx_recorder.errors import AccessDenied, CatalogError
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.reports import store
from pbx_recorder.service.accounts import Accounts
from tests.peers.service_support import CHEAP, NOW, PASSWORD

WEEK = "2027-W02"  # NOW is Friday 2027-01-15 08:00 UTC


def _setup(tmp_path: Path, monkeypatch: Any, extra: str = "") -> tuple[Path, str]:
    monkeypatch.setattr(privilege, "os_user", lambda: (0, "root"))
    monkeypatch.delenv("PBX_RECORDER_USER", raising=False)
    db = tmp_path / "catalog.db"
    conn = open_catalog(db)
    try:
        acc = Accounts(conn, hasher=CHEAP)
        acc.add("boss", "admin", PASSWORD, actor="root", actor_role="host-admin", now=NOW)
        acc.add("qa1", "qa", PASSWORD, actor="root", actor_role="host-admin", now=NOW)
        acc.add("alice", "agent", PASSWORD, actor="root", actor_role="host-admin", now=NOW)
        store.add_schedule(conn, "boss", "monthly", "month", "", "boss@example.com", NOW - 40 * 86400)
        conn.execute("DELETE FROM audit_log")  # the set-up's own rows: each test counts from here
    finally:
        conn.close()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"catalog: {{path: {db}}}\ntimezone: UTC\n"
                   "access: {users: {boss: admin, agent1: agent}}\n"
                   "web:\n  qa_sampling:\n    - {name: weekly, count: 2, reviewers: [qa1]}\n" + extra)
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    return db, str(cfg)


def _as(monkeypatch: Any, operator: str) -> None:
    monkeypatch.setenv("PBX_RECORDER_USER", operator)  # a root front end acting for them


def _rows(db: Path) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    conn = open_catalog(db)
    try:
        return [(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in conn.execute(
            "SELECT actor, role, action, target, detail FROM audit_log ORDER BY id").fetchall()]
    finally:
        conn.close()


def _cli(cfg: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", cfg, *args])


def _failing_audit(monkeypatch: Any) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise CatalogError("audit log append failed: disk full")

    monkeypatch.setattr(audit_trail, "record", fail)


def test_users_list_by_the_host_admin_writes_one_users_list_row(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, cfg = _setup(tmp_path, monkeypatch)
    listed = _cli(cfg, "users", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert sorted(u["name"] for u in json.loads(listed.stdout)) == ["alice", "boss", "qa1"]
    assert _rows(db) == [("root", "host-admin", "users.list", "", {"client": "cli", "results": 3})]


def test_users_list_by_a_named_operator_is_theirs(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, cfg = _setup(tmp_path, monkeypatch)
    _as(monkeypatch, "boss")
    listed = _cli(cfg, "users", "list")
    assert listed.exit_code == 0, listed.output
    assert [r[:4] for r in _rows(db)] == [("boss", "admin", "users.list", "")]


def test_users_teams_lists_each_team_after_one_teams_list_row(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, cfg = _setup(tmp_path, monkeypatch)
    conn = open_catalog(db)
    try:
        acc = Accounts(conn, hasher=CHEAP)
        acc.add("lead", "supervisor", PASSWORD, teams=("red",), actor="root", actor_role="host-admin",
                now=NOW)
        acc.set_team_agents("red", ["alice", "bob"], actor="root", actor_role="host-admin", now=NOW)
        acc.set_team_agents("blue", ["carol"], actor="root", actor_role="host-admin", now=NOW)
        conn.execute("DELETE FROM audit_log")
    finally:
        conn.close()
    listed = _cli(cfg, "users", "teams", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == [
        {"team": "blue", "members": [], "agents": ["carol"]},
        {"team": "red", "members": [{"name": "lead", "role": "supervisor", "disabled": False}],
         "agents": ["alice", "bob"]}]
    text = _cli(cfg, "users", "teams")
    assert text.exit_code == 0 and "lead(supervisor)" in text.stdout and "alice,bob" in text.stdout
    assert _rows(db) == [("root", "host-admin", "teams.list", "", {"client": "cli", "results": 2})] * 2
    _as(monkeypatch, "agent1")
    refused = _cli(cfg, "users", "teams")
    assert isinstance(refused.exception, AccessDenied) and "carol" not in refused.stdout
    assert _rows(db)[-1][:3] == ("agent1", "agent", "denied:users.manage")


def test_a_refused_users_list_writes_only_its_refusal(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, cfg = _setup(tmp_path, monkeypatch)
    _as(monkeypatch, "agent1")
    listed = _cli(cfg, "users", "list")
    assert isinstance(listed.exception, AccessDenied) and "alice" not in listed.stdout
    assert [r[:3] for r in _rows(db)] == [("agent1", "agent", "denied:users.manage")]


def test_no_audit_row_no_account_shown(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, cfg = _setup(tmp_path, monkeypatch)
    _failing_audit(monkeypatch)
    for args in (("users", "list"), ("users", "teams"), ("users", "token", "list"),
                 ("review", "sample", "--week", WEEK, "--dry-run"), ("reports", "run", "--dry-run")):
        result = _cli(cfg, *args)
        assert isinstance(result.exception, CatalogError) and result.stdout == "", args
    assert _rows(db) == []


def test_token_list_writes_one_tokens_list_row_with_its_filter(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, cfg = _setup(tmp_path, monkeypatch)
    made = _cli(cfg, "users", "token", "create", "alice", "--role", "agent", "--days", "30")
    assert made.exit_code == 0, made.output
    listed = _cli(cfg, "users", "token", "list", "--user", "alice", "--json")
    assert listed.exit_code == 0 and [t["user"] for t in json.loads(listed.stdout)] == ["alice"]
    everyone = _cli(cfg, "users", "token", "list")
    assert everyone.exit_code == 0 and "alice" in everyone.stdout
    assert [r[2:] for r in _rows(db)][1:] == [
        ("tokens.list", "", {"client": "cli", "user": "alice", "results": 1}),
        ("tokens.list", "", {"client": "cli", "results": 1})]


def _calls(db: Path) -> None:
    catalog = Catalog(db, clock=lambda: NOW)
    try:
        for i in range(3):
            call_id = f"w{i}"
            catalog.upsert_call({"call_id": call_id, "agent": "alice", "status": "answered",
                                 "started_at": NOW - 3600 * (i + 1), "caller_num": "+8613800000000"})
            catalog.upsert_recording({"recording_id": f"r-{call_id}", "call_id": call_id, "state": "stored",
                                      "tier": "hot", "storage_key": f"k/{call_id}", "created_at": NOW})
    finally:
        catalog.close()


def test_a_sampling_dry_run_writes_one_row_and_assigns_nothing(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, cfg = _setup(tmp_path, monkeypatch)
    _calls(db)
    dry = _cli(cfg, "review", "sample", "--week", WEEK, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.count("-> qa1") == 2
    assert _rows(db) == [("root", "host-admin", "qa.sample.dry_run", WEEK,
                          {"client": "cli", "rules": {"weekly": 2}, "results": 2})]
    conn = open_catalog(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM qa_assignments").fetchone()[0] == 0
    finally:
        conn.close()


def test_a_reports_dry_run_writes_one_schedule_list_row(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, cfg = _setup(tmp_path, monkeypatch)
    _as(monkeypatch, "boss")
    dry = _cli(cfg, "reports", "run", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "schedule 1 (boss, overall)" in dry.stdout
    assert _rows(db) == [("boss", "admin", "reports.schedule.list", "",
                          {"client": "cli", "dry_run": True, "results": 1})]
