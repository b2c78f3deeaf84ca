"""Load the recorder's config for a checking command: every problem printed, then exit 2."""

from __future__ import annotations

import click

from pbx_recorder.config import Config, ConfigErrors, load_config
from pbx_recorder.errors import ConfigError


def load_or_list_errors(path: str | None) -> Config:
    """The validated config; on errors, one ``ERROR:`` line each on stderr and ``ConfigError`` (exit 2)."""
    try:
        return load_config(path)
    except ConfigErrors as exc:
        for error in exc.errors:
            click.echo(f"ERROR: {error}", err=True)
        noun = "error" if len(exc.errors) == 1 else "errors"
        raise ConfigError(f"{len(exc.errors)} configuration {noun}", file=path) from exc
