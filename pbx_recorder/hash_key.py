"""The privacy HMAC key (``privacy.hash_key_file``): read and checked in one place.

Kept apart from the lifecycle runtime so that a catalog-only command (``calls search``, which
needs the key for the numbers' blind indexes) does not import the lifecycle jobs."""

from __future__ import annotations

from pathlib import Path

from pbx_recorder.errors import ConfigError

MIN_KEY_BYTES = 16


def read_hash_key(path: str | Path | None) -> bytes:
    if not path:
        raise ConfigError("a keyed hash needs privacy.hash_key_file", key="privacy.hash_key_file")
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the hash key: {exc.strerror}", file=str(path), key="privacy.hash_key_file"
        ) from exc
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError("hash key shorter than 16 bytes", file=str(path), key="privacy.hash_key_file")
    return key
