"""Local accounts: argon2 hashes, lockout, disable, reset, every change and login audited; the
``users`` CLI (root or the service user only; passwords never on the command line)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pbx_recorder.cli import cli, privilege
from pbx_recorder.errors import AccessDenied, ConfigError, LoginRefused
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service.accounts import LOCK_SECONDS, MAX_FAILURES, Accounts
from tests.peers.service_support import CHEAP, NOW, PASSWORD


@pytest.fixture
def accounts(tmp_path):  # type: ignore[no-untyped-def]
    conn = open_catalog(tmp_path / "catalog.db")
    acc = Accounts(conn, hasher=CHEAP)
    acc.add("alice", "agent", PASSWORD, actor="root", actor_role="host-admin", now=NOW)
    yield acc
    conn.close()


def _audit(acc: Accounts, action: str) -> list[tuple[str, str]]:
    rows = acc.conn.execute("SELECT actor, detail FROM audit_log WHERE action = ? ORDER BY id",
                            (action,)).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def test_the_password_is_kept_as_an_argon2id_hash_only(accounts: Accounts) -> None:
    stored = accounts.conn.execute("SELECT password_hash FROM users WHERE name='alice'").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.authenticate("alice", PASSWORD, client="10.0.0.1", now=NOW + 1).role == "agent"
    assert _audit(accounts, "users.add")[0][0] == "root"
    assert "10.0.0.1" in _audit(accounts, "login")[0][1]


def test_wrong_password_and_unknown_user_are_refused_alike_and_audited(accounts: Accounts) -> None:
    with pytest.raises(LoginRefused) as wrong:
        accounts.authenticate("alice", "not the password", client="c", now=NOW)
    with pytest.raises(LoginRefused) as unknown:
        accounts.authenticate("mallory", PASSWORD, client="c", now=NOW)
    assert str(wrong.value) == str(unknown.value)
    reasons = [d for _, d in _audit(accounts, "login.failed")]
    assert '"password"' in reasons[0] and '"unknown"' in reasons[1]


def test_lockout_after_repeated_failures_refuses_even_the_right_password(accounts: Accounts) -> None:
    for i in range(MAX_FAILURES):
        with pytest.raises(LoginRefused):
            accounts.authenticate("alice", f"guess {i}", client="c", now=NOW + i)
    with pytest.raises(LoginRefused) as locked:
        accounts.authenticate("alice", PASSWORD, client="c", now=NOW + 60)
    assert locked.value.reason == "locked"
    assert len(_audit(accounts, "login.locked")) == 1
    # after the lock time the right password works again
    assert accounts.authenticate("alice", PASSWORD, client="c", now=NOW + LOCK_SECONDS + 10).name == "alice"


def test_reset_password_clears_the_lock_and_ends_sessions(accounts: Accounts) -> None:
    for i in range(MAX_FAILURES):
        with pytest.raises(LoginRefused):
            accounts.authenticate("alice", f"guess {i}", client="c", now=NOW)
    accounts.conn.execute("INSERT INTO sessions (id_hash, user_name, csrf_hash, created_at, last_seen) "
                          "VALUES ('h', 'alice', 'x', 0, 0)")
    accounts.reset_password("alice", "a new long password", actor="root", actor_role="host-admin", now=NOW)
    assert accounts.conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
    assert accounts.authenticate("alice", "a new long password", client="c", now=NOW + 1).name == "alice"
    with pytest.raises(LoginRefused):
        accounts.authenticate("alice", PASSWORD, client="c", now=NOW + 2)


def test_a_disabled_account_cannot_log_in(accounts: Accounts) -> None:
    accounts.disable("alice", actor="root", actor_role="host-admin", now=NOW)
    with pytest.raises(LoginRefused) as refused:
        accounts.authenticate("alice", PASSWORD, client="c", now=NOW)
    assert refused.value.reason == "disabled"
    assert _audit(accounts, "users.disable")


def test_short_passwords_unknown_roles_and_odd_names_are_refused(accounts: Accounts) -> None:
    with pytest.raises(ConfigError):
        accounts.add("bob", "agent", "short", actor="root", actor_role="host-admin", now=NOW)
    with pytest.raises(ConfigError):
        accounts.add("bob", "superuser", PASSWORD, actor="root", actor_role="host-admin", now=NOW)
    with pytest.raises(ConfigError):
        accounts.add("bob'; --", "agent", PASSWORD, actor="root", actor_role="host-admin", now=NOW)
    assert [u.name for u in accounts.list()] == ["alice"]


def _config(tmp_path) -> str:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"catalog: {{path: {tmp_path}/catalog.db}}\n")
    return str(cfg)


def test_users_cli_reads_the_password_from_stdin_and_audits(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(privilege, "os_user", lambda: (0, "root"))
    cfg = _config(tmp_path)
    runner = CliRunner()
    added = runner.invoke(cli, ["--config", cfg, "users", "add", "lead", "--role", "supervisor",
                                "--team", "red", "--password-stdin"], input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    listed = runner.invoke(cli, ["--config", cfg, "users", "list", "--json"])
    assert '"lead"' in listed.output and '"red"' in listed.output and "argon2" not in listed.output
    assert runner.invoke(cli, ["--config", cfg, "users", "disable", "lead"]).exit_code == 0
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id").fetchall()]
    finally:
        conn.close()
    assert actions == ["users.add", "users.list", "users.disable"]  # the list read is audited too


def test_users_cli_refuses_anyone_but_root_and_the_service_user(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(privilege, "os_user", lambda: (1000, "agent1"))
    result = CliRunner().invoke(cli, ["--config", _config(tmp_path), "users", "list"])
    assert isinstance(result.exception, AccessDenied) and "root" in str(result.exception)
    assert not (tmp_path / "catalog.db").exists()  # refused before the catalog is opened
