"""``pbx-recorder users totp-key init | reset-totp | token create|list|revoke`` (root or the
service user only): the token printed once and kept as SHA-256, a wider role refused, revocation."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pbx_recorder.cli import cli, privilege
from pbx_recorder.errors import CatalogError
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service import access_seal
from pbx_recorder.service.accounts import Accounts
from pbx_recorder.service.api_token_store import digest, resolve
from pbx_recorder.service.secret_box import create_key_file
from tests.peers.service_support import CHEAP, NOW, PASSWORD


def _setup(tmp_path, monkeypatch, uid: int = 0, name: str = "root",  # type: ignore[no-untyped-def]
           keyed: bool = True) -> str:
    """A config naming a secret key (made and sealing alice's rows when ``keyed``)."""
    monkeypatch.setattr(privilege, "os_user", lambda: (uid, name))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"catalog: {{path: {tmp_path}/catalog.db}}\n"
                   f"web: {{secret_key_file: {tmp_path}/k/web.key}}\n")
    conn = open_catalog(tmp_path / "catalog.db")
    seal = access_seal.from_file(create_key_file(tmp_path / "k" / "web.key")) if keyed else None
    acc = Accounts(conn, hasher=CHEAP, seal=seal)
    acc.add("alice", "agent", PASSWORD, actor="root", actor_role="host-admin", now=NOW)
    conn.close()
    return str(cfg)


