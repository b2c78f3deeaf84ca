"""PromptCatalog: texts, versions, language fallback, admin recordings without a manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from consent.prompts import PROMPT_IDS, PromptCatalog
from pbx_recorder.errors import NotFound


def _write(dir_: Path, lang: str, prompt_id: str, data: bytes = b"RIFFfake") -> Path:
    (dir_ / lang).mkdir(parents=True, exist_ok=True)
    path = dir_ / lang / f"{prompt_id}.wav"
    path.write_bytes(data)
    return path


def test_every_prompt_has_en_and_zh_text_and_version(tmp_path: Path) -> None:
    catalog = PromptCatalog(tmp_path)
    for prompt_id in PROMPT_IDS:
        assert catalog.text(prompt_id, "en")
        assert catalog.text(prompt_id, "zh") != catalog.text(prompt_id, "en")
        assert catalog.text_version(prompt_id)
    assert "1" in catalog.text("consent-question", "en") and "2" in catalog.text("consent-question", "en")


def test_manifest_version_and_language_fallback(tmp_path: Path) -> None:
    _write(tmp_path, "en", "consent-question")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"en": {"consent-question": {"version": "cq-9", "file": "consent-question.wav"}}}))
    catalog = PromptCatalog(tmp_path)
    assert catalog.path("consent-question", "en") == (str(tmp_path / "en" / "consent-question"), "cq-9")
    assert catalog.path("consent-question", "fr")[1] == "cq-9"  # falls back to en
    assert catalog.path("recording-consent", "en")[1] == "cq-9"  # config alias


def test_admin_recording_without_manifest_is_versioned_by_hash(tmp_path: Path) -> None:
    path = _write(tmp_path, "zh", "consent-thanks", b"my own recording")
    _, version = PromptCatalog(tmp_path).path("consent-thanks", "zh")
    assert version == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_missing_audio_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        PromptCatalog(tmp_path).path("refusal-goodbye", "en")
    with pytest.raises(NotFound):
        PromptCatalog(tmp_path).text("no-such-prompt", "en")


def test_generated_prompt_folders_are_never_writable_by_others(tmp_path: Path, monkeypatch) -> None:
    """Red-team re-try: under umask 000 the missing parent folders of the prompt directory were
    made 0777, so any local account could swap the consent question Asterisk plays."""
    import os
    import stat

    from consent import generate_prompts

    monkeypatch.setattr(generate_prompts, "render", lambda text, voice: b"RIFF....WAVE")
    old = os.umask(0)
    try:
        generate_prompts.generate(tmp_path / "usr" / "share" / "pbx" / "prompts", ["en"])
    finally:
        os.umask(old)
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")}
    assert [k for k, m in modes.items() if m & 0o022] == []
    assert modes["usr/share/pbx/prompts/en/consent-question.wav"] == 0o644
