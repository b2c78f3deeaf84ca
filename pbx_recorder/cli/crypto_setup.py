"""Config -> crypto objects for the keys / verify / ledger commands (not itself a command).

``load(ctx, action)`` authorizes the command's action (``cli.authz``) before anything is read.

``encryption.master_key_file`` names the current master key file, ``<ring>/<key id>.key``
(its name is the current key id, honoured: ``pbx_recorder.config.keys``), or the ring directory
with ``encryption.key_id`` saying which key is current.  ``signing.key_file`` is the Ed25519
private key (public key at ``<file>.pub``).

``ensure_keys`` creates, owner-only, whatever key of the configuration is missing: at install
(``keys init``) and at the daemon's first start.  A master key is only made while the ring is
empty: a ring that has keys but not the configured one is a mistake to report, not to paper over
with a new key (a new key cannot open the old audio).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import click

from pbx_recorder.cli.authz import authorize
from pbx_recorder.config.keys import master_key_layout
from pbx_recorder.errors import ConfigError
from storage import file_modes
from storage.keyring import KeyRing


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
    return KeyRing(master_key_layout(Path(path), config.encryption.key_id)[0])


def current_key_id(config: Any) -> str:
    path = config.encryption.master_key_file
    if path is not None:
        kid = master_key_layout(Path(path), config.encryption.key_id)[1]
        if kid:
            return kid
    if config.encryption.key_id:
        return str(config.encryption.key_id)
    raise ConfigError("no current master key id", key="encryption.key_id")


def ensure_master_key(config: Any) -> str | None:
    """Create the configured master key when the ring is empty; returns the path made, else None."""
    if config.encryption.master_key_file is None:
        return None
    ring = keyring_of(config, required=True)
    assert ring is not None
    kid = current_key_id(config)
    if ring.has(kid):
        return None
    if ring.ids():
        raise ConfigError(f"master key {kid!r} is not in {ring.key_dir} (it holds {', '.join(ring.ids())}); "
                          "a new key would not open the stored audio: restore the key file or point "
                          "master_key_file at the current one", key="encryption.master_key_file")
    return str(ring.generate(kid))


def ensure_hash_key(path: Path) -> str | None:
    """The privacy HMAC key (64 hex characters, 0600) when missing; returns the path made."""
    if path.exists():
        return None
    from storage.atomic import create_exclusive

    file_modes.private_dir(path.parent, tighten=False)
    create_exclusive(path, secrets.token_hex(32).encode() + b"\n", file_modes.FILE_MODE)
    return str(path)


def ensure_keys(config: Any, now: float) -> list[str]:
    """Every missing key of the configuration, created owner-only; returns what was made."""
    from pbx_recorder.lifecycle.backup_keys import BackupKeys
    from pbx_recorder.lifecycle.runtime import backup_key_dir
    from pbx_recorder.recording.signing import generate_signing_key

    made = []
    if config.encryption.enabled or config.encryption.master_key_file is not None:
        path = ensure_master_key(config)
        if path:
            made.append(f"master key {current_key_id(config)}: {path}")
    signing = config.signing.key_file
    if signing is not None and not Path(signing).exists():
        file_modes.private_dir(Path(signing).parent, tighten=False)
        generate_signing_key(signing)
        made.append(f"signing key: {signing} (public key {signing}.pub)")
    path = ensure_hash_key(Path(config.privacy.hash_key_file))
    if path:
        made.append(f"privacy HMAC key: {path}")
    keys = BackupKeys(backup_key_dir(config))
    if not keys.ids():
        made.append(f"backup key {keys.current(now)}: {keys.key_dir}")
    return made

