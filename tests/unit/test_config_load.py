"""Config loading: defaults, the example file, layering, secrets, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_recorder.config import (
    Config,
    ConfigErrors,
    LocalTierConfig,
    RuleConfig,
    S3TierConfig,
    Secret,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "etc" / "pbx-recorder.yaml"
EXAMPLE_ENV = {
    "PBX_RECORDER_PBX__AMI__SECRET": "ami-example-secret",
    "PBX_RECORDER_STORAGE__TIERS__COLD__SECRET_ACCESS_KEY": "s3-example-secret",
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_a_local_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, env={})
    assert isinstance(cfg, Config)
    assert cfg.node == "pbx1"
    assert cfg.config_file is None and cfg.sources == ()
    assert cfg.pbx.type == "asterisk" and cfg.pbx.ami.port == 5038 and cfg.pbx.agi.port == 4573
    assert cfg.pbx.ami.reconnect_min_s == 0.5 and cfg.pbx.ami.reconnect_max_s == 30.0
    assert cfg.pbx.monitor_dir == tmp_path / "var" / "monitor"
    assert cfg.spool.dir == tmp_path / "var" / "spool"
    assert cfg.spool.min_free_mb == 200 and cfg.spool.closure_timeout_s == 30.0 and cfg.spool.stable_ms == 500
    assert cfg.spool.discard_timeout_s == 10.0
    assert cfg.catalog.path == tmp_path / "var" / "catalog.db"
    assert cfg.redis.url is None
    assert cfg.storage.hot == "hot" and cfg.storage.cold == "cold"
    hot = cfg.storage.tiers["hot"]
    assert isinstance(hot, LocalTierConfig) and hot.path == tmp_path / "var" / "hot"
    assert cfg.tier("cold").path == tmp_path / "var" / "cold"  # type: ignore[union-attr]
    classes = cfg.retention.classes
    assert (classes["standard"].days, classes["standard"].cold_after_days) == (180, 30)
    assert (classes["finance"].days, classes["complaints"].days, classes["vip"].days) == (1095, 1825, 1825)
    assert cfg.signing.key_file == tmp_path / "var" / "keys" / "signing.ed25519"
    assert cfg.privacy.hash_key_file == tmp_path / "var" / "keys" / "subject-hmac.key"
    assert cfg.web.port is None and cfg.metrics.port is None
    assert cfg.consent.languages["default"] == "en" and cfg.consent.on_recorder_down == "continue"
    assert cfg.rules == ()


def test_config_is_frozen() -> None:
    cfg = load_config(None, env={})
    with pytest.raises(AttributeError):
        cfg.node = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.storage.tiers["x"] = cfg.storage.tiers["hot"]  # type: ignore[index]


def test_example_file_loads_cleanly() -> None:
    cfg = load_config(EXAMPLE, env=EXAMPLE_ENV)
    assert cfg.config_file == EXAMPLE
    names = [r.name for r in cfg.rules]
    assert names == ["finance-hotline", "hr-hotline-never", "vip-force", "complaints-queue", "default-notify"]
    finance = cfg.rules[0]
    assert isinstance(finance, RuleConfig)
    assert finance.action.record == "yes"  # unquoted `yes` in YAML is a boolean: mapped back
    assert finance.action.consent == "explicit"
    assert finance.action.refusal is not None and finance.action.refusal.goto == "finance-unrecorded,s,1"
    assert finance.match.dialed == ("+493012345600", "_+49301234560[1-9]")
    assert finance.timezone == "Europe/Berlin"
    assert cfg.rules[1].action.record == "never"
    assert cfg.rules[2].match.vip is True and cfg.rules[2].action.record == "force"
    complaints = cfg.rules[3]
    assert complaints.action.refusal is not None and complaints.action.refusal.hangup is True
    cold = cfg.storage.tiers["cold"]
    assert isinstance(cold, S3TierConfig)
    assert cold.secret_access_key is not None and cold.secret_access_key.reveal() == "s3-example-secret"
    assert cold.object_lock.mode == "COMPLIANCE" and cold.object_lock.days == 180
    assert cfg.storage.tiers_for_region("cn").cold is None
    assert cfg.storage.tiers_for_region("xx").cold == "cold"
    assert cfg.retention.classes["training"].allow_short is True
    assert cfg.pbx.ami.secret is not None and cfg.pbx.ami.secret.reveal() == "ami-example-secret"


def test_layering_file_then_conf_d_then_env(tmp_path: Path) -> None:
    main = write(
        tmp_path / "pbx-recorder.yaml",
        "node: fromfile\nspool:\n  min_free_mb: 300\n  stable_ms: 700\n"
        "pbx:\n  ami:\n    host: 10.0.0.1\n    port: 5039\n",
    )
    write(tmp_path / "conf.d" / "10-a.yaml", "spool:\n  min_free_mb: 400\npbx:\n  ami:\n    port: 5040\n")
    write(tmp_path / "conf.d" / "20-b.yaml", "spool:\n  min_free_mb: 500\n")
    write(tmp_path / "conf.d" / "ignored.txt", "node: nope\n")
    cfg = load_config(
        main,
        env={
            "PBX_RECORDER_PBX__AMI__PORT": "6000",
            "PBX_RECORDER_NODE": "fromenv",
            "PBX_RECORDER_CONFIG": "/elsewhere.yaml",
            "PBX_RECORDER_USER": "alice",
            "UNRELATED": "x",
        },
    )
    assert cfg.node == "fromenv"  # env beats file
    assert cfg.spool.min_free_mb == 500  # later conf.d beats earlier conf.d beats file
    assert cfg.spool.stable_ms == 700  # deep merge keeps keys only the file set
    assert cfg.pbx.ami.host == "10.0.0.1"
    assert cfg.pbx.ami.port == 6000 and isinstance(cfg.pbx.ami.port, int)  # env parsed as YAML scalar
    assert [Path(s).name for s in cfg.sources] == ["pbx-recorder.yaml", "10-a.yaml", "20-b.yaml"]


def test_lists_replace_and_env_booleans(tmp_path: Path) -> None:
    main = write(tmp_path / "c.yaml", "rules:\n  - name: a\n  - name: b\n")
    write(tmp_path / "conf.d" / "rules.yaml", "rules:\n  - name: c\n")
    cfg = load_config(
        main,
        env={
            "PBX_RECORDER_ENCRYPTION__ENABLED": "true",
            "PBX_RECORDER_ENCRYPTION__MASTER_KEY_FILE": "keys/master.key",
        },
    )
    assert [r.name for r in cfg.rules] == ["c"]
    assert cfg.encryption.enabled is True
    assert cfg.encryption.master_key_file == tmp_path / "keys" / "master.key"  # env paths: file's dir


def test_relative_paths_resolve_against_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    main = write(
        tmp_path / "etc" / "c.yaml",
        "spool:\n  dir: spool\nstorage:\n  tiers:\n    hot: {path: ../data/hot}\n  cold: null\n",
    )
    cfg = load_config(main, env={})
    assert cfg.spool.dir == tmp_path / "etc" / "spool"
    assert cfg.storage.tiers["hot"].path == tmp_path / "data" / "hot"  # type: ignore[union-attr]
    assert cfg.storage.cold is None and list(cfg.storage.tiers) == ["hot"]
    assert cfg.catalog.path == tmp_path / "var" / "catalog.db"  # default: against the cwd


SECRET = "Zq9-very-secret-value"


def _assert_hidden(cfg: Config) -> None:
    assert SECRET not in repr(cfg)
    assert SECRET not in str(cfg.to_safe_dict())
    assert SECRET not in repr(cfg.pbx)


def test_secret_from_env_is_hidden() -> None:
    cfg = load_config(None, env={"PBX_RECORDER_PBX__AMI__SECRET": SECRET})
    assert isinstance(cfg.pbx.ami.secret, Secret)
    assert cfg.pbx.ami.secret.reveal() == SECRET
    assert cfg.pbx.ami.secret.source == "env PBX_RECORDER_PBX__AMI__SECRET"
    assert cfg.to_safe_dict()["pbx"]["ami"]["secret"] == "**********"
    _assert_hidden(cfg)


def test_secret_env_text_is_not_reinterpreted() -> None:
    cfg = load_config(
        None, env={"PBX_RECORDER_PBX__AMI__SECRET": "0123", "PBX_RECORDER_PBX__ESL__PASSWORD": "yes"}
    )
    assert cfg.pbx.ami.secret is not None and cfg.pbx.ami.secret.reveal() == "0123"
    assert cfg.pbx.esl.password is not None and cfg.pbx.esl.password.reveal() == "yes"


def test_secret_from_file_is_stripped_and_hidden(tmp_path: Path) -> None:
    write(tmp_path / "ami.secret", f"  {SECRET}\n")
    main = write(
        tmp_path / "c.yaml",
        "pbx:\n  ami:\n    secret_file: ami.secret\n"
        "storage:\n  tiers:\n    hot: {type: local, path: hot}\n"
        "    cold: {type: s3, bucket: recs, secret_access_key_file: ami.secret}\n",
    )
    cfg = load_config(main, env={})
    assert cfg.pbx.ami.secret is not None and cfg.pbx.ami.secret.reveal() == SECRET
    cold = cfg.storage.tiers["cold"]
    assert isinstance(cold, S3TierConfig) and cold.secret_access_key == Secret(SECRET)
    _assert_hidden(cfg)


def test_env_secret_overrides_file_secret_path(tmp_path: Path) -> None:
    main = write(tmp_path / "c.yaml", "pbx:\n  ami:\n    secret_file: /nonexistent/ami.secret\n")
    cfg = load_config(main, env={"PBX_RECORDER_PBX__AMI__SECRET": SECRET})
    assert cfg.pbx.ami.secret is not None and cfg.pbx.ami.secret.reveal() == SECRET


def test_secret_never_in_errors(tmp_path: Path) -> None:
    main = write(
        tmp_path / "c.yaml",
        f"pbx:\n  ami:\n    secret: {SECRET}\n    secret_file: x\n    port: nope\n"
        f"redis:\n  url: 'redis://:{SECRET}@localhost:6379/0'\n",
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(main, env={"PBX_RECORDER_PBX__AMI__SECRTE": SECRET})
    text = str(info.value) + repr(info.value.errors) + "".join(str(e) for e in info.value.errors)
    assert SECRET not in text
    assert len(info.value.errors) == 3  # both forms given, bad port, unknown env key


def test_redis_url_password_redacted(tmp_path: Path) -> None:
    cfg = load_config(None, env={"PBX_RECORDER_REDIS__URL": f"redis://:{SECRET}@127.0.0.1:6379/0"})
    assert cfg.redis.url == f"redis://:{SECRET}@127.0.0.1:6379/0"
    assert SECRET not in repr(cfg)
    assert cfg.to_safe_dict()["redis"]["url"] == "redis://:**********@127.0.0.1:6379/0"


def test_secret_wrapper() -> None:
    import pickle

    s = Secret("abc", source="inline")
    assert s == Secret("abc") and s != Secret("abd") and bool(s)
    assert "abc" not in repr(s) and "abc" not in str(s) and "abc" not in f"{s}"
    with pytest.raises(TypeError):
        pickle.dumps(s)
