"""Reading a recording back: download (role-checked, audited, decrypted when encrypted) and restores.

A cold object that is not restored gives ``ObjectNotRestored`` with what to do next,
never a half-written output file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pbx_recorder.audio_access import open_plaintext
from pbx_recorder.errors import NotFound, ObjectNotRestored
from pbx_recorder.lifecycle.journal import Tx, rows
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
    try:
        digest, _ = open_plaintext(conn, rec, tier, keyring, actor=actor, role=role, dst=out, now=now)
    except ObjectNotRestored as exc:
        raise ObjectNotRestored(
            f"recording {rec['recording_id']} is in archive class {rec['storage_class'] or '?'} on tier "
            f"{tier.name} and not restored; run `pbx-recorder recordings restore {rec['recording_id']}` "
            "and retry when it reports done",
            call_id=rec["call_id"],
        ) from exc
    return digest


def restore(
    conn: sqlite3.Connection, rec: Mapping[str, Any], tiers: Mapping[str, Tier], days: int = 7
) -> str:
    """Start or inspect a restore; the state ('' | in_progress | done) is kept in the catalog."""
    tier = tiers.get(rec["tier"])
    if tier is None:
        raise NotFound(f"recording {rec['recording_id']}: tier {rec['tier']!r} is not configured")
    state = tier.restore(rec["storage_key"], days)
    with Tx(conn):
        conn.execute(
            "UPDATE recordings SET restore_state=? WHERE recording_id=?", (state, rec["recording_id"])
        )
    return state
