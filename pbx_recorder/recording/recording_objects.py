"""The objects of one recording: the single answer to "which stored objects make up recording X".

A recording is stored as several objects on its tier (all under the same tier, each key made
by ``pbx_recorder.core.naming.storage_key``):

* ``audio``         the primary audio (``recordings.storage_key``)
* ``leg:<role>``    further files of a multi-file recording (dual-track legs), key ``<rid>-<role>``
* ``original``      the untranscoded original when ``storage.transcode.keep_original`` is on,
                    key ``<rid>-original`` (``original:<role>`` / ``<rid>-<role>-original`` for legs)
* ``manifest``      the manifest JSON sidecar (CDR with the caller's number, consent evidence),
                    same stem as the primary with ``.json``

The shipper writes the list to ``recordings.objects`` (JSON list of {key, role, sha256, size}).
Rows from before that column (``'[]'``) fall back to the primary key plus the keys derived
exactly with :mod:`pbx_recorder.core.naming` from the primary key (the sidecar) and from the row's
manifest (leg files) -- never a bare prefix, which could match another recording.  Derived
entries have an empty ``sha256``: they may not exist (callers treat a missing derived object as
nothing to do).  Every job that touches a recording's bytes (erasure, retention, migration,
holds, verify) goes through :func:`objects_of`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from pbx_recorder.core.naming import parse_storage_key, storage_key
from pbx_recorder.recording import manifest_copy

AUDIO, MANIFEST, ORIGINAL = "audio", "manifest", "original"


class RecordingObject(NamedTuple):
    role: str
    key: str
    sha256: str  # "" when derived for an older row (hash unknown)


def leg_role(index: int, file_role: str) -> str:
    return f"leg:{file_role or index}"


def original_role(index: int, file_role: str) -> str:
    return ORIGINAL if index == 0 else f"{ORIGINAL}:{file_role or index}"


def to_json(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The catalog form: ``[{key, role, sha256, size[, version_id]}, ...]`` (``version_id``: the
    S3 version recorded at store time, when the bucket is versioned)."""
    return [
        {"key": str(e["key"]), "role": str(e["role"]), "sha256": str(e.get("sha256") or ""),
         "size": None if e.get("size") is None else int(e["size"]),
         **({"version_id": str(e["version_id"])} if e.get("version_id") else {})}
        for e in entries
    ]


def version_of(rec: Mapping[str, Any], key: str) -> str:
    """The version id recorded at store time for ``key`` ("" when none was)."""
    for o in listed(rec):
        if o.get("key") == key:
            return str(o.get("version_id") or "")
    return ""


def listed(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``objects`` column as a list of dicts (``[]`` when absent, empty or unreadable)."""
    raw = rec.get("objects")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "[]")
        except ValueError:
            return []
    if not isinstance(raw, list):
        return []
    return [dict(o) for o in raw if isinstance(o, Mapping) and o.get("key") and o.get("role")]


def is_listed(rec: Mapping[str, Any]) -> bool:
    """True when the row carries the shipper's own list (not a fallback derivation)."""
    return bool(listed(rec))


def derived_objects(rec: Mapping[str, Any]) -> list[RecordingObject]:
    """Fallback for rows without ``objects``: primary + naming-derived sidecar and leg keys."""
    key = str(rec.get("storage_key") or "")
    if not key:
        return []
    out = [RecordingObject(AUDIO, key, str(rec.get("sha256") or ""))]
    try:
        parsed = parse_storage_key(key)
    except ValueError:
        return out  # not a naming key: nothing can be derived safely
    rid = str(rec.get("recording_id") or "")
    if rid and parsed.recording_id != rid:
        return out  # the key is not this recording's own stem
    rid = parsed.recording_id

    def key_for(recording_id: str, ext: str) -> str:
        return storage_key(parsed.call_id, recording_id, parsed.started_at, ext, parsed.region)

    files = manifest_copy.parse(rec.get("manifest")).get("files") or []
    for i, f in enumerate(files):
        if i == 0 or not isinstance(f, Mapping):
            continue
        role = str(f.get("role") or "")
        try:  # the shipper gives every file of a recording the same stages, so the same extension
            out.append(RecordingObject(leg_role(i, role), key_for(f"{rid}-{role or i}", parsed.ext), ""))
        except ValueError:
            continue
    out.append(RecordingObject(MANIFEST, key_for(rid, "json"), ""))
    return out


def objects_of(rec: Mapping[str, Any]) -> list[RecordingObject]:
    """Every object of the recording: ``[(role, key, sha256), ...]``, the primary first."""
    entries = listed(rec)
    if not entries:
        return derived_objects(rec)
    out = [RecordingObject(str(o["role"]), str(o["key"]), str(o.get("sha256") or "")) for o in entries]
    primary = str(rec.get("storage_key") or "")
    if primary and primary not in {o.key for o in out}:
        out.insert(0, RecordingObject(AUDIO, primary, str(rec.get("sha256") or "")))
    out.sort(key=lambda o: o.key != primary)  # stable: primary first, then the shipper's order
    return out


def keys_of(rec: Mapping[str, Any]) -> list[str]:
    return [o.key for o in objects_of(rec)]
