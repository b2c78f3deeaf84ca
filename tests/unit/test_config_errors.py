"""Config errors: every problem names its file and dotted key; all are reported together."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_recorder.config import ConfigErrors, load_config
from pbx_recorder.errors import ConfigError


def errors_for(
    tmp_path: Path, text: str, env: dict[str, str] | None = None
) -> tuple[Path, list[ConfigError]]:
    path = tmp_path / "pbx-recorder.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_config(path, env=env or {})
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2
    return path, info.value.errors


def only(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[Path, ConfigError]:
    path, errors = errors_for(tmp_path, text, env)
    assert len(errors) == 1, [str(e) for e in errors]
    return path, errors[0]


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    path, err = only(tmp_path, "spool:\n  min_fre_mb: 100\n")
    assert err.file == str(path) and err.key == "spool.min_fre_mb"
    assert "unknown key" in str(err) and "did you mean 'min_free_mb'" in str(err)


def test_unknown_section_with_suggestion(tmp_path: Path) -> None:
    _, err = only(tmp_path, "storrage: {}\n")
    assert err.key == "storrage" and "did you mean 'storage'" in str(err)


def test_wrong_type(tmp_path: Path) -> None:
    path, err = only(tmp_path, "pbx:\n  ami:\n    port: five\n")
    assert (err.file, err.key) == (str(path), "pbx.ami.port")
    assert "expected an integer" in str(err)


def test_out_of_range(tmp_path: Path) -> None:
    _, err = only(tmp_path, "pbx:\n  agi:\n    port: 70000\n")
    assert err.key == "pbx.agi.port" and "out of range" in str(err)


def test_bad_choice_with_suggestion(tmp_path: Path) -> None:
    _, err = only(tmp_path, "rules:\n  - name: r\n    action:\n      record: forse\n")
    assert err.key == "rules[0].action.record" and "did you mean 'force'" in str(err)


def test_bad_pattern_names_list_index(tmp_path: Path) -> None:
    path, errors = errors_for(
        tmp_path,
        "rules:\n  - {name: a}\n  - {name: b}\n  - {name: c}\n"
        "  - name: d\n    match:\n      dialed: ['_12[3', '_X.5', 're:(']\n      caller: ['_[]']\n",
    )
    by_key = {e.key: str(e) for e in errors}
    assert set(by_key) == {
        "rules[3].match.dialed[0]",
        "rules[3].match.dialed[1]",
        "rules[3].match.dialed[2]",
        "rules[3].match.caller[0]",
    }
    assert "unclosed '['" in by_key["rules[3].match.dialed[0]"]
    assert "may only end" in by_key["rules[3].match.dialed[1]"]
    assert "bad regular expression" in by_key["rules[3].match.dialed[2]"]
    assert all(e.file == str(path) for e in errors)


def test_unknown_tier_reference(tmp_path: Path) -> None:
    _, errors = errors_for(tmp_path, "storage:\n  hot: fast\n  regions:\n    cn: {hot: hot, cold: glacier}\n")
    by_key = {e.key: str(e) for e in errors}
    assert "unknown tier 'fast'" in by_key["storage.hot"]
    assert "unknown tier 'glacier'" in by_key["storage.regions.cn.cold"]


@pytest.mark.parametrize("cold", ["/srv/rec/hot", "/srv/rec/hot/cold", "/srv/rec/hot/../hot/", "/srv/rec"])
def test_local_tiers_on_one_folder_are_refused(tmp_path: Path, cold: str) -> None:
    """A migration between them copies each file onto itself, then deletes the source."""
    _, err = only(tmp_path, "storage:\n  tiers:\n    hot: {type: local, path: /srv/rec/hot}\n"
                            f"    cold: {{type: local, path: {cold}}}\n")
    assert err.key == "storage.tiers.cold.path" and "tier 'hot'" in str(err)


def test_local_tiers_side_by_side_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "pbx-recorder.yaml"
    path.write_text("storage:\n  tiers:\n    hot: {type: local, path: /srv/rec/hot}\n"
                    "    cold: {type: local, path: /srv/rec/hot-cold}\n", encoding="utf-8")
    assert load_config(path, env={}).storage.cold == "cold"


def test_bad_time_window_and_timezone(tmp_path: Path) -> None:
    _, errors = errors_for(
        tmp_path,
        "rules:\n  - name: t\n    timezone: Mars/Olympus\n    match:\n"
        "      time: ['Mon-Fri 09:00-18:00', 'Mon-Fry 09:00-18:00', 'Sat 25:00-26:00', 'Sun 10:00-10:00']\n",
    )
    by_key = {e.key: str(e) for e in errors}
    assert set(by_key) == {
        "rules[0].timezone",
        "rules[0].match.time[1]",
        "rules[0].match.time[2]",
        "rules[0].match.time[3]",
    }
    assert "unknown day 'Fry'" in by_key["rules[0].match.time[1]"]
    assert "unknown time zone" in by_key["rules[0].timezone"]


def test_bad_retention(tmp_path: Path) -> None:
    _, errors = errors_for(
        tmp_path,
        "retention:\n  default_class: gold\n  classes:\n    short: {days: 30}\n"
        "    zero: {days: 0, allow_short: true}\n    training: {days: 30, allow_short: true}\n"
        "    odd: {days: 200, cold_after_days: 300}\n"
        "rules:\n  - name: r\n    action: {retention_class: platinum}\n",
    )
    by_key = {e.key: str(e) for e in errors}
    assert "180-day minimum" in by_key["retention.classes.short.days"]
    assert "out of range" in by_key["retention.classes.zero.days"]
    assert "must be less than days" in by_key["retention.classes.odd.cold_after_days"]
    assert "unknown retention class 'gold'" in by_key["retention.default_class"]
    assert "unknown retention class 'platinum'" in by_key["rules[0].action.retention_class"]
    assert "retention.classes.training.days" not in by_key


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path, err = only(tmp_path, "node: pbx1\nspool:\n  dir: x\n   bad: [unclosed\n")
    assert err.file == str(path) and err.key is None
    assert "malformed YAML at line 4" in str(err)


def test_malformed_conf_d_is_named(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    bad = tmp_path / "conf.d" / "50-bad.yaml"
    bad.write_text("a: b: c\n", encoding="utf-8")
    _, err = only(tmp_path, "node: pbx1\n")
    assert err.file == str(bad) and "line 1" in str(err)


def test_error_in_conf_d_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    extra = tmp_path / "conf.d" / "10-spool.yaml"
    extra.write_text("spool:\n  stable_ms: -1\n", encoding="utf-8")
    _, err = only(tmp_path, "spool:\n  stable_ms: 600\n")
    assert (err.file, err.key) == (str(extra), "spool.stable_ms")


def test_env_error_names_the_variable(tmp_path: Path) -> None:
    _, errors = errors_for(
        tmp_path,
        "node: pbx1\n",
        env={"PBX_RECORDER_SPOOL__MIN_FREE_MB": "lots", "PBX_RECORDER_SPOOL__NOPE": "1"},
    )
    by_key = {e.key: e for e in errors}
    assert by_key["spool.min_free_mb"].file == "env PBX_RECORDER_SPOOL__MIN_FREE_MB"
    assert by_key["spool.nope"].file == "env PBX_RECORDER_SPOOL__NOPE"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path / "absent.yaml", env={})
    assert info.value.errors[0].file == str(tmp_path / "absent.yaml") and "not found" in str(info.value)


def test_secret_file_unreadable(tmp_path: Path) -> None:
    _, err = only(tmp_path, "pbx:\n  ami:\n    secret_file: missing.secret\n")
    assert err.key == "pbx.ami.secret_file" and "cannot read secret file" in str(err)


def test_s3_tier_problems(tmp_path: Path) -> None:
    _, errors = errors_for(
        tmp_path,
        "storage:\n  tiers:\n    hot: {path: hot}\n    cold:\n      type: s3\n"
        "      bucket: Bad_Bucket\n      sse: aws:kms\n      object_lock: {mode: COMPLIANCE}\n"
        "      addressing_style: sideways\n",
    )
    keys = {e.key for e in errors}
    assert keys == {
        "storage.tiers.cold.bucket",
        "storage.tiers.cold.kms_key_id",
        "storage.tiers.cold.object_lock.days",
        "storage.tiers.cold.addressing_style",
    }


def test_refusal_shape(tmp_path: Path) -> None:
    _, errors = errors_for(
        tmp_path,
        "rules:\n  - name: a\n    action:\n      consent: explicit\n"
        "      refusal: {goto: 'queue,s,1', hangup: true}\n"
        "  - name: a\n    action: {consent: explicit, refusal: {}}\n"
        "  - name: c\n    action: {consent: explicit, refusal: {goto: 'only-two,s'}}\n",
    )
    by_key = {e.key: str(e) for e in errors}
    assert "goto target" in by_key["rules[2].action.refusal.goto"]
    assert "not both" in by_key["rules[0].action.refusal"]
    assert "duplicate rule name" in by_key["rules[1].name"]
    assert "needs 'goto" in by_key["rules[1].action.refusal"]


def test_all_errors_reported_together(tmp_path: Path) -> None:
    path, errors = errors_for(
        tmp_path,
        "node: 'bad node!'\nspool:\n  min_free_mb: -5\n  colsure_timeout_s: 3\n"
        "pbx:\n  type: sip\nweb:\n  port: 0\naccess:\n  users: {bob: god}\n"
        "logging: {level: LOUD}\n",
    )
    keys = {e.key for e in errors}
    assert keys == {
        "node",
        "spool.min_free_mb",
        "spool.colsure_timeout_s",
        "pbx.type",
        "web.port",
        "access.users.bob",
        "logging.level",
    }
    with pytest.raises(ConfigErrors) as info:
        load_config(path, env={})
    text = str(info.value)
    assert text.startswith(f"{path}: 7 configuration errors:")
    assert all(e.key in text for e in errors if e.key)


def test_tier_roles_and_redis_url_not_echoed(tmp_path: Path) -> None:
    _, errors = errors_for(
        tmp_path,
        "storage:\n  tiers:\n    ro: {path: ro, read_only: true}\n    other: {path: o}\n"
        "  hot: ro\n  cold: ro\nredis:\n  url: 'http://:hunter2pw@cache:6379'\n",
    )
    by_key = {e.key: str(e) for e in errors}
    assert "must be writable" in by_key["storage.hot"]
    assert "must differ from the hot tier" in by_key["storage.cold"]
    assert "not a valid Redis URL" in by_key["redis.url"]
    assert all("hunter2pw" not in text for text in by_key.values())


def test_a_catalog_url_with_a_password_in_it_is_refused(tmp_path: Path) -> None:
    _, err = only(tmp_path, "catalog:\n  url: postgresql://rec:hunter2@db:5432/catalog\n")
    assert err.key == "catalog.url" and "password_file" in str(err) and "hunter2" not in str(err)


def test_a_catalog_url_that_is_not_postgresql_names_the_key(tmp_path: Path) -> None:
    _, err = only(tmp_path, "catalog:\n  url: mysql://rec@db/catalog\n")
    assert err.key == "catalog.url"


def test_the_catalog_target_is_the_url_when_one_is_given(tmp_path: Path) -> None:
    secret = tmp_path / "catalog.pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    path = tmp_path / "pbx-recorder.yaml"
    path.write_text(f"catalog:\n  url: postgresql://rec@db:5432/catalog\n  password_file: {secret}\n"
                    "  pool_size: 4\n", encoding="utf-8")
    cfg = load_config(path, env={}).catalog
    assert cfg.target == "postgresql://rec@db:5432/catalog" and cfg.pool_size == 4
    assert cfg.parallel_workers == 0  # (the default: a search's page starts no parallel workers)
    assert cfg.password is not None and cfg.password.reveal() == "s3cret" and "s3cret" not in repr(cfg)
    plain = tmp_path / "plain.yaml"
    plain.write_text("catalog:\n  path: ./c.db\n", encoding="utf-8")
    assert load_config(plain, env={}).catalog.target == str(tmp_path / "c.db")


def test_the_catalog_parallel_workers_are_configured_and_bounded(tmp_path: Path) -> None:
    from pbx_recorder.catalog import engine

    url = "postgresql://rec@db:5432/catalog"
    try:
        path = tmp_path / "pbx-recorder.yaml"
        path.write_text(f"catalog:\n  url: {url}\n  parallel_workers: 2\n", encoding="utf-8")
        assert load_config(path, env={}).catalog.parallel_workers == 2
        assert engine._settings[url]["parallel_workers"] == 2  # what the pool's connections set
        for bad in ("-1", "65", "two"):
            _, err = only(tmp_path, f"catalog:\n  url: {url}\n  parallel_workers: {bad}\n")
            assert err.key == "catalog.parallel_workers", bad
    finally:
        engine._settings.pop(url, None)


def test_the_catalog_writer_cache_is_configured_and_bounded(tmp_path: Path) -> None:
    from pbx_recorder.catalog import engine

    before = engine.WRITER_CACHE_KIB
    try:
        path = tmp_path / "pbx-recorder.yaml"
        path.write_text("catalog:\n  path: ./c.db\n  writer_cache_mb: 64\n", encoding="utf-8")
        assert load_config(path, env={}).catalog.writer_cache_mb == 64
        assert engine.WRITER_CACHE_KIB == 64 * 1024  # what the writer connection is opened with
        _, err = only(tmp_path, "catalog:\n  writer_cache_mb: 2\n")
        assert err.key == "catalog.writer_cache_mb"
    finally:
        engine.configure_writer_cache(before)


def test_discard_timeout_is_read_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("spool:\n  discard_timeout_s: 2.5\n", encoding="utf-8")
    assert load_config(path, env={}).spool.discard_timeout_s == 2.5
    _, err = only(tmp_path, "spool:\n  discard_timeout_s: 0\n")
    assert err.key == "spool.discard_timeout_s"
