"""The recording manifest: what was recorded, of which call, under which rule.

Serialized as canonical JSON (sorted keys, no spaces, UTF-8) so the crypto helper can
sign ``to_json()`` bytes as they are.  ``schema`` is the manifest format version;
``from_json`` ignores unknown keys (newer writers) and fills defaults for missing ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from pbx_recorder.recording.sorted_json import SortedJson

SCHEMA_VERSION = 1

CDR_FIELDS = ("start", "answer", "end", "duration", "billsec", "src", "dst", "disposition",
              "accountcode", "queue", "agent")


@dataclass(frozen=True, slots=True)
class ManifestFile:
    name: str  # file name inside the spool entry / beside the stored object
    size: int
    sha256: str  # hex of the bytes as spooled (original audio)
    duration_s: float | None = None
    role: str = "mixed"  # mixed | read | write | stereo
    audio_error: str = ""

    def __reduce__(self) -> tuple[Any, ...]:  # (pickled field by field: 4x faster than slots' state)
        return ManifestFile, (self.name, self.size, self.sha256, self.duration_s, self.role, self.audio_error)


@dataclass(frozen=True, slots=True)
class Manifest:
    recording_id: str
    call_id: str
    linkedid: str = ""
    uniqueids: tuple[str, ...] = ()
    kind: str = "call"
    mode: str = "mixed"
    files: tuple[ManifestFile, ...] = ()
    cdr: Mapping[str, Any] = field(default_factory=dict)  # CDR_FIELDS (as received)
    consent: Mapping[str, Any] = field(default_factory=dict)  # ConsentEvidence as a dict
    rule: str = ""
    tags: tuple[str, ...] = ()
    retention_class: str = ""
    region: str = ""
    callee_num: str = ""  # the number the call was placed to (CDR dst changes after a Goto)
    did: str = ""  # inbound: the DID
    recorded_from: float | None = None  # epoch seconds, recording span
    recorded_to: float | None = None
    pauses: tuple[tuple[float, float], ...] = ()  # (start, end) pairs
    flags: tuple[str, ...] = ()  # duration_mismatch, cdr_missing, file_missing, closure_timeout ...
    created_at: float = 0.0
    # what prepare stages did (transcode: {"format": "opus"}, encrypt: {"encrypted": true,
    # "key_id": ..., "wrapped_key": ...}); the shipper copies known keys into the catalog row
    processing: Mapping[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the fields in order (a bulk write sends manifests to its signing helper:
        ``recording.sign_ahead``); what ``dataclass(slots=True)`` pickles is four times slower."""
        return Manifest, tuple(getattr(self, name) for name in _MANIFEST_FIELDS)

    @property
    def recorded_span_s(self) -> float | None:
        if self.recorded_from is None or self.recorded_to is None:
            return None
        return max(self.recorded_to - self.recorded_from, 0.0)

    @property
    def paused_s(self) -> float:
        return sum(max(end - start, 0.0) for start, end in self.pauses)

    @property
    def audio_sha256(self) -> str:
        """Hash of the main audio file (the first one)."""
        return self.files[0].sha256 if self.files else ""

    def with_flags(self, *flags: str) -> Manifest:
        merged = tuple(dict.fromkeys([*self.flags, *(f for f in flags if f)]))
        return replace(self, flags=merged)

    def to_dict(self) -> dict[str, Any]:
        try:  # the catalog's bulk path builds one per recording: dataclasses.asdict is slow
            data = {name: _plain(getattr(self, name)) for name in _MANIFEST_FIELDS}
        except _NotPlain:
            data = asdict(self)  # a value of another type: asdict's own deep copy
        data["pauses"] = [list(p) for p in self.pauses]
        return data

    def to_json(self) -> bytes:
        """``canonical_json(self.to_dict())``, byte for byte, encoded straight from the dataclasses
        (no copy of the manifest first: the signing hook makes these bytes for every recording)."""
        try:
            return _CANONICAL_DATACLASSES.encode_bytes(self)
        except TypeError:  # a value of another type: the dict's own path says what it makes of it
            return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        file_keys = {f.name for f in fields(ManifestFile)}
        kw["files"] = tuple(ManifestFile(**{k: v for k, v in f.items() if k in file_keys})
                            for f in data.get("files", ()))
        kw["uniqueids"] = tuple(data.get("uniqueids", ()))
        kw["tags"] = tuple(data.get("tags", ()))
        kw["flags"] = tuple(data.get("flags", ()))
        kw["pauses"] = tuple((float(a), float(b)) for a, b in data.get("pauses", ()))
        kw["cdr"] = dict(data.get("cdr", {}))
        kw["consent"] = dict(data.get("consent", {}))
        kw["processing"] = dict(data.get("processing", {}))
        return cls(**kw)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        data = json.loads(raw)
        if not isinstance(data, dict) or "recording_id" not in data or "call_id" not in data:
            raise ValueError("not a recording manifest")
        return cls.from_dict(data)


#: the fields of a Manifest in the order its constructor takes them (``Manifest.__reduce__``)
_MANIFEST_FIELDS = tuple(f.name for f in fields(Manifest))


class _NotPlain(Exception):
    pass


_MANIFEST_FIELDS = tuple(f.name for f in fields(Manifest))
_FILE_FIELDS = tuple(f.name for f in fields(ManifestFile))
_ATOMS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """What ``dataclasses.asdict`` makes of ``value`` (same types, a fresh copy), for the types a
    manifest holds: JSON atoms, tuples, lists, dicts and :class:`ManifestFile`."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is tuple or kind is list:
        return kind(_plain(v) for v in value)
    if kind is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    if kind is ManifestFile:
        return {name: _plain(getattr(value, name)) for name in _FILE_FIELDS}
    raise _NotPlain(kind.__name__)


#: one encoder for every canonical text (``json.dumps`` with options builds a new one per call)
_CANONICAL = SortedJson(ensure_ascii=False, allow_nan=False)


def _fields_of(value: Any) -> dict[str, Any]:
    """What ``to_dict`` makes of a manifest or a file of it, one level deep (the encoder goes on)."""
    kind = type(value)
    if kind is Manifest:
        return {name: getattr(value, name) for name in _MANIFEST_FIELDS}
    if kind is ManifestFile:
        return {name: getattr(value, name) for name in _FILE_FIELDS}
    raise TypeError(f"not a manifest value: {kind.__name__}")


_CANONICAL_DATACLASSES = SortedJson(ensure_ascii=False, allow_nan=False, default=_fields_of)


def canonical_json(data: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: what is signed, sealed and chained."""
    return _CANONICAL.encode_bytes(data)


def cdr_subset(fields_in: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the manifest's CDR fields (lower-case keys) from a CdrPosted-like mapping."""
    lowered = {str(k).lower(): v for k, v in fields_in.items()}
    return {k: lowered[k] for k in CDR_FIELDS if k in lowered}
