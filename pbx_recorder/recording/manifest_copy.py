"""The catalog's copy of a recording's signed manifest, and the one reader of that column.

The signed manifest (CDR with the caller's number, consent evidence, files, processing) is
stored as an object beside the audio (role ``manifest``; sealed in the recording's envelope
when the audio is encrypted).  Up to schema 10 the catalog held a second, full copy of it in
``recordings.manifest``: 1,346 B of the 6,769 B a call took (issue 11).  Since schema 11 a
row written by the recorder holds only what search and display read (:func:`catalog_copy`):

* ``recordings.manifest``: :data:`COPY_KEYS` of the manifest (file list, PCI pauses, the
  recorded span) and :data:`COPY_PROCESSING` of its ``processing`` (the facts ``verify`` and
  erasure read without opening storage);
* ``recordings.manifest_sha256``: SHA-256 of the manifest's canonical bytes, what the Ed25519
  signature (``recordings.signature``) covers.

``verify`` reads the stored manifest (``pbx_recorder.recording.stored_manifest``) and checks that it hashes
to ``manifest_sha256``, that its signature verifies, that the row's fields and this copy agree
with it.  A row written before keeps its whole copy (``manifest_sha256`` ``''``) and is verified
as before.  Pure: no I/O here.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from pbx_recorder.recording.manifest import canonical_json

#: top-level manifest keys the catalog keeps: ``calls show`` (files), the console's timeline and
#: waveform (pauses, recorded_from/to), leg objects of rows without an ``objects`` list (files)
COPY_KEYS = ("files", "pauses", "recorded_from", "recorded_to")
#: ``processing`` keys the catalog keeps: the plaintext hash ``verify --deep`` and exports check
#: decrypted audio against, whether the data key is only in the catalog (erasure's receipt)
COPY_PROCESSING = ("encrypted", "key_in_header", "plaintext_sha256")


def parse(raw: Any, *, strict: bool = False) -> dict[str, Any]:
    """A manifest cell (JSON text, bytes, a mapping, None) as a dict; ``{}`` when it is not a JSON
    object (``strict``: ValueError, for ``verify``).  Numbers sealed by schema 6 stay sealed:
    ``NumberProtection.open_manifest`` opens them."""
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("utf-8", "replace")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "{}")
        except ValueError:
            if strict:
                raise
            return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    if strict:
        raise ValueError("the manifest is not a JSON object")
    return {}


def signed_sha256(manifest: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical bytes the signature covers."""
    return hashlib.sha256(canonical_json(dict(manifest))).hexdigest()


def catalog_copy(manifest: Mapping[str, Any], keep: tuple[str, ...] = (),
                 digest: str | None = None) -> tuple[dict[str, Any], str]:
    """(what the catalog keeps of a signed ``manifest``, the SHA-256 of the signed bytes).
    ``keep``: more top-level keys (a catalog whose numbers are not protected keeps the
    number-bearing ones, which erasure by number reads until the data step has indexed them).
    ``digest``: that SHA-256 when the caller has it (the signing hook hashed the bytes it signed)."""
    copy = {k: _as_json(manifest[k]) for k in (*COPY_KEYS, *keep) if k in manifest}
    processing = manifest.get("processing")
    if isinstance(processing, Mapping):
        kept = {k: _as_json(processing[k]) for k in COPY_PROCESSING if k in processing}
        if kept:
            copy["processing"] = kept
    return copy, digest or signed_sha256(manifest)


def _as_json(value: Any) -> Any:
    """``value`` as JSON gives it back (a fresh copy: tuples as lists, keys as text), without
    the encoding and parsing (the write path makes one copy per recording)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            canonical_json(value)  # ValueError, as canonical JSON refuses NaN and infinities
        return value
    if kind is list or kind is tuple:
        return [_as_json(v) for v in value]
    if kind is dict and all(type(k) is str for k in value):
        return {k: _as_json(v) for k, v in value.items()}
    return json.loads(canonical_json(value))  # anything else: as before, through JSON


def is_copy(row: Mapping[str, Any]) -> bool:
    """True for a row written since schema 11: its signed manifest is the stored object."""
    return bool(row.get("manifest_sha256"))


def copy_differences(copy: Mapping[str, Any], signed: Mapping[str, Any]) -> list[str]:
    """The keys of a catalog ``copy`` that the ``signed`` manifest contradicts (an edited copy would
    show other pauses or files than the recorder signed)."""
    own = (*COPY_KEYS, "processing")
    kept = tuple(k for k in copy if k not in own and k in signed)  # number fields of a clear catalog
    want, _ = catalog_copy(signed, kept)
    keys = sorted(set(want) | {k for k in copy if k in own})
    return [k for k in keys if canonical_json(want.get(k)) != canonical_json(copy.get(k))]
