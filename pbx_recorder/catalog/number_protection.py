"""Phone numbers in the catalog: encrypted at rest, found through keyed blind indexes.

Cipher: AES-256-GCM (``cryptography``) under a *catalog key* derived with HKDF-SHA256 from a
master key of the key ring (``storage.keyring``; info ``pbx-recorder catalog numbers v1``), so
the master key itself never encrypts two kinds of data.  A token is text::

    pn1:<key id>:<key check>:<base64(nonce 12 || ciphertext || tag 16)>

The key id names the ring key the token was written under (rotation: ``keys rotate`` makes a
new current key; old tokens still open while the old key is in the ring; ``catalog migrate``
re-encrypts them under the current one).  The key check (8 hex of an HMAC of the derived key)
tells "wrong key under that id" (a restored or swapped key file) from "the row was altered".
Writing fails closed: the current key is looked up in the ring again at most every second, and a
key retired meanwhile (``keys rotate --retire-old``) makes :meth:`NumberCipher.encrypt` raise
``CryptoError`` instead of writing a token under it.
The associated data binds a token to its row and field (``calls/<call id>``): a token copied
onto another call fails.

Blind indexes (HMAC-SHA256), keyed from the privacy HMAC key (``privacy.hash_key_file``, kept
apart from the master-key folder), never from the catalog key:

* full number: ``subject_hash(hash key, digits)`` -- the very keyed hash that erasure requests,
  tombstones and caller holds already store (``lifecycle.policy.number_hash``) for a number
  without '+', so a hold or erasure finds its calls by an index lookup;
* last 4 digits: HMAC under a key derived by HKDF (info ``pbx-recorder blind index last4 v1``),
  16 hex characters (a last-4 value has only 10,000 possibilities: collisions are harmless, a
  longer tag would only cost space).

Numbers are indexed on their digits (a leading '+' or spaces do not matter).  The index key is
rotated by ``keys rotate-index`` (``catalog.index_rotation``): writes use the current key, lookups
(:meth:`BlindIndex.fulls` / :meth:`BlindIndex.last4s`) the previous one as well while it runs.
Pure: no I/O (the ring lookup and the clock are injected).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pbx_recorder.errors import CryptoError

PREFIX = "pn1"
NONCE_LEN = 12
CIPHER_INFO = b"pbx-recorder catalog numbers v1"
LAST4_INFO = b"pbx-recorder blind index last4 v1"
CHECK_LABEL = b"pbx-recorder catalog key check"
LAST4_HEX = 16
RECHECK_S = 1.0  # NumberCipher.recheck_s: at most one key-file read a second while writing
RECENT_NUMBERS = 64  # full indexes kept for numbers hashed moments ago (BlindIndex._recent)


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def digits_of(number: str) -> str:
    return "".join(filter(str.isdigit, str(number)))  # (str.isdigit: the same digits as ever)


def is_token(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX + ":")


def token_key_id(token: str) -> str:
    parts = token.split(":", 3)
    return parts[1] if len(parts) == 4 and parts[0] == PREFIX else ""


@dataclass
class NumberCipher:
    """AES-256-GCM over short texts; ``master_key(key_id)`` returns a ring key (32 bytes)."""

    master_key: Callable[[str], bytes]
    current_key_id: str
    #: how often (seconds) :meth:`encrypt` asks ``master_key`` again whether the current key is
    #: still in the ring: ``keys rotate --retire-old`` moves it out while a daemon runs, and a
    #: cached derived key would go on writing tokens nothing can open once ``retired/`` is gone
    recheck_s: float = RECHECK_S
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    # key id -> (AES-GCM under the derived key, key check): derived once per key id
    _derived: dict[str, tuple[AESGCM, str]] = field(default_factory=dict, repr=False)
    _checked_at: float | None = field(default=None, repr=False)

    def _key(self, key_id: str) -> tuple[AESGCM, str]:
        if key_id not in self._derived:
            self._derived[key_id] = self._derive(key_id)
        return self._derived[key_id]

    def _derive(self, key_id: str) -> tuple[AESGCM, str]:
        key = _hkdf(self.master_key(key_id), CIPHER_INFO)  # a missing key: the ring's CryptoError
        return AESGCM(key), hmac.new(key, CHECK_LABEL, hashlib.sha256).hexdigest()[:8]

    def _current_key(self) -> tuple[AESGCM, str]:
        """The current key, looked up again at most every ``recheck_s``: fails closed
        (``CryptoError``) once the key left the ring; follows a replaced key file."""
        now = self.clock()
        if self._checked_at is None or now - self._checked_at >= self.recheck_s or now < self._checked_at:
            try:
                self._derived[self.current_key_id] = self._derive(self.current_key_id)
            except CryptoError:
                self._derived.pop(self.current_key_id, None)
                self._checked_at = None
                raise
            self._checked_at = now
        return self._key(self.current_key_id)

    def current_key_material(self) -> tuple[str, bytes, str]:
        """The current key id, its derived AES-GCM key and its check value, looked up in the ring
        now (a key ``keys rotate --retire-old`` took out fails closed, as :meth:`encrypt` does):
        what a helper process encrypting for this cipher is given (``recording.sign_ahead``)."""
        _, check = self._current_key()
        return self.current_key_id, _hkdf(self.master_key(self.current_key_id), CIPHER_INFO), check

    @classmethod
    def fixed(cls, key_id: str, key: bytes, check: str) -> NumberCipher:
        """A cipher that encrypts under one derived key (:meth:`current_key_material`) and never
        asks a ring: a helper process's copy, for as long as its writer says the key is current."""

        def no_ring(asked: str) -> bytes:
            raise CryptoError(f"catalog key {asked!r}: this cipher holds only key {key_id!r}")

        return cls(no_ring, key_id, recheck_s=math.inf, _derived={key_id: (AESGCM(key), check)},
                   _checked_at=time.monotonic())

    def encrypt(self, plaintext: str, aad: str) -> str:
        aead, check = self._current_key()
        nonce = os.urandom(NONCE_LEN)  # a fresh random nonce per value, as ever
        sealed = aead.encrypt(nonce, plaintext.encode("utf-8"), aad.encode("utf-8"))
        return f"{PREFIX}:{self.current_key_id}:{check}:" + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, aad: str) -> str:
        parts = token.split(":", 3)
        if len(parts) != 4 or parts[0] != PREFIX:
            raise CryptoError(f"catalog value of {aad} is not an encrypted number token ({PREFIX}:...)")
        _, key_id, check, body = parts
        aead, expected = self._key(key_id)  # a missing key: the ring's CryptoError names the id
        if not hmac.compare_digest(check, expected):
            raise CryptoError(f"catalog key {key_id!r} is not the key the numbers of {aad} were encrypted "
                              "with (key check mismatch): restore the right key file for that id")
        try:
            raw = base64.b64decode(body, validate=True)
            if len(raw) < NONCE_LEN + 16:
                raise ValueError("too short")
            return aead.decrypt(raw[:NONCE_LEN], raw[NONCE_LEN:], aad.encode("utf-8")).decode("utf-8")
        except (InvalidTag, binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise CryptoError(f"encrypted numbers of {aad} failed authentication under catalog key "
                              f"{key_id!r}: the stored value was altered or moved from another row") from exc


# current index key -> the previous one, while a blind-index key rotation runs
# (``catalog.index_rotation``); filled by ``hash_key.read_hash_key``, the one reader of the key files
_PREVIOUS: dict[bytes, bytes] = {}


def register_previous(current: bytes, previous: bytes | None) -> None:
    """Record (or, with None, forget) the key ``current`` replaced and that lookups still use."""
    if previous and previous != current:
        _PREVIOUS[current] = previous
    else:
        _PREVIOUS.pop(current, None)


def lookup_keys(current: bytes) -> tuple[bytes, ...]:
    """The keys a keyed hash is looked up under: ``current``, then the key it replaced while a
    rotation runs.  What is written is always under ``current``."""
    previous = _PREVIOUS.get(current)
    return (current, previous) if previous else (current,)


class BlindIndex:
    """Keyed indexes of a number: full digits and last 4 digits ('' when there is none).

    :meth:`full` / :meth:`last4` are what is written (the current key); :meth:`fulls` /
    :meth:`last4s` are what a lookup matches: the same, plus the value under the previous key while
    a blind-index key rotation runs (a row not re-indexed yet), never twice the same value."""

    def __init__(self, hash_key: bytes, previous: bytes | None = None, *, alone: bool = False) -> None:
        if len(hash_key) < 16:
            raise CryptoError("the blind-index key (privacy HMAC key) is shorter than 16 bytes")
        self._full_key = hash_key
        self._last4_key = _hkdf(hash_key, LAST4_INFO)
        # digits -> full index of the numbers seen last: one call names its caller in its row,
        # its CDR and its manifest, so each is hashed once (bounded; never written anywhere)
        self._recent: dict[str, str] = {}
        if previous is None and not alone:
            previous = _PREVIOUS.get(hash_key)
        self._previous = BlindIndex(previous, alone=True) if previous and previous != hash_key else None

    def write_key(self) -> bytes:
        """The key new index values are made with (a helper process's copy: ``recording.sign_ahead``)."""
        return self._full_key

    @property
    def rotating(self) -> bool:
        """A lookup also matches values under the previous key (a rotation runs)."""
        return self._previous is not None

    def full(self, number: str) -> str:
        return self.full_of_digits(digits_of(number))

    def full_of_digits(self, digits: str) -> str:
        """:meth:`full` of a number already reduced to its digits (:func:`digits_of`)."""
        if not digits:
            return ""
        found = self._recent.get(digits)
        if found is None:
            found = "hmac-sha256:" + hmac.digest(self._full_key, digits.encode(), "sha256").hex()
            if len(self._recent) >= RECENT_NUMBERS:
                self._recent.clear()
            self._recent[digits] = found
        return found

    def last4(self, number: str) -> str:
        digits = digits_of(number)
        if len(digits) < 4:
            return ""
        return hmac.digest(self._last4_key, digits[-4:].encode(), "sha256").hex()[:LAST4_HEX]

    def fulls(self, number: str) -> tuple[str, ...]:
        """The full-number values a lookup of ``number`` matches (current key first)."""
        return self._both(self.full(number), self._previous.full(number) if self._previous else "")

    def last4s(self, number: str) -> tuple[str, ...]:
        """The last-4 values a lookup of ``number`` matches (current key first)."""
        return self._both(self.last4(number), self._previous.last4(number) if self._previous else "")

    @staticmethod
    def _both(current: str, previous: str) -> tuple[str, ...]:
        return (current, previous) if previous and previous != current else (current,)
