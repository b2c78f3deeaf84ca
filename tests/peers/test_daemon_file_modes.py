"""Issue 6 re-tried (red team): walk every file the daemon and the CLI leave behind, under umask
022 (a foreground run, cron) and 000 (a sloppy wrapper), after a real call through the AMI peer
-> daemon -> spool -> encrypted tier -> catalog, then the operator commands that write
(checkpoint, backup, restore, erase, hold, get --out).  Nothing may be open to group or others
except the documented exceptions: the PBX's drop folder and the prompt audio (no call data)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from test_masking_end_to_end import CALL, CALLER, run_call

from pbx_recorder.cli import main

# reads, alters or runs a process on the SQLite catalog file itself: not part of the PostgreSQL pass
pytestmark = pytest.mark.sqlite_only

# written by the test itself, standing in for the installer / the PBX
NOT_OURS = ("pbx-recorder.yaml", "prompts", "monitor")


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def open_to_others(root: Path) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in NOT_OURS or path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077 and not path.name.endswith(".pub"):  # public keys are public
            bad.append(f"{rel} {mode:o}")
    return bad


def test_daemon_and_cli_leave_nothing_open_to_other_accounts(tmp_path, umask, monkeypatch):
    monkeypatch.setattr("test_masking_end_to_end.write_config", _encrypted_config)
    cfg = asyncio.run(run_call(tmp_path))
    assert open_to_others(tmp_path) == []
    assert any(p.suffix == ".pbxr" for p in (tmp_path / "hot").rglob("*"))  # the audio went in the envelope
    args = ["--config", str(cfg)]
    (tmp_path / "downloads").mkdir(mode=0o700)
    for command in (["ledger", "checkpoint"], ["verify"], ["catalog", "backup"],
                    ["recordings", "get", f"{CALL}_call002", "--out", str(tmp_path / "downloads" / "a.wav")],
                    ["hold", "add", "--call", CALL, "--reason", "audit"], ["calls", "search", "--unmask"]):
        assert main(args + command) == 0, command
    backups = sorted((tmp_path / "cold" / "catalog-backups").glob("*.db.pbxr"))
    assert main(args + ["catalog", "restore", "--from", f"catalog-backups/{backups[-1].name}",
                        "--to", str(tmp_path / "restored" / "catalog.db")]) == 0
    assert main(args + ["hold", "remove", _hold_id(tmp_path)]) == 0
    assert main(args + ["erase", "--caller", CALLER]) == 0
    assert open_to_others(tmp_path) == []
    serve_a_session(cfg)  # what `pbx-recorder serve` writes: sessions, audit, the WAL of the catalog
    assert open_to_others(tmp_path) == []


def serve_a_session(cfg: Path) -> None:
    from pbx_recorder.config import load_config
    from pbx_recorder.lifecycle.journal import open_catalog
    from pbx_recorder.service.accounts import Accounts
    from tests.peers.service_support import CHEAP, PASSWORD, login_from_config

    config = load_config(cfg)
    conn = open_catalog(config.catalog.target)
    try:
        Accounts(conn, hasher=CHEAP).add("boss", "admin", PASSWORD, actor="root", actor_role="host-admin",
                                         now=1.0)
    finally:
        conn.close()
    # the call is erased: each page answers all the same
    assert login_from_config(config, "boss", paths=("/api/calls", "/api/audit/export.csv", "/api/health",
                                                    "/audit")) == 200


def _hold_id(tmp_path: Path) -> str:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "catalog.db")
    try:
        return str(conn.execute("SELECT hold_id FROM holds").fetchone()[0])
    finally:
        conn.close()


def _encrypted_config(tmp: Path, ami_port: int, agi_port: int) -> Path:
    from test_daemon import write_config

    path = write_config(tmp, ami_port, agi_port)
    path.write_text(path.read_text()
                    + f"encryption: {{enabled: true, master_key_file: {tmp}/keys/master/k1.key}}\n"
                    + f"access: {{download_dir: {tmp}/downloads}}\n")
    return path
