"""``pbx-recorder prompts generate|list``: render consent prompts to WAV (espeak-ng + sox).

Both need ``prompts.generate`` (``cli.authz``): the prompt audio is what callers hear.
"""

from __future__ import annotations

from pathlib import Path

import click

from pbx_recorder.cli.authz import authorize


def _authorized_target(ctx: click.Context) -> Path:
    """Authorize ``prompts.generate``; return the configured ``consent.prompts_dir`` -- what
    ``pbx-recorder run`` plays from (default: ``prompts/`` beside the config file, also when
    that file does not exist yet: then the embedded defaults decide who may)."""
    from pbx_recorder.config import load_config

    config_path = Path(ctx.obj["config_path"])
    config = load_config(config_path if config_path.is_file() else None)
    authorize(config, None, "prompts.generate")
    if config_path.is_file():
        return Path(config.consent.prompts_dir)
    return config_path.parent / "prompts"


def register(group: click.Group) -> None:
    @group.group("prompts")
    def prompts() -> None:
        """Consent prompt audio (texts live in consent/prompts/prompts.yaml)."""

    @prompts.command("generate")
    @click.option("--target", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Output directory (default: consent.prompts_dir, i.e. prompts/ beside the config).")
    @click.option("--language", "languages", multiple=True, help="Only these languages (repeatable).")
    @click.pass_context
    def generate_cmd(ctx: click.Context, target: Path | None, languages: tuple[str, ...]) -> None:
        """Render every prompt text to 8 kHz mono 16-bit WAV and write manifest.json."""
        from consent.generate_prompts import generate

        default = _authorized_target(ctx)
        out = target or default
        manifest = generate(out, list(languages) or None)
        for lang, entries in sorted(manifest.items()):
            for prompt_id, meta in sorted(entries.items()):
                click.echo(f"{lang}/{prompt_id}.wav  version={meta['version']}")
        click.echo(f"written to {out}")

    @prompts.command("list")
    @click.option("--dir", "prompts_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
    @click.pass_context
    def list_cmd(ctx: click.Context, prompts_dir: Path | None) -> None:
        """Show each prompt, language, version and whether its audio exists."""
        from consent.prompts import PROMPT_IDS, PromptCatalog
        from pbx_recorder.errors import NotFound

        default = _authorized_target(ctx)
        catalog = PromptCatalog(prompts_dir or default)
        for prompt_id in PROMPT_IDS:
            for lang in catalog.languages:
                try:
                    path, version = catalog.path(prompt_id, lang)
                except NotFound:
                    path, version = "(missing)", catalog.text_version(prompt_id)
                click.echo(f"{prompt_id:22} {lang:3} {version:14} {path}")
