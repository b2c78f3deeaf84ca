"""consent.prompts_dir: where the default points, what `prompts generate` writes, what `run` checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from consent.prompts import PromptCatalog
from pbx_recorder.app import _build_prompts, build_app
from pbx_recorder.cli import cli
from pbx_recorder.config import load_config
from pbx_recorder.errors import ConfigError
from pbx_recorder.prompt_check import DEFAULT_PROMPTS, check_prompts

RULES = """
rules:
  - name: sales
    match: {direction: [inbound]}
    action: {record: "yes", consent: notify, prompt: sales-notice}
  - name: support
    match: {direction: [outbound]}
    action:
      record: "yes"
      consent: explicit
      refusal: {hangup: true, goodbye_prompt: recording-goodbye}
"""


def write_config(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_prompts(prompts_dir: Path, lang: str, ids: tuple[str, ...] | list[str]) -> None:
    (prompts_dir / lang).mkdir(parents=True, exist_ok=True)
    for prompt_id in ids:
        (prompts_dir / lang / f"{prompt_id}.wav").write_bytes(b"RIFFfake")


def test_default_prompts_dir_is_beside_the_config_file(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    etc = tmp_path / "etc" / "pbx-recorder"
    assert load_config(write_config(etc / "a.yaml"), env={}).consent.prompts_dir == etc / "prompts"
    explicit_null = write_config(etc / "b.yaml", "consent: {prompts_dir: null}\n")
    assert load_config(explicit_null, env={}).consent.prompts_dir == etc / "prompts"
    relative = write_config(etc / "c.yaml", "consent: {prompts_dir: audio/prompts}\n")
    assert load_config(relative, env={}).consent.prompts_dir == etc / "audio" / "prompts"
    assert load_config(None, env={}).consent.prompts_dir == tmp_path / "var" / "prompts"  # embedded defaults


def test_prompts_generate_writes_to_the_configured_prompts_dir(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    targets: list[Path] = []

    def fake_generate(target: Path, languages: list[str] | None = None) -> dict:
        targets.append(Path(target))
        return {"en": {"recording-notice": {"version": "rn-1"}}}

    monkeypatch.setattr("consent.generate_prompts.generate", fake_generate)
    default = write_config(tmp_path / "etc" / "pbx-recorder.yaml")
    custom = write_config(tmp_path / "etc2" / "pbx-recorder.yaml", "consent: {prompts_dir: /srv/prompts}\n")
    for cfg in (default, custom):
        result = CliRunner().invoke(cli, ["--config", str(cfg), "prompts", "generate"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert targets == [tmp_path / "etc" / "prompts", Path("/srv/prompts")]
    # and `run` reads exactly what `generate` wrote
    assert load_config(default, env={}).consent.prompts_dir == targets[0]


def test_startup_check_names_the_key_the_files_and_the_fix(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path / "pbx-recorder.yaml", RULES)
    config = load_config(cfg_path, env={})
    prompts_dir = tmp_path / "prompts"
    write_prompts(prompts_dir, "en", [p for p in DEFAULT_PROMPTS if p != "consent-retry"])
    with pytest.raises(ConfigError) as err:
        _build_prompts(config)
    exc = err.value
    assert exc.key == "consent.prompts_dir" and exc.file == str(cfg_path)
    message = str(exc)
    assert "en/consent-retry.wav" in message and "en/sales-notice.wav" in message
    assert "en/refusal-goodbye.wav" not in message  # present (the rule names it by its alias)
    assert f"pbx-recorder --config {cfg_path} prompts generate" in message
    assert str(prompts_dir) in message

    write_prompts(prompts_dir, "en", ["consent-retry", "sales-notice"])
    catalog = _build_prompts(config)
    assert catalog.path("sales-notice", "en")[0] == str(prompts_dir / "en" / "sales-notice")


def test_build_app_refuses_to_start_before_creating_anything(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path / "pbx-recorder.yaml",
                            f"catalog: {{path: {tmp_path}/catalog.db}}\nspool: {{dir: {tmp_path}/spool}}\n")
    with pytest.raises(ConfigError, match="consent.prompts_dir"):
        build_app(load_config(cfg_path, env={}))
    assert not (tmp_path / "catalog.db").exists() and not (tmp_path / "spool").exists()


def test_languages_fall_back_to_the_default_language_file(tmp_path: Path) -> None:
    write_prompts(tmp_path, "en", DEFAULT_PROMPTS)
    write_prompts(tmp_path, "zh", ["recording-notice"])
    catalog = PromptCatalog(tmp_path, default_language="en")
    check_prompts(catalog, DEFAULT_PROMPTS, ["en", "zh", "de"])  # zh/de play en where they have no file
    (tmp_path / "en" / "consent-question.wav").unlink()
    with pytest.raises(ConfigError) as err:
        check_prompts(catalog, DEFAULT_PROMPTS, ["en", "zh"])
    assert err.value.key == "consent.prompts_dir" and "en/consent-question.wav" in str(err.value)
    assert err.value.file is None and "pbx-recorder prompts generate" in str(err.value)
