"""The audit rows' key: an HMAC over each audit row's hash, so a row written by hand is told apart.

The audit chain (:mod:`pbx_recorder.audit_trail`) is a SHA-256 hash chain whose head is signed
outside the database once a day (``chain_head``).  Anyone who can write the catalog (a PostgreSQL
DBA, a stolen database password) could still append rows after the last signed head and compute
their hashes: a fake "alice played call X" would pass ``audit verify``.  With
``web.secret_key_file`` set, every audit row carries ``mac``: HMAC-SHA256 over the row's hash
under a key derived (HKDF-SHA256, its own ``info``) from that file, which only the recorder's
account and root can read; the row's hash covers that it is keyed, so a MAC removed later breaks
the hash, and once one keyed row is in the chain every later row must be keyed.

The key is registered per catalog when a process loads its config (:func:`register_for`, called
by ``load_config``): every process of the recorder (daemon, service, CLI, timers) that loads the
config writes keyed rows for the catalog that config names, and no other.  A process that cannot
read the file may not append to a keyed chain (fail closed: ``audit_trail.record`` refuses).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from typing import Any

from pbx_recorder.errors import CryptoError

log = logging.getLogger(__name__)

PREFIX = "m1."
_INFO = b"pbx-recorder audit rows v1"
#: catalog identity (a SQLite file's real path, a PostgreSQL URL) -> the audit rows' key
_keys: dict[str, bytes] = {}


def derive(secret: bytes) -> bytes:
    from pbx_recorder.service.secret_box import subkey

    return subkey(secret, _INFO)


def _identity(target: Any) -> str:
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        return text
    return os.path.realpath(text)


def register(target: Any, key: bytes | None) -> None:
    """The audit rows of the catalog at ``target`` are keyed by ``key`` (None: not keyed)."""
    if key is None:
        _keys.pop(_identity(target), None)
    else:
        _keys[_identity(target)] = key


def register_for(config: Any) -> None:
    """Register the key ``config`` names (``web.secret_key_file``) for its catalog.  A file not
    there yet (``users totp-key init`` creates it) or unreadable by this process leaves the catalog
    unkeyed in this process: once the chain is keyed, its audit rows are refused (fail closed).
    A config without the setting changes nothing registered (a check of the default config with
    an empty environment, ``cli/operator_gate.py``, must not drop a key the environment gave)."""
    path = config.web.secret_key_file
    target = config.catalog.target
    if path is None:
        return
    from pbx_recorder.service.secret_box import read_key

    try:
        register(target, derive(read_key(path)))
    except CryptoError as exc:
        register(target, None)
        if os.path.exists(path):
            log.warning("audit rows written by this process are not keyed: %s", exc)


def for_connection(conn: Any) -> bytes | None:
    """The key registered for the catalog ``conn`` is open on, else None."""
    if not _keys:
        return None
    url = getattr(conn, "url", None)
    if isinstance(url, str) and url:
        return _keys.get(url)
    for _seq, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return _keys.get(_identity(file)) if file else None
    return None


def mac(key: bytes, row_hash: str) -> str:
    return PREFIX + hmac.new(key, bytes.fromhex(row_hash), hashlib.sha256).hexdigest()


def holds(key: bytes, row_hash: str, stored: str) -> bool:
    try:
        return hmac.compare_digest(mac(key, row_hash), str(stored or ""))
    except ValueError:  # a hash that is not hex
        return False
