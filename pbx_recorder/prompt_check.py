"""Start-up check: every consent prompt the daemon may play has audio in ``consent.prompts_dir``.

The package ships prompt texts only (consent/prompts/prompts.yaml); the audio is rendered by
``pbx-recorder prompts generate`` (or recorded by an admin).  A daemon started without it would
fail at the first call that needs a prompt, so ``pbx-recorder run`` refuses to start instead.

What is needed: the consent defaults (notice, question, retry, goodbye) and every prompt a rule
names (``prompt``, ``refusal.goodbye_prompt``), for every configured language (``consent.languages``,
``consent.default_language``, a rule's ``language``).  A language without its own file plays the
default language's file (as :meth:`consent.prompts.PromptCatalog.path` does at call time): that
is only a warning; a prompt with no playable file at all is the error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from pbx_recorder.errors import ConfigError, NotFound

log = logging.getLogger(__name__)

KEY = "consent.prompts_dir"
# What a consent session plays when a rule names no prompt of its own (consent/session_contract.py).
DEFAULT_PROMPTS = ("recording-notice", "consent-question", "consent-retry", "refusal-goodbye")


class PromptPaths(Protocol):
    prompts_dir: Path
    default_language: str

    def resolve(self, prompt_id: str) -> str: ...

    def path(self, prompt_id: str, language: str) -> tuple[str, str]: ...


def required_prompts(rules: Iterable[Any]) -> list[str]:
    """The consent defaults plus every prompt id the rules reference, in a stable order."""
    ids: dict[str, None] = dict.fromkeys(DEFAULT_PROMPTS)
    for rule in rules:
        action = getattr(rule, "action", None)
        refusal = getattr(action, "refusal", None)
        for prompt in (getattr(action, "prompt", None), getattr(refusal, "goodbye_prompt", None)):
            if prompt:
                ids[str(prompt)] = None
    return list(ids)


def required_languages(consent: Any, rules: Iterable[Any]) -> list[str]:
    langs: dict[str, None] = dict.fromkeys([consent.default_language, *consent.languages.values()])
    for rule in rules:
        lang = getattr(getattr(rule, "action", None), "language", None)
        if lang:
            langs[str(lang)] = None
    return list(langs)


def check_prompts(catalog: PromptPaths, prompt_ids: Iterable[str], languages: Iterable[str],
                  config_file: str | Path | None = None) -> None:
    """Raise ConfigError (key ``consent.prompts_dir``) naming every prompt file that is missing."""
    missing: dict[str, None] = {}
    fallbacks: list[str] = []
    for lang in dict.fromkeys([catalog.default_language, *languages]):
        for prompt_id in prompt_ids:
            name = f"{lang}/{catalog.resolve(prompt_id)}.wav"
            try:
                path, _ = catalog.path(prompt_id, lang)
            except NotFound:  # neither <lang>/ nor the fallback <default_language>/ has it
                missing[f"{catalog.default_language}/{catalog.resolve(prompt_id)}.wav"] = None
                continue
            if Path(path).parent.name != lang:
                fallbacks.append(name)
    if fallbacks:
        log.warning("prompts in %s play in %s instead (no file of their own language): %s",
                    catalog.prompts_dir, catalog.default_language, ", ".join(fallbacks))
    if missing:
        config = f"--config {config_file} " if config_file else ""
        raise ConfigError(
            f"{catalog.prompts_dir} lacks prompt audio the consent dialogue needs: {', '.join(missing)} "
            f"(the package ships prompt texts only). Fix: run `pbx-recorder {config}prompts generate` "
            "to render them there, or point consent.prompts_dir at your own recordings "
            "(<dir>/<lang>/<prompt_id>.wav).",
            file=str(config_file) if config_file else None, key=KEY)
