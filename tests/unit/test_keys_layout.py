"""The key ring holds master keys only, the configured master key file name is honoured, and
``keys init`` creates every missing key owner-only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from pbx_recorder.cli import main
from pbx_recorder.config import ConfigErrors, load_config
from pbx_recorder.lifecycle.journal import open_catalog

NUMBER = "+4915112345678"


def _config(tmp_path: Path, **encryption) -> Path:
    keys = tmp_path / "keys"
    data = {
        "catalog": {"path": str(tmp_path / "catalog.db")},
        "spool": {"dir": str(tmp_path / "spool")},
        "storage": {"tiers": {"hot": {"type": "local", "path": str(tmp_path / "hot")}}, "hot": "hot",
                    "cold": None, "archive": None},
        "encryption": {"enabled": True, "master_key_file": str(keys / "master" / "k2026-01.key"),
                       "backup_key_dir": str(keys / "backup"), **encryption},
        "signing": {"key_file": str(keys / "signing.ed25519")},
        "privacy": {"hash_key_file": str(keys / "subject-hmac.key")},
    }
    path = tmp_path / "pbx-recorder.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(name="run")
def run_fixture(capsys):
    """``run(config, *args)``: the CLI's exit code and its output (also test_keys_retire_guard.py's)."""

    def go(config: Path, *args: str) -> tuple[int, str]:
        code = main(["--config", str(config), *args])
        out = capsys.readouterr()
        return code, out.out + out.err

    return go


def test_the_old_example_layout_is_refused_naming_the_keys(tmp_path):
    keys = tmp_path / "keys"
    path = _config(tmp_path, master_key_file=str(keys / "master.key"), key_id="k2026-01")
    data = yaml.safe_load(path.read_text())
    data["privacy"]["hash_key_file"] = str(keys / "subject-hmac.key")  # beside the master key: retired
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigErrors) as exc:
        load_config(path, env={})
    keys_named = {e.key for e in exc.value.errors}
    assert keys_named == {"encryption.key_id", "privacy.hash_key_file", "signing.key_file"}


def test_keys_init_honours_the_file_name_and_rotation_keeps_the_privacy_key(tmp_path, run):
    config = _config(tmp_path)
    code, out = run(config, "keys", "init")
    assert code == 0, out
    keys = tmp_path / "keys"
    master = keys / "master" / "k2026-01.key"  # exactly the configured file
    made = [master, keys / "signing.ed25519", keys / "subject-hmac.key"]
    for p in made:
        assert p.is_file() and stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert [p.name for p in (keys / "backup").iterdir()]
    assert stat.S_IMODE((keys / "master").stat().st_mode) == 0o700
    before = {p: p.read_bytes() for p in made}
    code, out = run(config, "keys", "init")
    assert code == 0 and "nothing created" in out
    assert {p: p.read_bytes() for p in made} == before  # never overwritten

    open_catalog(tmp_path / "catalog.db").close()
    # retiring while the configuration still names k2026-01 would strand every new write: refused
    code, out = run(config, "keys", "rotate", "--to", "k2027-01", "--retire-old")
    assert code == 2 and "set encryption.master_key_file: " + str(keys / "master" / "k2027-01.key") in out
    code, out = run(config, "keys", "rotate", "--to", "k2027-01")
    assert code == 0, out
    assert "master_key_file: " + str(keys / "master" / "k2027-01.key") in out
    config.write_text(config.read_text().replace("k2026-01.key", "k2027-01.key"))
    code, out = run(config, "keys", "rotate", "--to", "k2027-01", "--retire-old")
    assert code == 0, out
    assert sorted(p.name for p in (keys / "master").glob("*.key")) == ["k2027-01.key"]
    assert (keys / "subject-hmac.key").read_bytes() == before[keys / "subject-hmac.key"]
    code, out = run(config, "hold", "add", "--caller", NUMBER, "--reason", "litigation")
    assert code == 0, out
    code, out = run(config, "erase", "--caller", NUMBER)
    assert code == 0, out


def test_a_ring_with_other_keys_but_not_the_configured_one_is_an_error_not_a_new_key(tmp_path, run):
    config = _config(tmp_path)
    assert run(config, "keys", "init")[0] == 0
    data = yaml.safe_load(config.read_text())
    data["encryption"]["master_key_file"] = str(tmp_path / "keys" / "master" / "typo.key")
    config.write_text(yaml.safe_dump(data))
    code, out = run(config, "keys", "init")
    assert code == 2 and "typo" in out and "k2026-01" in out
    assert not (tmp_path / "keys" / "master" / "typo.key").exists()


def test_recorder_data_inside_the_drop_folder_is_refused(tmp_path):
    path = _config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pbx"] = {"monitor_dir": str(tmp_path / "drop")}
    data["spool"]["dir"] = str(tmp_path / "drop" / "spool")  # asterisk could read the spool
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigErrors) as exc:
        load_config(path, env={})
    assert [e.key for e in exc.value.errors] == ["spool.dir"]
