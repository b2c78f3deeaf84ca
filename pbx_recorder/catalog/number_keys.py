"""The keys that protect the catalog's numbers, from the Config (``catalog.number_protection``).

* Cipher: the master key ring (``encryption.master_key_file``; current key id as configured),
  through HKDF (``number_protection``).  A configuration without a master key ring still gets
  its numbers encrypted: under a catalog-only ring, ``catalog-keys/`` beside the privacy HMAC
  key (key id ``catalog1``, created owner-only at first use).  That ring sits beside the index
  key, so whoever copies that folder has both: configure ``encryption.master_key_file`` (a
  separate folder) to keep the cipher key apart from the index key.
* Blind indexes: the privacy HMAC key (``privacy.hash_key_file``), never in the master-key folder
  (``config.keys`` refuses that layout).

Missing keys are created as ``keys init`` would (``cli.crypto_setup``): a catalog must never
receive a number in clear because a key file was not made yet.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from storage.keyring import KeyRing

FALLBACK_RING = "catalog-keys"
FALLBACK_KEY_ID = "catalog1"


def cipher_ring(config: Any) -> tuple[KeyRing, str]:
    """(key ring, current key id) of the catalog cipher, the key made when missing."""
    from pbx_recorder.cli.crypto_setup import current_key_id, ensure_master_key, keyring_of

    if config.encryption.master_key_file is not None:
        ring = keyring_of(config, required=True)
        assert ring is not None
        if not ring.ids():  # first start; a ring without the configured key fails at first use,
            ensure_master_key(config)  # naming the key (the index lookups work without it)
        return ring, current_key_id(config)
    ring = KeyRing(Path(config.privacy.hash_key_file).parent / FALLBACK_RING)
    ids = ring.ids()
    if not ids:
        ring.generate(FALLBACK_KEY_ID)
        ids = [FALLBACK_KEY_ID]
    return ring, ids[-1]


def protection_for(config: Any) -> NumberProtection:
    """The catalog's number protection for ``config`` (keys created when missing)."""
    from pbx_recorder.cli.crypto_setup import ensure_hash_key
    from pbx_recorder.hash_key import read_hash_key

    ensure_hash_key(Path(config.privacy.hash_key_file))
    ring, key_id = cipher_ring(config)
    read_hash_key(config.privacy.hash_key_file)  # a missing or short key fails here, naming it
    index = KeyFileIndex(config.privacy.hash_key_file)
    return NumberProtection(NumberCipher(ring.get, key_id), index)


class KeyFileIndex(BlindIndex):
    """A blind index that follows its key files: a long-running writer (the daemon) indexes under
    the new key from the moment ``keys rotate-index`` puts it in place, and looks up under both
    while the rotation runs (the files are looked at at most every ``CHECK_EVERY`` seconds and
    re-read on a change; a row written under the old key meanwhile is found under either key and
    re-indexed by the rotation's sweep)."""

    CHECK_EVERY = 0.5  # seconds between two looks at the files (a bulk write hashes many numbers)

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._stamp: tuple[tuple[int, int, int], ...] = ()
        self._checked = -1.0
        self._refresh()

    def _refresh(self) -> None:
        from pbx_recorder.hash_key import key_files_stamp, read_hash_key

        now = time.monotonic()
        if self._stamp and now - self._checked < self.CHECK_EVERY:
            return
        self._checked = now
        stamp = key_files_stamp(self._path)
        if stamp != self._stamp:
            BlindIndex.__init__(self, read_hash_key(self._path))
            self._stamp = stamp

    def full_of_digits(self, digits: str) -> str:
        self._refresh()
        return super().full_of_digits(digits)

    def last4(self, number: str) -> str:
        self._refresh()
        return super().last4(number)

    def fulls(self, number: str) -> tuple[str, ...]:
        self._refresh()
        return super().fulls(number)

    def last4s(self, number: str) -> tuple[str, ...]:
        self._refresh()
        return super().last4s(number)


def protection_under(config: Any, key_id: str) -> NumberProtection:
    """The same, with ``key_id`` of the master ring as the current cipher key (``keys rotate``)."""
    base = protection_for(config)
    return NumberProtection(NumberCipher(base.cipher.master_key, key_id), base.index)
