"""The privacy HMAC key (``privacy.hash_key_file``): read and checked in one place.

Kept apart from the lifecycle runtime so that a catalog-only command (``calls search``, which
needs the key for the numbers' blind indexes) does not import the lifecycle jobs."""

from __future__ import annotations

import sys
from pathlib import Path

from pbx_recorder.errors import ConfigError

MIN_KEY_BYTES = 16
_PROTECTION = "pbx_recorder.catalog.number_protection"
PREVIOUS_SUFFIX = ".previous"  # the key a blind-index key rotation replaces, while it runs


def previous_path(path: str | Path) -> Path:
    """Where the index key a rotation replaced is kept until the rotation ends (beside the key)."""
    return Path(path).with_name(Path(path).name + PREVIOUS_SUFFIX)


def key_files_stamp(path: str | Path) -> tuple[tuple[int, int, int], ...]:
    """(inode, mtime, size) of the key file and of the key a rotation replaced: changes when
    ``keys rotate-index`` starts or ends, so a long-running process knows to read them again."""
    out = []
    for p in (Path(path), previous_path(path)):
        try:
            st = p.stat()
        except FileNotFoundError:
            out.append((0, 0, 0))
        else:
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


def read_hash_key(path: str | Path | None) -> bytes:
    """The current privacy HMAC key.  While a blind-index key rotation runs, the key it replaced
    (:func:`previous_path`) is read too and registered, so every lookup by keyed hash also matches
    rows and hashes not re-keyed yet (``catalog.number_protection.lookup_keys``)."""
    key = _read(path)
    assert path
    previous = previous_path(path)
    if previous.exists() or _PROTECTION in sys.modules:  # (no rotation ever: nothing to import)
        from pbx_recorder.catalog.number_protection import register_previous

        register_previous(key, _read(previous) if previous.exists() else None)
    return key


def _read(path: str | Path | None) -> bytes:
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
