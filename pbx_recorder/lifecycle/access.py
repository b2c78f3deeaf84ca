"""Reading a recording back: download (role-checked, audited, decrypted when encrypted) and restores.

A cold object that is not restored gives ``ObjectNotRestored`` with what to do next,
naming the class the object is in (from the tier, not the catalog's last word), never a
half-written output file.  Reads and restores use the object version recorded at store time
when there is one (a lifecycle transition on a versioned bucket can hide the current one).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pbx_recorder.audio_access import open_plaintext
from pbx_recorder.errors import NotFound, ObjectNotRestored, StorageError
from pbx_recorder.lifecycle.journal import Tx, rows
from pbx_recorder.recording.recording_objects import version_of
from storage.base import Tier


def recording(conn: sqlite3.Connection, recording_id: str) -> dict[str, Any]:
    found = rows(conn, "SELECT * FROM recordings WHERE recording_id=?", (recording_id,))
    if not found:
        raise NotFound(f"no recording {recording_id}")
    return found[0]


def download(
    conn: sqlite3.Connection,
    rec: Mapping[str, Any],
    tiers: Mapping[str, Tier],
    out: str | Path,
    *,
    actor: str,
    role: str,
    now: float,
    keyring: Any = None,
) -> str:
    """Write the recording's audio to ``out`` (atomically); return the sha256 of what was written.

    Goes through ``audio_access.open_plaintext``: the role is checked and the read (or its
    refusal) is written to the audit log before any byte is read.
    """
    tier = tiers.get(rec["tier"])
    if tier is None or rec["state"] not in ("stored", "verified", "migrated"):
        raise NotFound(
            f"recording {rec['recording_id']} is not stored (state {rec['state']}, tier {rec['tier']!r})"
        )
    pinned = _Pinned(tier, rec)
    try:
        digest, _ = open_plaintext(conn, rec, pinned, keyring, actor=actor, role=role, dst=out, now=now)
    except ObjectNotRestored as exc:
        raise ObjectNotRestored(
            f"recording {rec['recording_id']} is in archive class {_actual_class(pinned, rec)} on tier "
            f"{tier.name} and not restored; run `pbx-recorder recordings restore {rec['recording_id']}` "
            "and retry when it reports done",
            call_id=rec["call_id"],
        ) from exc
    return digest


class _Pinned:
    """The recording's tier, reading each of its objects at the version recorded at store time."""

    def __init__(self, tier: Tier, rec: Mapping[str, Any]) -> None:
        self._tier, self._rec, self.name = tier, rec, tier.name

    def _version(self, key: str) -> dict[str, str]:
        vid = version_of(self._rec, key)
        return {"version_id": vid} if vid else {}

    def open(self, key: str) -> Any:
        return self._tier.open(key, **self._version(key))  # type: ignore[call-arg]

    def stat(self, key: str) -> Any:
        return self._tier.stat(key, **self._version(key))  # type: ignore[call-arg]

    def restore_pinned(self, key: str, days: int) -> str:
        return str(self._tier.restore(key, days, **self._version(key)))  # type: ignore[call-arg]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tier, name)


def _actual_class(tier: Any, rec: Mapping[str, Any]) -> str:
    """The class the object is in now (HEAD); the catalog's only when the tier cannot say."""
    try:
        info = tier.stat(rec["storage_key"])
    except StorageError:
        info = None
    return (info.storage_class if info is not None and info.storage_class else "") or \
        f"{rec['storage_class'] or '?'} (per the catalog)"


def restore(
    conn: sqlite3.Connection, rec: Mapping[str, Any], tiers: Mapping[str, Tier], days: int = 7
) -> str:
    """Start or inspect a restore; the state ('' | in_progress | done) is kept in the catalog."""
    tier = tiers.get(rec["tier"])
    if tier is None:
        raise NotFound(f"recording {rec['recording_id']}: tier {rec['tier']!r} is not configured")
    state = _Pinned(tier, rec).restore_pinned(rec["storage_key"], days)
    with Tx(conn):
        conn.execute(
            "UPDATE recordings SET restore_state=? WHERE recording_id=?", (state, rec["recording_id"])
        )
    return state


def object_class(rec: Mapping[str, Any], tiers: Mapping[str, Tier]) -> str:
    """The storage class the recording's object is in now, as its tier reports it."""
    tier = tiers.get(rec["tier"])
    return _actual_class(_Pinned(tier, rec), rec) if tier is not None else "?"
