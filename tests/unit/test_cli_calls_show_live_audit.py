"""``calls show`` and ``calls live`` write one audit row per run, masked numbers or not, as the
service's GET /api/calls/{id} does: ``calls.view`` (target: the call; ``calls.show.unmask`` with
``--unmask``, ``calls.view.absent`` for an unknown id) and ``calls.live`` (``calls.live.unmask``: the
call ids listed).  The actor is the operator a root front end names, else the OS user; ``client``
is ``cli``.  The row is written before anything is printed: when it cannot be written, nothing is
shown.  A refusal keeps its ``denied:*`` row only.  Both catalog engines."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any

import pytest
from lifecycle_support import Env, add_call, make_cli_env, run_cli_as

from pbx_recorder.catalog import Catalog
from pbx_recorder.errors import CatalogError

NUMBER = "+15551112222"
USERS = "access: {users: {agent1: agent, audit1: auditor}}\n"


def _snap(call_id: str, channel: str, created: float) -> dict[str, Any]:
    return {"call_id": call_id, "state": "answered", "created_at": created, "caller_num": NUMBER,
            "agent": "alice", "queue": "sales", "legs": {"1.1": channel}, "live": ["1.1"],
            "recordings": [{"channel": channel, "state": "recording"}]}


def _env(tmp_path: Path, access: str) -> tuple[Env, str]:
    env, cfg = make_cli_env(tmp_path, access)
    add_call(env, "c1", caller=NUMBER)
    catalog = Catalog(env.db)
    try:
        catalog.save_live_call("c1", _snap("c1", "PJSIP/1001-0000002a", 200.0))
        catalog.save_live_call("c2", _snap("c2", "PJSIP/2002-00000001", 100.0))
    finally:
        catalog.close()
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


def _run(monkeypatch: Any, capsys: Any, cfg: str, user: str | None, *args: str) -> tuple[int, str]:
    return run_cli_as(monkeypatch, capsys, cfg, user, "calls", *args)


def _rows(env: Env) -> list[dict[str, Any]]:
    cur = env.conn.execute("SELECT actor, role, action, target, detail FROM audit_log ORDER BY id")
    return [{"actor": r[0], "role": r[1], "action": r[2], "target": r[3], "detail": json.loads(r[4])}
            for r in cur.fetchall()]


def _who(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["actor"], r["role"], r["action"], r["target"]) for r in rows]


def _failing_audit(monkeypatch: Any) -> None:
    def fail(self: Any, *args: Any, **kwargs: Any) -> None:
        raise CatalogError("audit log append failed: disk full")

    monkeypatch.setattr(Catalog, "audit", fail)


# --- calls show ---------------------------------------------------------------------------------


def test_a_masked_show_writes_one_calls_view_row(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _run(monkeypatch, capsys, cfg, "audit1", "show", "c1", "--json")
    assert code == 0 and json.loads(out)["call"]["call_id"] == "c1" and NUMBER not in out
    rows = _rows(env)
    assert _who(rows) == [("audit1", "auditor", "calls.view", "c1")]
    assert rows[0]["detail"] == {"client": "cli"}


def test_an_unmasked_show_keeps_its_one_unmask_row(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _run(monkeypatch, capsys, cfg, "audit1", "show", "c1", "--unmask")
    assert code == 0 and NUMBER in out
    assert _who(_rows(env)) == [("audit1", "auditor", "calls.show.unmask", "c1")]  # not two rows


def test_the_host_account_showing_a_call_is_audited(open_access, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = open_access
    code, out = _run(monkeypatch, capsys, cfg, None, "show", "c1")
    assert code == 0 and "c1" in out
    me = pwd.getpwuid(os.getuid()).pw_name
    assert [(r["actor"], r["action"], r["target"]) for r in _rows(env)] == [(me, "calls.view", "c1")]


def test_showing_an_unknown_call_is_kept_as_an_absent_view(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _run(monkeypatch, capsys, cfg, "agent1", "show", "nope")
    assert code == 6 and out == ""
    rows = _rows(env)
    assert _who(rows) == [("agent1", "agent", "calls.view.absent", "nope")]
    assert rows[0]["detail"] == {"client": "cli", "reason": "absent"}


def test_a_refused_show_writes_only_its_refusal(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _run(monkeypatch, capsys, cfg, "agent1", "show", "c1", "--unmask")
    assert code == 7 and out == ""
    assert [(r["actor"], r["action"]) for r in _rows(env)] == [("agent1", "denied:calls.unmask")]


def test_no_audit_row_no_call_shown(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    _failing_audit(monkeypatch)
    code, out = _run(monkeypatch, capsys, cfg, "audit1", "show", "c1")
    assert code != 0 and out == ""  # an unaudited read must not happen
    assert _rows(env) == []


# --- calls live ---------------------------------------------------------------------------------


def test_a_masked_live_list_writes_one_calls_live_row(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _run(monkeypatch, capsys, cfg, "agent1", "live", "--json")
    assert code == 0 and [c["call_id"] for c in json.loads(out)] == ["c2", "c1"] and NUMBER not in out
    rows = _rows(env)
    assert _who(rows) == [("agent1", "agent", "calls.live", "")]
    assert rows[0]["detail"] == {"client": "cli", "calls": ["c2", "c1"]}


def test_a_live_list_by_channel_names_the_channel_and_the_calls(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _run(monkeypatch, capsys, cfg, "audit1", "live", "--channel", "PJSIP/1001")
    assert code == 0 and "c1" in out and "c2" not in out
    rows = _rows(env)
    assert [r["action"] for r in rows] == ["calls.live"]
    assert rows[0]["detail"] == {"client": "cli", "channel": "PJSIP/1001", "calls": ["c1"]}


def test_an_unmasked_live_list_keeps_its_one_unmask_row(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _run(monkeypatch, capsys, cfg, "audit1", "live", "--unmask")
    assert code == 0 and NUMBER in out
    rows = _rows(env)
    assert _who(rows) == [("audit1", "auditor", "calls.live.unmask", "")]
    assert rows[0]["detail"]["calls"] == ["c2", "c1"] and rows[0]["detail"]["client"] == "cli"


def test_the_host_account_listing_live_calls_is_audited(open_access, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = open_access
    code, _ = _run(monkeypatch, capsys, cfg, None, "live")
    assert code == 0
    me = pwd.getpwuid(os.getuid()).pw_name
    assert [(r["actor"], r["action"]) for r in _rows(env)] == [(me, "calls.live")]


def test_a_refused_live_list_writes_only_its_refusal(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    code, out = _run(monkeypatch, capsys, cfg, "mallory", "live")
    assert code == 7 and out == ""
    assert [(r["actor"], r["action"]) for r in _rows(env)] == [("mallory", "denied:calls.search")]


def test_no_audit_row_no_live_call_shown(rbac, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env, cfg = rbac
    _failing_audit(monkeypatch)
    code, out = _run(monkeypatch, capsys, cfg, "agent1", "live")
    assert code != 0 and out == ""
    assert _rows(env) == []
