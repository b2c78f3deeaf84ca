"""Role-based access on the CLI: refusals exit 7 and are audited; allowed reads name the actor."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lifecycle_support import Env, add_call, add_recording, make_cli_env, rec

from pbx_recorder.cli import main
from pbx_recorder.core import access_policy

NUMBER = "+15551112222"
# named operators without OS accounts download into access.download_dir (pbx_recorder.output_path)
USERS = "access: {users: {agent1: agent, audit1: auditor, sup1: supervisor, boss: admin}, download_dir: DL}\n"
WARNING = "warning: access.users is empty"


def make(tmp_path: Path, access: str) -> tuple[Env, str]:
    env, cfg = make_cli_env(tmp_path, access.replace("DL", str(tmp_path)))
    add_call(env, "c1", caller=NUMBER)
    add_recording(env, "c1", "r1", age_days=400)  # past retention: `retention apply` would dispose of it
    return env, cfg


@pytest.fixture
def rbac(tmp_path):
    env, cfg = make(tmp_path, USERS)
    yield env, cfg
    env.conn.close()


@pytest.fixture
def open_access(tmp_path):
    env, cfg = make(tmp_path, "")
    yield env, cfg
    env.conn.close()


def run(monkeypatch, capsys, cfg: str, user: str, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("PBX_RECORDER_USER", user)
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    code = main(["--config", cfg, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def audit(env: Env) -> list[tuple[str, str, str, str]]:
    sql = "SELECT actor, role, action, target FROM audit_log ORDER BY id"
    return [tuple(r) for r in env.conn.execute(sql)]


@pytest.mark.parametrize(("args", "action", "target"), [
    (("calls", "search", "--call-id", "c1", "--unmask"), "calls.unmask", ""),
    (("calls", "show", "c1", "--unmask"), "calls.unmask", "c1"),
    (("recordings", "get", "r1", "--out", "OUT"), "recordings.read_audio", "r1"),
    (("retention", "apply", "--yes"), "retention.apply", ""),
    (("erase", "--call-id", "c1"), "erase.request", "c1"),
    (("hold", "add", "--call", "c1", "--reason", "x"), "hold.add", ""),
    (("keys", "list"), "keys.manage", ""),
    (("rules", "explain", "--dialed", "100"), "rules.explain", ""),
    (("verify",), "verify.run", ""),
])
def test_agent_is_refused_with_exit_7_and_an_audit_row(rbac, monkeypatch, capsys, tmp_path, args, action,
                                                      target):
    env, cfg = rbac
    out_file = tmp_path / "x.wav"
    args = tuple(str(out_file) if a == "OUT" else a for a in args)
    code, out, err = run(monkeypatch, capsys, cfg, "agent1", *args)
    assert code == 7, (out, err)
    assert "'agent1'" in err and "role agent" in err and action in err
    assert audit(env) == [("agent1", "agent", f"denied:{action}", target)]
    assert NUMBER not in out and NUMBER[1:] not in out
    assert not out_file.exists()
    r = rec(env, "r1")
    assert r is not None and r["state"] == "stored"  # nothing disposed of or erased


def test_agent_may_search_masked(rbac, monkeypatch, capsys):
    env, cfg = rbac
    code, out, err = run(monkeypatch, capsys, cfg, "agent1", "calls", "search", "--call-id", "c1", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["caller_num"] != NUMBER and NUMBER not in out
    assert audit(env) == [("agent1", "agent", "calls.search", "")] and WARNING not in err  # read: audited


def test_unknown_user_is_refused_and_audited(rbac, monkeypatch, capsys):
    env, cfg = rbac
    code, _, err = run(monkeypatch, capsys, cfg, "mallory", "calls", "search")
    assert code == 7 and "'mallory'" in err and "not in access.users" in err
    assert audit(env) == [("mallory", "", "denied:calls.search", "")]


def test_auditor_may_unmask_and_listen_and_is_named(rbac, monkeypatch, capsys, tmp_path):
    env, cfg = rbac
    code, out, err = run(monkeypatch, capsys, cfg, "audit1", "calls", "search", "--call-id", "c1", "--unmask",
                         "--json")
    assert code == 0, err
    assert json.loads(out)[0]["caller_num"] == NUMBER
    out_file = tmp_path / "a.wav"
    code, _, err = run(monkeypatch, capsys, cfg, "audit1", "recordings", "get", "r1", "--out", str(out_file))
    assert code == 0, err
    assert out_file.read_bytes() == b"audio of r1" * 10
    assert audit(env) == [
        ("audit1", "auditor", "calls.search.unmask", ""),
        ("audit1", "auditor", "read_audio", "r1"),
        ("audit1", "auditor", "recordings.get", "r1"),
    ]


def test_auditor_may_not_apply_retention_or_manage_keys(rbac, monkeypatch, capsys):
    env, cfg = rbac
    assert run(monkeypatch, capsys, cfg, "audit1", "retention", "apply", "--yes")[0] == 7
    assert run(monkeypatch, capsys, cfg, "audit1", "calls", "pause", "c1")[0] == 7
    assert [a[2] for a in audit(env)] == ["denied:retention.apply", "denied:calls.pause"]
    assert rec(env, "r1")["state"] == "stored"


def test_supervisor_listens_but_may_not_hold(rbac, monkeypatch, capsys, tmp_path):
    env, cfg = rbac
    code, _, _ = run(monkeypatch, capsys, cfg, "sup1", "recordings", "get", "r1", "--out",
                     str(tmp_path / "s"))
    assert code == 0
    assert run(monkeypatch, capsys, cfg, "sup1", "hold", "add", "--call", "c1", "--reason", "x")[0] == 7
    assert ("sup1", "supervisor", "denied:hold.add", "") in audit(env)


def test_admin_applies_retention(rbac, monkeypatch, capsys):
    env, cfg = rbac
    code, out, err = run(monkeypatch, capsys, cfg, "boss", "retention", "apply", "--yes")
    assert code == 0 and "disposed 1" in out and WARNING not in err
    assert rec(env, "r1")["state"] == "expired"
    assert ("boss", "admin", "retention.apply", "") in audit(env)


def test_without_users_everyone_acts_as_admin_and_is_warned(open_access, monkeypatch, capsys, tmp_path):
    env, cfg = open_access
    code, out, err = run(monkeypatch, capsys, cfg, "someone", "calls", "search", "--call-id", "c1",
                         "--unmask")
    assert code == 0 and NUMBER in out
    assert WARNING in err and "'someone' acts as admin" in err and len(err.splitlines()) == 1
    code, out, err = run(monkeypatch, capsys, cfg, "someone", "retention", "apply", "--yes")
    assert code == 0 and "disposed 1" in out and WARNING in err
    assert audit(env) == [("someone", "admin", "calls.search.unmask", ""),
                          ("someone", "admin", "retention.apply", "")]


def test_every_action_is_enforced_by_some_command():
    """Each action in the table is named by an authorize call in pbx_recorder/cli (no dead rows)."""
    cli_dir = Path(__file__).resolve().parents[2] / "pbx_recorder" / "cli"
    text = "\n".join(p.read_text() for p in cli_dir.glob("cmd_*.py"))
    used = set(re.findall(r'"([a-z]+\.[a-z_]+)"', text)) & set(access_policy.ACTIONS)
    assert used == set(access_policy.ACTIONS)


def test_pbx_recorder_user_is_ignored_for_non_root(monkeypatch):
    import pwd

    from pbx_recorder.cli import authz

    monkeypatch.setenv("PBX_RECORDER_USER", "admin")
    monkeypatch.setenv("USER", "admin")
    monkeypatch.setattr(authz.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(authz.os, "getuid", lambda: 1000)
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: type("P", (), {"pw_name": "alice"})())
    assert authz.current_actor() == "alice"
    monkeypatch.setattr(authz.os, "geteuid", lambda: 0)
    assert authz.current_actor() == "admin"
