"""The demo runs with encryption on (as the example config) and its keys are made at first start."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from pbx_recorder.cli.crypto_setup import ensure_keys
from pbx_recorder.config import load_config
from pbx_recorder.demo import demo_config
from storage import file_modes


def test_demo_config_encrypts_and_first_start_makes_the_keys(tmp_path):
    pbx = SimpleNamespace(monitor_dir=tmp_path / "monitor", ami_port=5038, daemon_ami_user="u",
                          daemon_ami_secret="s", agi_host="127.0.0.1", agi_port=4573)
    cfg = load_config(demo_config(tmp_path, pbx), env={})
    assert cfg.encryption.enabled
    made = ensure_keys(cfg, 1700000000.0)  # what the daemon does when it builds the shipper
    assert any(line.startswith("master key demo") for line in made)
    key = Path(cfg.encryption.master_key_file)
    assert key.is_file() and file_modes.is_private(key) and file_modes.is_private(key.parent)


def test_demo_config_file_holding_the_ami_secret_is_owner_only(tmp_path):
    import os

    pbx = SimpleNamespace(monitor_dir=tmp_path / "monitor", ami_port=5038, daemon_ami_user="u",
                          daemon_ami_secret="s", agi_host="127.0.0.1", agi_port=4573)
    old = os.umask(0o022)
    try:
        path = demo_config(tmp_path, pbx)
    finally:
        os.umask(old)
    assert file_modes.is_private(path) and file_modes.is_private(path.parent)
