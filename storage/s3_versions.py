"""An object hidden by a delete marker: what a lifecycle transition on a versioned bucket leaves.

Some servers carry out a transition (a cloud-tier class, for one) by writing the object to
its new class and leaving a delete marker as the key's current version; a plain GET or HEAD
then answers 404 although the recording's version is still there.  ``hidden_version`` tells
that case from a key that is really gone: the newest entry of the key is a delete marker
and a real version lies under it.  It returns the version to read: the one recorded at
store time when it is among them, else the newest real one.  Our own deletes remove every
version and marker (``S3Tier.delete``), so a marker over a version is never our doing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from pbx_recorder.errors import StorageError, TierUnavailable

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Versioned(Protocol):
    name: str
    bucket: str

    def versions(self, key: str) -> list[dict[str, Any]]: ...


def is_marker(entry: dict[str, Any]) -> bool:
    """A delete marker (list_object_versions lists them without ETag or Size)."""
    return "ETag" not in entry and "Size" not in entry


def _when(entry: dict[str, Any]) -> datetime:
    value = entry.get("LastModified")
    return value if isinstance(value, datetime) else _EPOCH


def hidden_version(tier: _Versioned, key: str, recorded: str = "") -> str:
    """The version id to read when a delete marker hides ``key``; "" when the key is simply
    absent (no versions, or its newest entry is a real version)."""
    try:
        entries = tier.versions(key)
    except TierUnavailable:
        raise
    except StorageError as exc:  # no versioning API on this endpoint: nothing can be hidden
        log.debug("%s: cannot list versions on %s: %s", key, tier.name, exc)
        return ""
    if not entries:
        return ""
    latest = [e for e in entries if e.get("IsLatest")] or [max(entries, key=_when)]
    real = [e for e in entries if not is_marker(e) and e.get("VersionId")]
    if not real or not is_marker(latest[0]):
        return ""
    ids = {str(e["VersionId"]) for e in real}
    chosen = recorded if recorded in ids else str(max(real, key=_when)["VersionId"])
    log.warning("%s on tier %s (bucket %s) is hidden by a delete marker (a lifecycle transition on a "
                "versioned bucket leaves one); reading version %s%s", key, tier.name, tier.bucket, chosen,
                "" if chosen == recorded else " (the newest; none was recorded)" if not recorded
                else f" (the recorded {recorded} is gone)")
    return chosen
