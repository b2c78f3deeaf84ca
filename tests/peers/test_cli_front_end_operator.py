"""Root acting for a named operator (``PBX_RECORDER_USER``, a sudo front end): the operator's role
comes from the installation's config only, and every command they run authorizes an action
(``cli/operator_gate.py``).  Before: a copied config (``--config``, ``PBX_RECORDER_CONFIG``) or one
``PBX_RECORDER_ACCESS__USERS__AGENT1=admin`` made an agent admin, and ``users``, ``review sample``,
``reports run`` and ``asterisk check`` ran for anyone as ``root|host-admin``.  Root itself (no
``PBX_RECORDER_USER``) keeps ``--config`` and acts as ``host-admin``."""

from __future__ import annotations

import io
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import cli, main, operator_gate
from pbx_recorder.core import access_policy
from pbx_recorder.errors import AccessDenied
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service import user_admin
from pbx_recorder.service.accounts import Accounts
from tests.peers.service_support import CHEAP, PASSWORD

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: root acting for an operator")

CALLER = "+15551112222"
AGENT = "Local/4915112345678@from-queue/n"  # a remote agent: their mobile in the dial string
WEEK = "2026-W48"
STARTED = datetime(2026, 11, 25, 12, tzinfo=UTC).timestamp()
DENIED = AccessDenied.exit_code
#: top-level commands no named operator may run: not operator commands (no role in the table)
NOT_FOR_OPERATORS = {"check-config", "demo", "plan", "run", "serve"}


def _config(tmp_path: Path, name: str, agent1_role: str) -> str:
    path = tmp_path / name
    path.write_text(f"catalog: {{path: {tmp_path}/catalog.db}}\n"
                    f"access: {{users: {{agent1: {agent1_role}, boss: admin, root: admin}}}}\n"
                    "web: {qa_sampling: [{name: weekly, percent: 100, reviewers: [qa.wang]}],"
                    " qa_sampling_seed: 0123456789abcdef0123456789abcdef}\n")
    return str(path)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, Path]:
    """The installation's config (agent1: agent) as the default, an operator's copy (agent1: admin),
    a call of a remote agent in ``WEEK`` with a recording, a QA account."""
    default, copy = _config(tmp_path, "installed.yaml", "agent"), _config(tmp_path, "mine.yaml", "admin")
    cat = Catalog(tmp_path / "catalog.db")
    cat.upsert_call({"call_id": "c1", "agent": AGENT, "caller_num": CALLER, "status": "answered",
                     "billsec": 60, "started_at": STARTED, "record_decision": "recorded"})
    cat.close()
    conn = open_catalog(tmp_path / "catalog.db")
    conn.execute("INSERT INTO recordings (recording_id, call_id, state, size, sha256, tier, storage_key,"
                 " created_at) VALUES ('r1', 'c1', 'stored', 1, 'x', 'hot', 'k', ?)", (STARTED + 60,))
    conn.commit()
    Accounts(conn, hasher=CHEAP).add("qa.wang", "qa", PASSWORD, actor="root", actor_role="host-admin",
                                     now=STARTED)
    conn.close()
    for name in [n for n in os.environ if n.startswith("PBX_RECORDER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", default)
    return default, copy, tmp_path


def _run(capsys: pytest.CaptureFixture[str], *args: str, stdin: str = "") -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _audit(tmp_path: Path) -> list[tuple[str, str, str]]:
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        rows = conn.execute("SELECT actor, role, action FROM audit_log WHERE target != 'qa.wang' ORDER BY id")
        return [tuple(r) for r in rows]  # without the set-up's account
    finally:
        conn.close()


def _users(tmp_path: Path) -> set[str]:
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        return {r["name"] for r in user_admin.user_rows(Accounts(conn), STARTED)}
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["--config", "PBX_RECORDER_CONFIG", "PBX_RECORDER_ACCESS__USERS__AGENT1"])
def test_an_operator_may_not_bring_their_own_config(site, capsys, monkeypatch, how) -> None:  # type: ignore[no-untyped-def]
    _, copy, tmp_path = site
    monkeypatch.setenv("PBX_RECORDER_USER", "agent1")
    args = ["calls", "search", "--call-id", "c1", "--unmask"]
    if how == "--config":
        args = ["--config", copy, *args]
    else:
        monkeypatch.setenv(how, copy if how == "PBX_RECORDER_CONFIG" else "admin")
    code, out, err = _run(capsys, *args)
    assert code == DENIED, (out, err)
    assert "default config" in err and (how in err)
    assert CALLER not in out and CALLER[1:] not in out
    assert _audit(tmp_path) == [("agent1", "agent", "denied:config.override")]  # the installed role


