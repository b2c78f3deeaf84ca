from __future__ import annotations

import io
import json
import sqlite3
import time

import pytest
from lifecycle_support import NOW, add_call, add_recording, make_cli_env, rec

from pbx_recorder.cli import main
from pbx_recorder.errors import ObjectNotRestored
from pbx_recorder.lifecycle import access
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.lifecycle.policy import DAY
from storage.local import LocalTier

NUMBER = "+15551112222"


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PBX_RECORDER_USER", "auditor")  # no OS account: downloads go to download_dir
    env, cfg = make_cli_env(tmp_path, f"access: {{download_dir: {tmp_path}}}\n")
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    return env, cfg


def run(cfg, *args, capsys):
    code = main(["--config", cfg, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.sqlite_only  # ends with a SQLite file backup and restore (PostgreSQL: tests/real)
def test_cli_lifecycle_round(cli_env, capsys, tmp_path):
    env, cfg = cli_env
    add_call(env, "c-old", caller=NUMBER)
    skew = (NOW - time.time()) / DAY  # the CLI runs at the real clock, the helpers count from NOW
    add_recording(env, "c-old", "r-old", age_days=400 + skew)
    add_call(env, "c-mid")
    add_recording(env, "c-mid", "r-mid", age_days=60 + skew)

    code, out, _ = run(cfg, "recordings", "migrate", "--dry-run", capsys=capsys)
    # r-old is past retention: left to disposal rather than copied to cold first
    assert code == 0 and "1 recording(s) due" in out and rec(env, "r-mid")["tier"] == "hot"
    code, out, _ = run(cfg, "recordings", "migrate", capsys=capsys)
    assert code == 0 and "migrated 1/1" in out and rec(env, "r-mid")["tier"] == "cold"

    code, out, _ = run(cfg, "hold", "add", "--call", "c-mid", "--reason", "case 1", capsys=capsys)
    assert code == 0 and "1 recording(s) held" in out
    code, out, _ = run(cfg, "hold", "list", capsys=capsys)
    assert "case 1" in out and "1 hold(s)" in out

    code, out, _ = run(cfg, "retention", "report", capsys=capsys)
    assert "dispose  r-old" in out and "1 to dispose, 0 refused" in out
    code, out, _ = run(cfg, "retention", "apply", "--yes", capsys=capsys)
    assert "disposed 1, refused 0" in out and rec(env, "r-old")["state"] == "expired"
    code, out, _ = run(cfg, "retention", "set-class", "c-mid", "finance", capsys=capsys)
    assert code == 0 and rec(env, "r-mid")["retention_class"] == "finance"

    code, out, _ = run(cfg, "erase", "--call-id", "c-mid", "--request-id", "RQ9", capsys=capsys)
    receipt = json.loads(out)
    assert receipt["status"] == "refused_partial" and receipt["withheld"][0]["reason"] == "case 1"
    code, out, _ = run(cfg, "erase", "--caller", NUMBER, capsys=capsys)
    assert json.loads(out)["status"] == "done" and NUMBER not in out
    code, out, err = run(cfg, "erase", "status", capsys=capsys)
    assert "0 open, 0 overdue, 1 partial" in out, err  # RQ9 stays visible while its recording is held
    assert "RQ9" in out and "PARTIAL: 1 recording(s) withheld" in out and "r-mid (call c-mid)" in out
    assert "case 1" in out

    code, out, _ = run(cfg, "recordings", "get", "r-mid", "--out", str(tmp_path / "a.wav"), capsys=capsys)
    assert code == 0 and (tmp_path / "a.wav").read_bytes() == b"audio of r-mid" * 10

    code, out, _ = run(cfg, "catalog", "backup", capsys=capsys)
    key = out.split()[0].split(":", 1)[1]
    code, out, _ = run(
        cfg, "catalog", "restore", "--from", key, "--to", str(tmp_path / "r.db"), capsys=capsys
    )
    assert code == 0 and "verified" in out
    restored = sqlite3.connect(tmp_path / "r.db")
    assert restored.execute("SELECT state FROM recordings WHERE recording_id='r-mid'").fetchone() == (
        "migrated",
    )
    restored.close()

    actions = [tuple(r) for r in env.conn.execute("SELECT action, actor, role FROM audit_log")]
    assert {a[0] for a in actions} >= {
        "recordings.migrate",
        "hold.add",
        "hold.list",
        "retention.report",
        "retention.apply",
        "retention.set-class",
        "erase",
        "erase.status",
        "recordings.get",
        "catalog.backup",
    }
    # access.users is empty: RBAC not configured, the actor acts as admin (and is told so)
    assert all(a[1:] == ("auditor", "admin") for a in actions)
    assert not any(NUMBER[1:] in r[0] for r in env.conn.execute("SELECT detail FROM audit_log"))

    code, _, err = run(
        cfg, "hold", "add", "--call", "c-mid", "--caller", NUMBER, "--reason", "x", capsys=capsys
    )
    assert code == 5 and "exactly one" in err


class ColdTier(LocalTier):
    def open(self, key):
        raise ObjectNotRestored(f"{key} is in DEEP_ARCHIVE")


def test_get_cold_object_not_restored_says_what_to_do(tmp_path):
    tier = ColdTier("cold", tmp_path / "cold")
    tier.put("k.wav", io.BytesIO(b"x"))
    row = {
        "recording_id": "r1",
        "call_id": "c1",
        "tier": "cold",
        "state": "migrated",
        "storage_key": "k.wav",
        "storage_class": "DEEP_ARCHIVE",
        "sha256": "",
    }
    with pytest.raises(ObjectNotRestored, match="recordings restore r1"):
        access.download(open_catalog(tmp_path / "c.db"), row, {"cold": tier}, tmp_path / "out.wav",
                        actor="a", role="auditor", now=NOW)
    assert not (tmp_path / "out.wav").exists()
