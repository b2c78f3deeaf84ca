"""Destruction records (table ``destruction_records``): one row per destroyed recording, kept
three years -- who asked, who approved, what (recording, call) and its SHA-256.

Written in the same transaction as the ``deletion_log`` row by every path that destroys a
recording: a manual deletion request (kind ``deletion``, :mod:`.deletion_requests`), an erasure
(``erasure``, :mod:`.erasure`) and a retention run (``retention``, :mod:`.retention_jobs`).
Idempotent by (request, recording): a retried request never writes a second row.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

KINDS = ("deletion", "erasure", "retention")
KEEP_YEARS = 3


def keep_until(destroyed_at: float, years: int = KEEP_YEARS) -> float:
    """``destroyed_at`` plus ``years`` calendar years (29 February becomes 28 February)."""
    moment = datetime.fromtimestamp(destroyed_at, UTC)
    try:
        later = moment.replace(year=moment.year + years)
    except ValueError:  # 29 February in a year that has none
        later = moment.replace(year=moment.year + years, day=28)
    return later.timestamp()


def record(conn: sqlite3.Connection, *, kind: str, request_id: str, requested_by: str, approved_by: str,
           recording_id: str, call_id: str, sha256: str, now: float) -> bool:
    """Insert the row unless this request already recorded this recording (call inside the
    caller's transaction); True when a row was written."""
    if kind not in KINDS:
        raise ValueError(f"destruction kind must be one of {', '.join(KINDS)}")
    seen = conn.execute("SELECT 1 FROM destruction_records WHERE request_id = ? AND recording_id = ?",
                        (request_id, recording_id)).fetchone()
    if seen:
        return False
    conn.execute(
        "INSERT INTO destruction_records (request_id, kind, requested_by, approved_by, recording_id, call_id,"
        " sha256, destroyed_at, keep_until) VALUES (?,?,?,?,?,?,?,?,?)",
        (request_id, kind, requested_by, approved_by, recording_id, call_id, sha256 or "", now,
         keep_until(now)))
    return True


def of_request(conn: sqlite3.Connection, request_id: str) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT id, request_id, kind, requested_by, approved_by, recording_id, call_id, sha256, destroyed_at,"
        " keep_until FROM destruction_records WHERE request_id = ? ORDER BY id", (request_id,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
