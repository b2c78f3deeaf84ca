"""The shipped systemd units run their commands as their User= against the shipped config: every
timer job used to exit 7 (pbx-recorder had no role).  Also: the units keep everything owner-only."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pbx_recorder.cli import authz, main
from pbx_recorder.lifecycle.journal import open_catalog

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = "/etc/pbx-recorder/pbx-recorder.yaml"
TIMER_UNITS = ("pbx-recorder-lifecycle.service", "pbx-recorder-retention.service")


def unit(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (REPO / "etc" / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.fixture()
def shipped_config(tmp_path, monkeypatch):
    """The shipped etc/pbx-recorder.yaml, only its paths moved under tmp_path (environment layer)."""
    env = {
        "PBX_RECORDER_PBX__AMI__SECRET": "x",
        "PBX_RECORDER_STORAGE__TIERS__COLD__SECRET_ACCESS_KEY": "y",
        "PBX_RECORDER_CATALOG__PATH": f"{tmp_path}/lib/catalog.db",
        "PBX_RECORDER_SPOOL__DIR": f"{tmp_path}/lib/spool",
        "PBX_RECORDER_STORAGE__TIERS__HOT__PATH": f"{tmp_path}/lib/hot",
        "PBX_RECORDER_STORAGE__TIERS__ARCHIVE__PATH": f"{tmp_path}/archive",
        "PBX_RECORDER_STORAGE__COLD": "archive",  # no S3 from a unit test: backups go to a local tier
        "PBX_RECORDER_ENCRYPTION__MASTER_KEY_FILE": f"{tmp_path}/keys/master/k2026-01.key",
        "PBX_RECORDER_ENCRYPTION__BACKUP_KEY_DIR": f"{tmp_path}/keys/backup",
        "PBX_RECORDER_SIGNING__KEY_FILE": f"{tmp_path}/keys/signing.ed25519",
        "PBX_RECORDER_PRIVACY__HASH_KEY_FILE": f"{tmp_path}/keys/subject-hmac.key",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    config = str(REPO / "etc" / "pbx-recorder.yaml")
    monkeypatch.setattr(authz, "current_actor", lambda: "root")
    assert main(["--config", config, "keys", "init"]) == 0  # the install step, as root (admin)
    return config, tmp_path


@pytest.mark.parametrize("name", TIMER_UNITS)
def test_timer_jobs_succeed_as_the_user_they_run_as(name, shipped_config, monkeypatch, capsys):
    config, tmp_path = shipped_config
    values = unit(name)
    (user,) = values["User"]
    monkeypatch.setattr(authz, "current_actor", lambda: user)
    assert values["ExecStart"]
    for line in values["ExecStart"]:
        argv = shlex.split(line)[1:]
        assert argv[:2] == ["--config", SHIPPED_CONFIG], line
        code = main(["--config", config, *argv[2:]])
        out = capsys.readouterr()
        assert code == 0, (name, argv, out.out, out.err)
    conn = open_catalog(f"{tmp_path}/lib/catalog.db")
    actors = {tuple(r) for r in conn.execute("SELECT actor, role FROM audit_log")}
    denied = [r[0] for r in conn.execute("SELECT action FROM audit_log WHERE action LIKE 'denied:%'")]
    conn.close()
    assert (user, "service") in actors and denied == []


def test_units_keep_files_owner_only_and_asterisk_out():
    daemon = unit("pbx-recorder.service")
    assert daemon["UMask"] == ["0077"] and daemon["StateDirectoryMode"] == ["0700"]
    assert daemon["Group"] == ["pbx-recorder"] and daemon["SupplementaryGroups"] == ["asterisk"]
    for name in TIMER_UNITS:
        values = unit(name)
        assert values["UMask"] == ["0077"] and values["Group"] == ["pbx-recorder"], name
        assert "SupplementaryGroups" not in values, name  # the jobs never read the drop folder


def test_service_role_cannot_reveal_data(shipped_config, monkeypatch, capsys):
    config, _ = shipped_config
    monkeypatch.setattr(authz, "current_actor", lambda: "pbx-recorder")
    for args in (["calls", "search", "--unmask"], ["erase", "--caller", "4915112345678"], ["keys", "list"]):
        assert main(["--config", config, *args]) == 7, args
    capsys.readouterr()
