"""``pbx-recorder check-config``: OK line, --print without secrets, exit code 2 on errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pbx_recorder.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "etc" / "pbx-recorder.yaml"
SECRET = "cli-Secret-value-42"


def test_check_config_ok_and_print(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PBX_RECORDER_PBX__AMI__SECRET", SECRET)
    monkeypatch.setenv("PBX_RECORDER_STORAGE__TIERS__COLD__SECRET_ACCESS_KEY", SECRET)
    code = main(["check-config", "--config", str(EXAMPLE), "--print"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"OK: {EXAMPLE}: 5 rules, tiers hot=hot(local), cold=cold(s3)" in out
    assert "secret_access_key: '**********'" in out
    assert SECRET not in out + err


def test_check_config_group_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("node: edge7\n", encoding="utf-8")
    assert main(["--config", str(cfg), "check-config"]) == 0
    assert f"OK: {cfg}: 0 rules, tiers hot=hot(local), cold=cold(local)" in capsys.readouterr().out


def test_check_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"pbx:\n  ami:\n    secret: {SECRET}\n    prot: 1\nstorage:\n  hot: nowhere\n", encoding="utf-8"
    )
    code = main(["check-config", "--config", str(cfg)])
    out, err = capsys.readouterr()
    assert code == 2
    assert f"ERROR: {cfg}: pbx.ami.prot: unknown key (did you mean 'port'?)" in err
    assert f"ERROR: {cfg}: storage.hot: unknown tier 'nowhere'" in err
    assert "2 configuration errors" in err
    assert "OK" not in out and SECRET not in out + err


def test_check_config_malformed_yaml_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("node: [\n", encoding="utf-8")
    assert main(["check-config", "--config", str(cfg)]) == 2
    assert "malformed YAML at line 2" in capsys.readouterr().err


def test_check_config_warns_when_encryption_is_off(tmp_path, capsys):
    from pbx_recorder.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("encryption: {enabled: false}\n")
    assert main(["--config", str(cfg), "check-config"]) == 0
    assert "encryption.enabled is false" in capsys.readouterr().err


def _s3_tier_yaml(tmp_path: Path, extra: str) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "storage:\n  hot: hot\n  cold: cold\n  tiers:\n"
        f"    hot: {{type: local, path: {tmp_path}/hot}}\n"
        "    cold:\n      type: s3\n      bucket: rec-bucket\n      endpoint_url: http://127.0.0.1:9\n"
        + extra,
        encoding="utf-8",
    )
    return cfg


def test_check_config_accepts_the_strict_server_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pbx_recorder.config import load_config
    from storage.factory import build_tiers

    cfg = _s3_tier_yaml(tmp_path, "      allow_governance_bypass: true\n      storage_class: COLD-TIER\n"
                                  "      class_transition: lifecycle\n"
                                  "      archive_classes: [cold-tier, GLACIER]\n")
    assert main(["check-config", "--config", str(cfg)]) == 0, capsys.readouterr().err
    tier: Any = build_tiers(load_config(cfg).storage)["cold"]
    assert tier.allow_governance_bypass is True and tier.class_transition == "lifecycle"
    assert tier.is_archive_class("COLD-TIER") and not tier.is_archive_class("DEEP_ARCHIVE")


def test_check_config_lifecycle_mode_needs_the_target_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _s3_tier_yaml(tmp_path, "      class_transition: lifecycle\n")
    assert main(["check-config", "--config", str(cfg)]) == 2
    assert "storage.tiers.cold.storage_class: with class_transition: lifecycle" in capsys.readouterr().err
