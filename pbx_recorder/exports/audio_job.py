"""Recordings in bulk -> one AES-256 encrypted ZIP: each recording decrypted through the same path
as the player (:func:`pbx_recorder.audio_access.plaintext_range`: segments authenticated one by
one, a plain object checked against the catalog's hash), named ``<call id>_<start time>.<ext>``,
plus ``manifest.json`` with which the recipient checks every file.

A cold (archive-class) recording cannot be read now: its restore is asked for through the
player's restore path (:func:`pbx_recorder.lifecycle.access.restore`, when the role holds
``calls.restore``) and it is listed as pending, in the manifest and on the job.  A recording whose
bytes fail their check stops the whole export (failed): a recipient never gets audio that does
not match the signed record.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyzipper

from pbx_recorder import audio_access
from pbx_recorder.errors import IntegrityError, NotFound, ObjectNotRestored, PolicyRefusal, RecorderError
from pbx_recorder.exports.table_job import open_zip
from pbx_recorder.recording import manifest_copy, stored_manifest
from pbx_recorder.recording.verify import expected_plaintext_sha256
from pbx_recorder.service.api_audio import READABLE_STATES, download_name
from storage.hashing import digests_equal
from storage.s3_objects import COLD_CLASSES

MAX_CALLS = 200  # calls per audio export
MANIFEST = "manifest.json"
VERIFY = ("sha256 each file and compare it with files[].sha256 (the bytes in this archive).  "
          "files[].expected_sha256 is what the catalog says the audio must hash to (the stored object's "
          "sha256, or for a recording encrypted at rest the plaintext hash of its signed manifest): the "
          "two are equal.  files[].signature is an Ed25519 signature (base64) over the canonical JSON of "
          "files[].manifest (keys sorted, no whitespace, UTF-8); check it with the recorder's public "
          "signing key (signing.ed25519.pub beside signing.key_file), e.g. `pbx-recorder verify`.  An entry "
          "with signature_withheld has no signature: its signed manifest names a call outside the exporter's "
          "row scope (a transfer's linked call), so the manifest is given without that link and its audio is "
          "checked by expected_sha256 only; an export by a role that sees every call carries the signed one.")
WITHHELD = ("the signed manifest names a call outside the exporter's row scope (a transfer's linked call): "
            "that link is left out and the signature with it")
_DOTS = re.compile(r"\.{2,}")


class ExportFailed(RecorderError):
    """An export stopped (a recording failed its check, the tier refused a read)."""


@dataclass(frozen=True)
class Who:
    user: str
    role: str
    may_restore: bool
    restore: Callable[[Mapping[str, Any]], str]  # asks a cold recording's restore (audited)


def entry_name(call_id: str, started_at: float | None, fmt: str, taken: set[str]) -> str:
    """``<call id>_<start time>.<ext>``: no separator, no '..', unique in the archive."""
    name = _DOTS.sub("_", download_name(call_id, started_at, fmt)).lstrip(".") or "recording.bin"
    stem, _, ext = name.rpartition(".")
    n, candidate = 1, name
    while candidate in taken or candidate == MANIFEST:
        n += 1
        candidate = f"{stem}_{n}.{ext}"
    taken.add(candidate)
    return candidate


def _cold(rec: Mapping[str, Any]) -> bool:
    archived = str(rec.get("storage_class") or "").upper() in COLD_CLASSES
    return archived and str(rec.get("restore_state") or "") != "done"


def plan(recordings: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], tiers: Mapping[str, Any],
         who: Who) -> tuple[list[tuple[Mapping[str, Any], Mapping[str, Any], int]], list[dict[str, Any]]]:
    """(readable (call, recording, plaintext size) triples, pending entries)."""
    ready: list[tuple[Mapping[str, Any], Mapping[str, Any], int]] = []
    pending: list[dict[str, Any]] = []
    for call, rec in recordings:
        base = {"call_id": str(call["call_id"]), "recording_id": str(rec["recording_id"])}
        tier = tiers.get(str(rec.get("tier") or ""))
        if tier is None or rec.get("state") not in READABLE_STATES:
            pending.append({**base, "reason": f"state {rec.get('state')}"})
            continue
        if _cold(rec):
            pending.append({**base, **_restore(rec, who)})
            continue
        try:
            ready.append((call, rec, audio_access.plaintext_size(rec, tier)))
        except ObjectNotRestored:
            pending.append({**base, **_restore(rec, who)})
    return ready, pending


def _restore(rec: Mapping[str, Any], who: Who) -> dict[str, Any]:
    if not who.may_restore:
        return {"reason": "cold storage", "restore": "not asked (the role may not restore)"}
    try:
        state = who.restore(rec)
    except (NotFound, PolicyRefusal, RecorderError) as exc:
        return {"reason": "cold storage", "restore": f"refused: {str(exc)[:120]}"}
    return {"reason": "cold storage", "restore": state or "requested"}


def _manifest_of(rec: Mapping[str, Any], tier: Any, keyring: Any) -> Any:
    """The signed manifest the recipient checks the signature of: since schema 11 the stored
    object (the catalog keeps a copy of what display reads), before it the catalog's copy."""
    if not manifest_copy.is_copy(rec):
        return manifest_copy.parse(rec.get("manifest"))
    try:
        return stored_manifest.read_signed(rec, tier, keyring)
    except (RecorderError, ValueError) as exc:
        raise ExportFailed(f"recording {rec['recording_id']}: its signed manifest: {exc}") from exc


