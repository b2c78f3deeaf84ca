"""Issue 11 "numbers encrypted in the catalog": a call with a known number goes through the AMI
peer -> the daemon -> the pipeline and shipper -> the catalog (the run of the masking test); then
neither the catalog file, its WAL, a `catalog backup` nor that backup restored holds the number
or its last 7 digits, while `calls search` by the last 4 digits and by the full number still
finds the call and `verify` (call seals, signed manifests) is clean."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_masking_end_to_end import CALL, CALLER, run_call

from pbx_recorder.cli import cli

# reads, alters or runs a process on the SQLite catalog file itself: not part of the PostgreSQL pass
pytestmark = pytest.mark.sqlite_only

SECRETS = (CALLER, CALLER[-7:])


def leaks(*paths: Path) -> list[str]:
    data = b"".join(p.read_bytes() for p in paths if p.exists())
    assert data
    return [s for s in SECRETS if s.encode() in data]


def test_no_copy_of_the_catalog_holds_the_number(tmp_path):
    cfg = asyncio.run(run_call(tmp_path))
    db = tmp_path / "catalog.db"
    assert leaks(db, tmp_path / "catalog.db-wal") == []
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    for query in (CALLER[-4:], CALLER, "+" + CALLER):
        found = json.loads(run("calls", "search", "--caller", query, "--json", "--unmask"))
        assert [c["call_id"] for c in found] == [CALL] and found[0]["caller_num"] == CALLER
    assert "status ok" in run("verify")
    tier_key = run("catalog", "backup").split()[0]  # "<tier>:<key> sha256:..."
    tier, key = tier_key.split(":", 1)
    backup = tmp_path / tier / key
    assert backup.is_file() and leaks(backup) == []
    restored = tmp_path / "restored.db"
    run("catalog", "restore", "--from", key, "--to", str(restored), "--tier", tier)
    assert leaks(restored, Path(f"{restored}-wal")) == []
    assert leaks(db, tmp_path / "catalog.db-wal") == []  # what the CLI wrote meanwhile (audit rows)


@pytest.fixture(autouse=True)
def _quiet_root_logger():
    yield
    logging.getLogger().handlers[:] = [h for h in logging.getLogger().handlers
                                       if type(h).__name__ == "LogCaptureHandler"]
