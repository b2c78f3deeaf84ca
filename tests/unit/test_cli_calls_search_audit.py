"""``calls search`` on the CLI writes one audit row per search, as the service does: an operator
named by the root front end (``PBX_RECORDER_USER``) is the actor; the host administrator or the
recorder's own account running the CLI directly is audited too (they read the same data).  The
filter is kept with numbers masked and the rows returned are counted; an unmasked search writes
its one ``calls.search.unmask`` row, a number search its throttle row first, a refusal only the
refusal."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any

import pytest
from lifecycle_support import Env, add_call, make_cli_env, run_cli_as

NUMBER = "+15551112222"
USERS = "access: {users: {agent1: agent, audit1: auditor}}\n"


def _env(tmp_path: Path, access: str) -> tuple[Env, str]:
    env, cfg = make_cli_env(tmp_path, access)
    add_call(env, "c1", caller=NUMBER)
    add_call(env, "c2", caller="+15553334444")
    return env, cfg


@pytest.fixture
def rbac(tmp_path: Path):  # type: ignore[no-untyped-def]
    env, cfg = _env(tmp_path, USERS)
    yield env, cfg
    env.conn.close()


@pytest.fixture
def open_access(tmp_path: Path):  # type: ignore[no-untyped-def]
    env, cfg = _env(tmp_path, "")
    yield env, cfg
    env.conn.close()


def _search(monkeypatch: Any, capsys: Any, cfg: str, user: str | None, *args: str) -> tuple[int, str]:
    return run_cli_as(monkeypatch, capsys, cfg, user, "calls", "search", "--json", *args)


def _rows(env: Env) -> list[dict[str, Any]]:
    cur = env.conn.execute("SELECT actor, role, action, target, detail FROM audit_log ORDER BY id")
    return [{"actor": r[0], "role": r[1], "action": r[2], "target": r[3], "detail": json.loads(r[4])}
            for r in cur.fetchall()]


def test_a_named_operators_masked_search_writes_one_row(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _search(monkeypatch, capsys, cfg, "audit1", "--call-id", "c1")
    assert code == 0 and [c["call_id"] for c in json.loads(out)] == ["c1"]
    rows = _rows(env)
    assert [(r["actor"], r["role"], r["action"], r["target"]) for r in rows] == [
        ("audit1", "auditor", "calls.search", "")]
    detail = rows[0]["detail"]
    assert detail["client"] == "cli" and detail["call_id"] == "c1" and detail["results"] == 1
    assert detail["limit"] == 50


def test_a_number_search_writes_its_throttle_row_then_its_search_row(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _search(monkeypatch, capsys, cfg, "agent1", "--caller", NUMBER)
    assert code == 0 and [c["call_id"] for c in json.loads(out)] == ["c1"] and NUMBER not in out
    rows = _rows(env)
    assert [(r["actor"], r["action"]) for r in rows] == [("agent1", "calls.search.number"),
                                                         ("agent1", "calls.search")]
    assert rows[1]["detail"]["results"] == 1 and rows[1]["detail"]["caller"].endswith("2222")
    assert "5551112222" not in json.dumps(rows)  # masked in the log


def test_an_unmasked_search_writes_one_unmask_row(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _search(monkeypatch, capsys, cfg, "audit1", "--unmask")
    assert code == 0 and NUMBER in out
    rows = _rows(env)
    assert [r["action"] for r in rows] == ["calls.search.unmask"]
    assert rows[0]["detail"]["results"] == 2 and rows[0]["detail"]["client"] == "cli"


def test_the_host_account_running_the_cli_directly_is_audited(open_access, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = open_access
    code, out = _search(monkeypatch, capsys, cfg, None, "--limit", "5")
    assert code == 0 and len(json.loads(out)) == 2
    me = pwd.getpwuid(os.getuid()).pw_name
    rows = _rows(env)
    assert [(r["actor"], r["action"]) for r in rows] == [(me, "calls.search")]
    assert rows[0]["detail"]["results"] == 2 and rows[0]["detail"]["limit"] == 5


def test_a_refused_search_writes_only_its_refusal(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, _ = _search(monkeypatch, capsys, cfg, "mallory")
    assert code == 7
    assert [(r["actor"], r["action"]) for r in _rows(env)] == [("mallory", "denied:calls.search")]