def test_asterisk_check_may_not_name_another_config_either(site, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, copy, tmp_path = site
    monkeypatch.setenv("PBX_RECORDER_USER", "boss")  # even an admin: the paths would be opened as root
    code, _, err = _run(capsys, "asterisk", "check", "--config", copy)
    assert code == DENIED and "--config" in err
    assert _audit(tmp_path) == [("boss", "admin", "denied:config.override")]


@pytest.mark.parametrize(("args", "action"), [
    (("users", "add", "evil", "--role", "admin", "--password-stdin"), "users.manage"),
    (("users", "token", "create", "qa.wang", "--role", "qa", "--days", "1"), "users.manage"),
    (("users", "set-role", "agent1", "admin"), "users.manage"),
    (("users", "list"), "users.manage"),
    (("users", "totp-key", "init"), "users.manage"),
    (("users", "seal"), "users.manage"),
    (("review", "sample", "--week", WEEK), "qa.assign"),
    (("reports", "run"), "reports.run"),
    (("asterisk", "check", "--etc", "/nonexistent"), "asterisk.check"),
])
def test_host_admin_commands_hold_a_named_operator_to_their_role(site, capsys, monkeypatch, args,
                                                                 action) -> None:  # type: ignore[no-untyped-def]
    default, _, tmp_path = site
    monkeypatch.setenv("PBX_RECORDER_USER", "agent1")
    code, out, err = _run(capsys, "--config", default, *args, stdin=PASSWORD + "\n")  # the default: allowed
    assert code == DENIED, (out, err)
    assert "'agent1'" in err and action in err
    assert out == ""  # no token, no listing
    assert _audit(tmp_path) == [("agent1", "agent", f"denied:{action}")]
    assert _users(tmp_path) == {"qa.wang"}


@pytest.mark.parametrize("args", [("check-config",), ("plan", "--calls-per-day", "1", "--avg-minutes", "1"),
                                  ("serve",)])
def test_a_command_without_an_action_is_refused_for_a_named_operator(site, capsys, monkeypatch, args) -> None:  # type: ignore[no-untyped-def]
    default, _, tmp_path = site
    monkeypatch.setenv("PBX_RECORDER_USER", "boss")
    code, out, err = _run(capsys, "--config", default, *args)
    assert code == DENIED, (out, err)
    assert _audit(tmp_path) == [("boss", "admin", "denied:command.unmapped")]


def test_every_command_is_mapped_to_a_known_action_or_closed_to_operators() -> None:
    ctx = click.Context(cli)
    found: set[str] = set()

    def walk(path: str, cmd: click.Command) -> None:
        if isinstance(cmd, click.Group):
            if cmd.invoke_without_command:
                found.add(path)
            for sub, c in cmd.commands.items():
                walk(f"{path} {sub}", c)
        else:
            found.add(path)

    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        walk(name, command)
    assert set(operator_gate.OPERATOR_COMMANDS) == found - NOT_FOR_OPERATORS
    assert set(operator_gate.OPERATOR_COMMANDS.values()) <= set(access_policy.ACTIONS)


def test_the_operators_own_actions_still_work_under_their_name(site, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    default, _, tmp_path = site
    monkeypatch.setenv("PBX_RECORDER_USER", "agent1")
    code, out, err = _run(capsys, "--config", default, "calls", "search", "--call-id", "c1")  # the default
    assert code == 0, err
    assert "c1" in out and CALLER not in out
    monkeypatch.setenv("PBX_RECORDER_USER", "boss")
    code, out, err = _run(capsys, "--config", default, "users", "add", "ann", "--role", "agent",
                          "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    assert "ann" in _users(tmp_path)
    assert ("boss", "admin", "users.add") in _audit(tmp_path)  # audited as the operator, not root|host-admin
    assert not any(r[0] == "root" for r in _audit(tmp_path))


def test_root_itself_keeps_config_and_acts_as_host_admin(site, capsys) -> None:  # type: ignore[no-untyped-def]
    _, copy, tmp_path = site
    code, out, err = _run(capsys, "--config", copy, "users", "add", "ann", "--role", "agent",
                          "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    assert "ann" in _users(tmp_path)
    assert {r[:2] for r in _audit(tmp_path)} == {("root", "host-admin")}


def test_review_sample_masks_the_agents_dial_string(site, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    default, _, tmp_path = site
    monkeypatch.setenv("PBX_RECORDER_USER", "boss")
    code, out, err = _run(capsys, "--config", default, "review", "sample", "--week", WEEK)
    assert code == 0, err
    assert "c1" in out and "qa.wang" in out  # the call was sampled and is shown
    assert not re.search(r"\d{6,}", out.replace(WEEK, "")), out  # no run of the mobile's digits
    assert "4915112345678" not in out + err
    assert ("boss", "admin") in {r[:2] for r in _audit(tmp_path)}


def test_config_overrides_is_pure_and_names_no_values() -> None:
    env = {"PBX_RECORDER_USER": "a", "PBX_RECORDER_PBX__AMI__SECRET": "s3cret", "HOME": "/root"}
    found = operator_gate.config_overrides("/etc/pbx-recorder/pbx-recorder.yaml", env,
                                           "/etc/pbx-recorder/pbx-recorder.yaml")
    assert found == ["PBX_RECORDER_PBX__AMI__SECRET"]
    assert operator_gate.config_overrides(None, {"PBX_RECORDER_CONFIG": "/tmp/x.yaml"}, "/etc/p.yaml") == [
        "PBX_RECORDER_CONFIG"]
    assert operator_gate.config_overrides("/tmp/x.yaml", {}, "/etc/p.yaml") == ["--config /tmp/x.yaml"]


def test_a_named_admin_does_not_provision_an_approver_account(site, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An approver's account (admin, auditor) is the host's to make (service/provisioning.py): root
    acting for a named admin may make a supervisor, not an auditor, nor give one that role."""
    default, _, tmp_path = site
    monkeypatch.setenv("PBX_RECORDER_USER", "boss")
    code, out, err = _run(capsys, "--config", default, "users", "add", "stooge", "--role", "auditor",
                          "--password-stdin", stdin=PASSWORD + "\n")
    assert code != 0 and "on the host" in err, (out, err)
    code, out, err = _run(capsys, "--config", default, "users", "add", "lead2", "--role", "supervisor",
                          "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, (out, err)
    code, out, err = _run(capsys, "--config", default, "users", "set-role", "lead2", "admin")
    assert code != 0 and "on the host" in err, (out, err)
    assert _users(tmp_path) == {"qa.wang", "lead2"}
    monkeypatch.delenv("PBX_RECORDER_USER")  # root itself: the host admin
    code, out, err = _run(capsys, "--config", default, "users", "set-role", "lead2", "auditor")
    assert code == 0, (out, err)
