"""Sealing small secrets of the operator service (TOTP secrets) with AES-256-GCM.

The key is 32 random bytes in the file ``web.secret_key_file`` (created owner-only, 0600, by
``pbx-recorder users totp-key init``; never overwritten: a lost key makes every enrolled second
factor unusable, and ``users reset-totp`` is the way back).  A sealed value is text::

    v1.<base64url(nonce 12 bytes || ciphertext || tag)>

with the user's name as associated data, so a sealed secret copied onto another account's row
does not open.  The catalog never holds the secret in clear.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pbx_recorder.errors import CryptoError
from storage.atomic import create_exclusive

KEY_BYTES = 32
NONCE_BYTES = 12
PREFIX = "v1."


def create_key_file(path: str | Path) -> Path:
    """A new key at ``path`` (0600, atomic); refuses to overwrite an existing file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        create_exclusive(path, secrets.token_bytes(KEY_BYTES), 0o600)
    except FileExistsError as exc:
        raise CryptoError(f"{path} already exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise CryptoError(f"cannot write {path}: {exc.strerror}") from exc
    return path


def subkey(secret: bytes, info: bytes) -> bytes:
    """A 32-byte key for one use (``info``) derived (HKDF-SHA256) from the 32 bytes of
    ``web.secret_key_file``: the access rows' seal, the audit rows' MACs."""
    if len(secret) != KEY_BYTES:
        raise CryptoError(f"a secret key has {KEY_BYTES} bytes, not {len(secret)}")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def read_key(path: str | Path) -> bytes:
    """The key in ``path``; CryptoError when others may read the file or it cannot be read."""
    try:
        st = os.stat(path)
        if st.st_mode & 0o077:
            raise CryptoError(f"secret key {path} is readable by others (mode {st.st_mode & 0o777:o});"
                              " chmod 600")
        return Path(path).read_bytes()
    except OSError as exc:
        raise CryptoError(f"secret key {path} unreadable: {exc.strerror}") from exc


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise CryptoError(f"a secret key has {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: str | Path) -> SecretBox:
        return cls(read_key(path))

    def seal(self, plaintext: str, context: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return PREFIX + base64.urlsafe_b64encode(sealed).decode("ascii")

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith(PREFIX):
            raise CryptoError("not a sealed value")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(PREFIX):].encode("ascii"))
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8")).decode()
        except (ValueError, InvalidTag) as exc:
            raise CryptoError("sealed value does not open with this key (or was moved)") from exc