def linked_calls(manifest: Any) -> list[str]:
    """The call ids a signed manifest's consent evidence links the call with (``transfer``)."""
    consent = manifest.get("consent") if isinstance(manifest, Mapping) else None
    links = consent.get("transfer") if isinstance(consent, Mapping) else None
    if not isinstance(links, list):
        return []
    return [str(link["call_id"]) for link in links if isinstance(link, Mapping) and link.get("call_id")]


def without_links(manifest: Mapping[str, Any], dropped: Sequence[str]) -> dict[str, Any]:
    """``manifest`` with its ``transfer`` links to the ``dropped`` calls left out (no longer the
    signed bytes: the entry carries no signature then)."""
    consent = dict(manifest["consent"])
    consent["transfer"] = [link for link in consent["transfer"]
                           if not (isinstance(link, Mapping) and str(link.get("call_id")) in dropped)]
    return {**manifest, "consent": consent}


def export(ready: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], int]],
           pending: Sequence[dict[str, Any]],
           tiers: Mapping[str, Any], keyring: Any, out: BinaryIO, password: str,
           progress: Callable[[int], None], meta: Mapping[str, Any],
           outside: Callable[[list[str]], list[str]] = lambda ids: []) -> tuple[int, list[dict[str, Any]]]:
    """Write the archive; (audio bytes written, manifest entries).  ``outside``: which of a signed
    manifest's linked calls the exporter may not see (their ids never reach the archive)."""
    files: list[dict[str, Any]] = []
    taken: set[str] = set()
    done = 0
    with open_zip(out, password, pyzipper.ZIP_STORED) as zf:
        for call, rec, size in ready:
            rid = str(rec["recording_id"])
            fmt = str(rec.get("format") or "wav")
            name = entry_name(str(call["call_id"]), call.get("started_at"), fmt, taken)
            h = hashlib.sha256()
            tier = tiers[str(rec["tier"])]
            try:
                with zf.open(name, "w", force_zip64=True) as dst:
                    for block in audio_access.plaintext_range(rec, tier, keyring, 0, size):
                        dst.write(block)
                        h.update(block)
                        done += len(block)
                        progress(done)
            except (IntegrityError, RecorderError) as exc:
                raise ExportFailed(f"recording {rid}: {exc}") from exc
            encrypted = bool(rec.get("encrypted"))
            expected = expected_plaintext_sha256(rec) if encrypted else str(rec.get("sha256") or "")
            if expected and not digests_equal(h.hexdigest(), expected):
                raise ExportFailed(f"recording {rid}: its audio does not match the catalog's hash")
            signed = _manifest_of(rec, tier, keyring)
            entry = {"file": name, "call_id": str(call["call_id"]), "recording_id": rid,
                     "sha256": h.hexdigest(), "size": size, "expected_sha256": expected,
                     "catalog_sha256": str(rec.get("sha256") or ""), "encrypted_at_rest": encrypted,
                     "manifest": signed, "signature": str(rec.get("signature") or "")}
            hidden = outside(linked_calls(signed))
            if hidden:
                entry.update(manifest=without_links(signed, hidden), signature="",
                             signature_withheld=WITHHELD)
            files.append(entry)
        body = {"format": "pbx-recorder audio export 1", **meta, "files": files, "pending": list(pending),
                "verify": VERIFY}
        zf.writestr(MANIFEST, json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False))
    return done, files
