"""Config -> crypto objects for the keys / verify / ledger commands (not itself a command).

``load(ctx, action)`` authorizes the command's action (``cli.authz``) before anything is read.

``encryption.master_key_file`` names either the key ring directory or one key file inside
it, ``<dir>/<key_id>.key``; the current key id is ``encryption.key_id`` or, when unset, that
file's stem.  ``signing.key_file`` is the Ed25519 private key (public key at ``<file>.pub``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pbx_recorder.cli.authz import authorize
from pbx_recorder.errors import ConfigError
from storage.keyring import SUFFIX, KeyRing


def load(ctx: click.Context, action: str, target: str = "") -> Any:
    """The Config, after ``action`` is authorized (``cli.authz``; refusals are audited)."""
    from pbx_recorder.config import load_config

    config = load_config((ctx.obj or {}).get("config_path"))
    authorize(config, None, action, target)
    return config


def keyring_of(config: Any, *, required: bool) -> KeyRing | None:
    path = config.encryption.master_key_file
    if path is None:
        if required:
            raise ConfigError("no key ring configured", key="encryption.master_key_file")
        return None
    return KeyRing.from_config_path(path)


def current_key_id(config: Any) -> str:
    if config.encryption.key_id:
        return str(config.encryption.key_id)
    path = config.encryption.master_key_file
    if path is not None and Path(path).name.endswith(SUFFIX):
        return Path(path).name[: -len(SUFFIX)]
    raise ConfigError("no current master key id", key="encryption.key_id")

