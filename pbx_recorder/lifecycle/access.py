"""Reading a recording back: download (decrypting the envelope when encrypted) and restores.

A cold object that is not restored gives ``ObjectNotRestored`` with what to do next,
never a half-written output file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pbx_recorder.errors import IntegrityError, NotFound, ObjectNotRestored
from pbx_recorder.lifecycle.journal import Tx, rows
from storage import atomic
from storage.base import Tier
from storage.hashing import digests_equal


def recording(conn: sqlite3.Connection, recording_id: str) -> dict[str, Any]:
    found = rows(conn, "SELECT * FROM recordings WHERE recording_id=?", (recording_id,))
    if not found:
        raise NotFound(f"no recording {recording_id}")
    return found[0]


def download(
    rec: Mapping[str, Any], tiers: Mapping[str, Tier], out: str | Path, *, keyring: Any = None
) -> str:
    """Write the recording's audio to ``out`` (atomically); return the sha256 of what was written."""
    tier = tiers.get(rec["tier"])
    if tier is None or rec["state"] not in ("stored", "verified", "migrated"):
        raise NotFound(
            f"recording {rec['recording_id']} is not stored (state {rec['state']}, tier {rec['tier']!r})"
        )
    out = Path(out)
    try:
        src = tier.open(rec["storage_key"])
    except ObjectNotRestored as exc:
        raise ObjectNotRestored(
            f"recording {rec['recording_id']} is in archive class {rec['storage_class'] or '?'} on tier "
            f"{tier.name} and not restored; run `pbx-recorder recordings restore {rec['recording_id']}` "
            "and retry when it reports done",
            call_id=rec["call_id"],
        ) from exc
    with src:
        if rec.get("encrypted"):
            from storage.envelope import decrypt_stream

            if keyring is None:
                raise IntegrityError("recording is encrypted and no key ring is configured")
            digest, _ = decrypt_stream(
                src,
                out,
                keyring,
                wrapped_key=rec.get("wrapped_key") or None,
                key_id=rec.get("key_id") or None,
            )
            want = rec.get("audio_sha256") or ""
        else:
            digest, _ = atomic.write_stream(out, atomic.read_chunks(src))
            want = rec.get("sha256") or ""
    if want and not digests_equal(digest, want):
        os.unlink(out)
        raise IntegrityError(f"downloaded recording {rec['recording_id']} does not match its catalog hash")
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
