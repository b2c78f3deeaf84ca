"""The signed manifest of a recording, read from where it is stored (the object of role
``manifest`` beside the audio; in the recording's PBXR envelope when the audio is encrypted).

Since schema 11 the catalog keeps only a copy of what display reads and the signed bytes' hash
(``pbx_recorder.recording.manifest_copy``): ``verify`` and the audio export read the signed manifest here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

from pbx_recorder.errors import CryptoError
from pbx_recorder.recording.recording_objects import MANIFEST, objects_of
from storage.base import Tier
from storage.envelope import MAGIC, EncryptStage, decrypt_chunks
from storage.keyring import KeyRing

#: a manifest object larger than this is not a manifest (a swapped audio object): not read whole
MAX_MANIFEST_BYTES = 4 * 2**20


class KeyRingNeeded(CryptoError):
    """The stored manifest is sealed and no key ring is at hand (not evidence of tampering)."""


def manifest_key(row: Mapping[str, Any]) -> str:
    """The storage key of the row's manifest object ('' when the row lists none)."""
    return next((o.key for o in objects_of(row) if o.role == MANIFEST), "")


def read_signed(row: Mapping[str, Any], tier: Tier, keyring: KeyRing | None) -> dict[str, Any]:
    """The manifest stored for ``row`` on ``tier``, decrypted, as a dict.

    Raises ``NotFound``/``StorageError`` (``ObjectNotRestored`` in an archive class) from the tier,
    :class:`KeyRingNeeded`, ``CryptoError`` when the envelope does not open for this recording
    (another recording's sidecar, edited bytes; ``ObjectRoleMismatch``: another object of the
    recording in the sidecar's place), ``ValueError`` when it is not a JSON object."""
    rid, key = str(row["recording_id"]), manifest_key(row)
    if not key:
        raise ValueError("the row lists no manifest object")
    with tier.open(key) as src:
        data = src.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise ValueError(f"manifest object {key} is larger than {MAX_MANIFEST_BYTES} bytes")
    if data.startswith(MAGIC):
        if keyring is None:
            raise KeyRingNeeded(f"manifest object {key} is sealed; no key ring to open it")
        data = b"".join(decrypt_chunks(io.BytesIO(data), keyring, wrapped_key=row.get("wrapped_key") or None,
                                       key_id=row.get("key_id") or None,
                                       expected_aad=rid + EncryptStage.SIDECAR_AAD, expected_role=MANIFEST))
    found = json.loads(data.decode("utf-8"))
    if not isinstance(found, dict):
        raise ValueError(f"manifest object {key} is not a JSON object")
    return found
