"""The one small interface every storage tier implements (local disk, archive dir, S3).

Keys are produced by ``pbx_recorder.core.naming.storage_key``: relative, '/'-separated, safe.
Tiers never interpret a key.  Every write is verified: ``put`` streams the source once,
computing SHA-256 on the way, and must raise ``IntegrityError`` if the bytes that landed
do not hash to ``sha256`` (when given).  Errors are ``pbx_recorder.errors.StorageError``
subclasses; nothing from boto3/OSError leaks out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class PutOptions:
    metadata: Mapping[str, str] = field(default_factory=dict)  # call_id, recording_id, sha256, ...
    tags: Mapping[str, str] = field(default_factory=dict)
    storage_class: str = ""  # "" = the tier's default
    retain_until: datetime | None = None  # Object Lock retention (S3) / read-only mode (local)
    legal_hold: bool = False


@dataclass(frozen=True, slots=True)
class StoredObject:
    tier: str
    key: str
    size: int
    sha256: str  # hex digest of the bytes as stored
    storage_class: str = ""
    version_id: str = ""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    tier: str
    key: str
    size: int
    sha256: str = ""  # from metadata when the tier keeps it
    storage_class: str = ""
    restore_state: str = ""  # "" | "in_progress" | "done" (archive classes only)
    legal_hold: bool = False
    retain_until: datetime | None = None
    version_id: str = ""  # the server's version of the object ("" unversioned / not S3)
    server_sha256: str = ""  # hex SHA-256 the server computed itself (S3 ChecksumSHA256, single part)


@runtime_checkable
class Tier(Protocol):
    name: str

    def put(self, key: str, source: Path | BinaryIO, *, sha256: str | None = None,
            options: PutOptions | None = None) -> StoredObject: ...

    def open(self, key: str) -> BinaryIO:
        """Stream the object.  Raises NotFound, ObjectNotRestored (cold, not restored)."""
        ...

    def stat(self, key: str) -> ObjectInfo | None: ...

    def verify(self, key: str, sha256: str) -> bool:
        """Read the stored bytes back, hash them while streaming, compare in constant time."""
        ...

    def delete(self, key: str) -> int:
        """Delete every version; returns how many were removed.  PolicyRefusal under hold/lock."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def set_legal_hold(self, key: str, on: bool) -> bool:
        """True if the tier enforces it natively (S3 Object Lock), False if only the catalog does."""
        ...

    def restore(self, key: str, days: int = 7) -> str:
        """Start/inspect a restore of an archive-class object; returns its restore_state."""
        ...

    def usage(self) -> tuple[int, int] | None:
        """(used_bytes, total_bytes) for capacity-pressure decisions; None when unbounded."""
        ...