def test_token_create_list_revoke(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cfg = _setup(tmp_path, monkeypatch)
    runner = CliRunner()
    made = runner.invoke(cli, ["--config", cfg, "users", "token", "create", "alice", "--role", "agent",
                               "--days", "30", "--label", "crm"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[0]
    assert token.startswith("pbxr_")
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        dump = repr([tuple(r) for r in conn.execute("SELECT * FROM api_tokens").fetchall()])
        assert token not in dump and digest(token) in dump
    finally:
        conn.close()
    listed = runner.invoke(cli, ["--config", cfg, "users", "token", "list", "--json"])
    rows = json.loads(listed.stdout)
    assert [(r["user"], r["role"], r["label"], r["revoked"]) for r in rows] == \
        [("alice", "agent", "crm", False)]
    assert token not in listed.stdout
    wider = runner.invoke(cli, ["--config", cfg, "users", "token", "create", "alice", "--role", "admin",
                                "--days", "30"])
    assert wider.exit_code != 0 and "wider" in str(wider.exception)
    revoked = runner.invoke(cli, ["--config", cfg, "users", "token", "revoke", rows[0]["id"]])
    assert revoked.exit_code == 0, revoked.output
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        assert resolve(conn, token, NOW, touch_s=60) is None
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id").fetchall()]
        assert actions[-3:] == ["tokens.create", "tokens.list", "tokens.revoke"]  # the list is audited
    finally:
        conn.close()


def test_totp_key_init_and_reset_totp(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The key made after accounts exist: their rows have no seal until an admin runs ``users seal``
    (until then the account is not one: reset-totp does not find it)."""
    cfg = _setup(tmp_path, monkeypatch, keyed=False)
    runner = CliRunner()
    made = runner.invoke(cli, ["--config", cfg, "users", "totp-key", "init"])
    assert made.exit_code == 0, made.output
    key = tmp_path / "k" / "web.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
    before = key.read_bytes()
    again = runner.invoke(cli, ["--config", cfg, "users", "totp-key", "init"])
    assert again.exit_code != 0 and key.read_bytes() == before
    unsealed = runner.invoke(cli, ["--config", cfg, "users", "reset-totp", "alice"])
    assert unsealed.exit_code != 0 and "no user 'alice'" in str(unsealed.exception)
    check = runner.invoke(cli, ["--config", cfg, "users", "seal", "--check"])
    assert isinstance(check.exception, CatalogError) and "without a seal: users: 1: alice" in check.output
    sealed = runner.invoke(cli, ["--config", cfg, "users", "seal"])
    assert sealed.exit_code == 0 and "sealed users: 1" in sealed.output, sealed.output
    assert runner.invoke(cli, ["--config", cfg, "users", "seal", "--check"]).exit_code == 0
    reset = runner.invoke(cli, ["--config", cfg, "users", "reset-totp", "alice"])
    assert reset.exit_code == 0, reset.output


def test_an_unprivileged_os_user_cannot_mint_tokens(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cfg = _setup(tmp_path, monkeypatch, uid=1000, name="agent1")
    made = CliRunner().invoke(cli, ["--config", cfg, "users", "token", "create", "alice", "--role", "agent",
                                    "--days", "1"])
    assert made.exit_code != 0 and "pbxr_" not in made.output


def test_users_cli_shares_the_admin_rules(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cfg = _setup(tmp_path, monkeypatch)
    runner = CliRunner()
    added = runner.invoke(cli, ["--config", cfg, "users", "add", "boss", "--role", "admin",
                                "--password-stdin"], input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    last = runner.invoke(cli, ["--config", cfg, "users", "disable", "boss"])
    assert last.exit_code != 0 and "last enabled admin" in str(last.exception)
    demoted = runner.invoke(cli, ["--config", cfg, "users", "set-role", "boss", "auditor"])
    assert demoted.exit_code != 0
    assert runner.invoke(cli, ["--config", cfg, "users", "set-role", "alice", "supervisor"]).exit_code == 0
    assert runner.invoke(cli, ["--config", cfg, "users", "set-teams", "alice", "red"]).exit_code == 0
    listed = runner.invoke(cli, ["--config", cfg, "users", "list", "--json"]).stdout
    rows = {r["name"]: r for r in json.loads(listed)}
    assert rows["alice"]["role"] == "supervisor" and rows["alice"]["teams"] == ["red"]
    assert rows["boss"]["role"] == "admin" and not rows["boss"]["disabled"] and rows["boss"]["totp"] == "none"


def test_users_seal_checks_qa_rows_against_the_audit_log(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``users seal`` from the command line (its configuration's signing key and number protection
    gathered for the QA rows' check, service/qa_evidence.py): a scorecard that no audit row wrote
    (an insider's, in a table never sealed) is named and left, exit 4; ``--include-broken`` seals it."""
    from pbx_recorder.errors import IntegrityError

    cfg = _setup(tmp_path, monkeypatch)
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        conn.execute("INSERT INTO qa_scorecards (name, criteria, created_by, created_at) "
                     "VALUES ('weights', '[]', 'mallory', ?)", (NOW,))
    finally:
        conn.close()
    runner = CliRunner()
    kept = runner.invoke(cli, ["--config", cfg, "users", "seal"])
    assert isinstance(kept.exception, IntegrityError), kept.output
    assert "not what the audit log wrote" in kept.output and "(weights): no audit row wrote it" in kept.output
    sealed = runner.invoke(cli, ["--config", cfg, "users", "seal", "--include-broken"])
    assert sealed.exit_code == 0 and "sealed qa_scorecards: 1" in sealed.output, sealed.output


def test_include_broken_narrowed_to_one_table(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``--include-broken --table qa_scorecards`` re-seals that table's failing rows only: an account
    row changed by hand stays failing (not honoured), and the command says so (exit 4)."""
    from pbx_recorder.errors import IntegrityError

    cfg = _setup(tmp_path, monkeypatch)
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        conn.execute("INSERT INTO qa_scorecards (name, criteria, created_by, created_at) "
                     "VALUES ('weights', '[]', 'mallory', ?)", (NOW,))
        conn.execute("UPDATE users SET role = 'admin' WHERE name = 'alice'")
    finally:
        conn.close()
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", cfg, "users", "seal", "--table", "qa_scorecards"]).exit_code == 2
    narrowed = runner.invoke(cli, ["--config", cfg, "users", "seal", "--include-broken", "--table",
                                   "qa_scorecards"])
    assert isinstance(narrowed.exception, IntegrityError), narrowed.output
    assert "sealed qa_scorecards: 1" in narrowed.output and "sealed users" not in narrowed.output
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        acc = Accounts(conn, hasher=CHEAP, seal=access_seal.from_file(tmp_path / "k" / "web.key"))
        assert acc.get("alice") is None  # still failing its seal: not an account
    finally:
        conn.close()
