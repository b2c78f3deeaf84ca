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


class _Stop(Exception):
    pass


def test_demo_workdir_is_owner_only_whatever_the_umask(tmp_path, monkeypatch):
    """Red-team re-try: ``demo --workdir DIR`` made DIR 0755 under umask 022, and below it the
    private Asterisk's manager.conf (its AMI secret: a PBX running as the demo's user), its
    logs and the raw demo recordings were readable by every local account."""
    import os
    import stat

    from pbx_recorder import demo

    def stop(*_args, **_kwargs):
        raise _Stop

    monkeypatch.setattr(demo, "generate", stop)  # the first step after the work directory
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    old = os.umask(0o022)
    try:
        for workdir in (tmp_path / "new" / "demo", existing):
            try:
                demo.run_demo(workdir, echo=lambda _line: None)
            except _Stop:
                pass
            assert stat.S_IMODE(workdir.stat().st_mode) == 0o700, workdir
    finally:
        os.umask(old)
