"""The ``export_jobs`` rows (schema 9): one per export, owned by the user who asked.

States: ``queued`` (row written, thread not yet started) -> ``running`` -> ``done`` | ``failed``;
``done`` -> ``expired`` once its file is removed at ``expires_at``.  An erasure withdraws every
export there is when it ends (:func:`withdraw_all`: ``failed``, "withdrawn"; the service's sweep
removes the files, and a job still running cannot become ``done``: :func:`finish` is a
compare-and-set on ``running``).  ``rows_total`` is counted
first, ``rows_done`` advances every few thousand rows (for audio both count bytes, so the page's
progress bar moves with the data).  A job is only ever read by its owner: :func:`get` takes the
user and answers None for anyone else's job, exactly as for an absent one.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pbx_recorder.errors import RecorderError
from pbx_recorder.lifecycle.journal import Tx

KINDS = ("csv", "xlsx", "audio")
ACTIVE = ("queued", "running")
WITHDRAWN = "withdrawn: data in it was erased after it was made (run the export again)"
KEEP_S = 24 * 3600  #: an export's file is kept this long (README: at most 24 hours), then removed
_COLUMNS = ("id, user_name, kind, filter, fields, state, rows_total, rows_done, bytes, file_name, sha256, "
            "pending, error, created_at, finished_at, expires_at")


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    user_name: str
    kind: str
    filter: dict[str, Any]
    fields: list[str]
    state: str
    rows_total: int
    rows_done: int
    bytes: int
    file_name: str
    sha256: str
    pending: list[Any]
    error: str
    created_at: float
    finished_at: float | None
    expires_at: float | None

    def public(self) -> dict[str, Any]:
        """What the owner's page shows (the file's place on disk stays inside)."""
        share = (min(1.0, self.rows_done / self.rows_total) if self.rows_total
                 else 1.0 if self.state == "done" else 0.0)
        return {"id": self.id, "kind": self.kind, "filter": self.filter, "fields": self.fields,
                "state": self.state, "rows_total": self.rows_total, "rows_done": self.rows_done,
                "progress": round(share, 4), "bytes": self.bytes, "sha256": self.sha256,
                "pending": self.pending, "error": self.error, "created_at": self.created_at,
                "finished_at": self.finished_at, "expires_at": self.expires_at}


def _job(row: Sequence[Any]) -> Job:
    values = list(row)
    for i in (3, 4, 11):
        try:
            values[i] = json.loads(values[i] or "null")
        except ValueError:
            values[i] = None
    values[3] = values[3] if isinstance(values[3], dict) else {}
    values[4] = values[4] if isinstance(values[4], list) else []
    values[11] = values[11] if isinstance(values[11], list) else []
    return Job(*values)


def new_id() -> str:
    return secrets.token_hex(16)


def create(conn: sqlite3.Connection, job_id: str, user: str, kind: str, filter_: Mapping[str, Any],
           fields: Sequence[str], file_name: str, now: float) -> None:
    with Tx(conn):
        conn.execute("INSERT INTO export_jobs (id, user_name, kind, filter, fields, state, file_name, "
                     "created_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
                     (job_id, user, kind, json.dumps(dict(filter_), sort_keys=True), json.dumps(list(fields)),
                      file_name, now))


def start(conn: sqlite3.Connection, job_id: str, total: int) -> None:
    with Tx(conn):
        conn.execute("UPDATE export_jobs SET state = 'running', rows_total = ? "
                     "WHERE id = ? AND state = 'queued'",
                     (total, job_id))


def progress(conn: sqlite3.Connection, job_id: str, done: int, size: int = 0) -> None:
    with Tx(conn):
        conn.execute("UPDATE export_jobs SET rows_done = ?, bytes = ? WHERE id = ?", (done, size, job_id))


def set_pending(conn: sqlite3.Connection, job_id: str, pending: Sequence[Any]) -> None:
    with Tx(conn):
        conn.execute("UPDATE export_jobs SET pending = ? WHERE id = ?", (json.dumps(list(pending)), job_id))


class Withdrawn(RecorderError):
    """The job was withdrawn while it ran (an erasure): its file must not be kept."""


def finish(conn: sqlite3.Connection, job_id: str, *, done: int, size: int, sha256: str, file_name: str,
           now: float, keep_s: float) -> None:
    """``running`` -> ``done``; :class:`Withdrawn` when the job is no longer running (withdrawn by
    an erasure meanwhile: the runner then removes the published file)."""
    with Tx(conn):
        finished = conn.execute(
            "UPDATE export_jobs SET state = 'done', rows_done = ?, bytes = ?, sha256 = ?, file_name = ?, "
            "finished_at = ?, expires_at = ? WHERE id = ? AND state = 'running'",
            (done, size, sha256, file_name, now, now + keep_s, job_id)).rowcount
    if finished != 1:
        raise Withdrawn(WITHDRAWN)


def withdraw_all(conn: sqlite3.Connection, now: float) -> list[str]:
    """Every export that is queued, running or done becomes ``failed`` (withdrawn): an erasure's
    data may be in it.  Its file goes at the service's next sweep (on every node, each in its own
    folder); its download is refused from now on; a running one cannot become ``done``.  The ids
    withdrawn."""
    with Tx(conn):
        ids = [str(r[0]) for r in conn.execute(
            "SELECT id FROM export_jobs WHERE state IN ('queued', 'running', 'done')").fetchall()]
        for at in range(0, len(ids), 500):
            chunk = ids[at:at + 500]
            conn.execute("UPDATE export_jobs SET state = 'failed', error = ?, finished_at = ? "
                         f"WHERE id IN ({','.join('?' * len(chunk))}) "
                         "AND state IN ('queued', 'running', 'done')", (WITHDRAWN, now, *chunk))
    return ids


#: why an export holding a recording a retention run or a two-person deletion destroyed is gone
DISPOSED = "withdrawn: a recording in it was deleted after it was made (retention or a deletion request)"


def withdraw_holding(conn: sqlite3.Connection, holding: Mapping[str, Collection[str]], now: float,
                     *, since: float | None = None) -> list[str]:
    """The audio exports whose archive holds a recording of ``holding`` (call id -> recording
    ids destroyed; their ``calls.export.item`` audit rows name what left in which export, and
    only exports made within :data:`KEEP_S` can still be there) become ``failed`` (withdrawn,
    :data:`DISPOSED`).  With ``since`` (when the run began destroying) also every audio export
    still queued or running (its archive may be reading one now; it names nothing yet) and every
    one that finished since (its rows may not be written yet).  CSV and XLSX exports hold the
    call rows, which stay.  The ids withdrawn."""
    found: set[str] = set()
    for call_id, recording_ids in holding.items():
        wanted = set(recording_ids)
        recent = (call_id, "calls.export.item", now - KEEP_S - 3600)
        for (detail,) in conn.execute("SELECT detail FROM audit_log WHERE target = ? AND action = ? "
                                      "AND at >= ?", recent).fetchall():
            try:
                item = json.loads(detail) if isinstance(detail, str) else detail
            except ValueError:
                continue
            if isinstance(item, dict) and wanted & {str(r) for r in item.get("recordings") or []}:
                found.add(str(item.get("job", "")))
    if since is not None:
        found |= {str(r[0]) for r in conn.execute(
            "SELECT id FROM export_jobs WHERE kind = 'audio' AND (state IN ('queued', 'running') "
            "OR (state = 'done' AND finished_at >= ?))", (since,)).fetchall()}
    found.discard("")
    withdrawn: list[str] = []
    if found:
        with Tx(conn):
            withdrawn = [job for job in sorted(found) if conn.execute(
                "UPDATE export_jobs SET state = 'failed', error = ?, finished_at = ? "
                "WHERE id = ? AND state IN ('queued', 'running', 'done')", (DISPOSED, now, job)).rowcount]
    return withdrawn


def fail(conn: sqlite3.Connection, job_id: str, error: str, now: float) -> None:
    with Tx(conn):
        conn.execute("UPDATE export_jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ?",
                     (error[:500], now, job_id))


def get(conn: sqlite3.Connection, job_id: str, user: str) -> Job | None:
    """The job when ``user`` owns it; None for an absent job and for anyone else's alike."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM export_jobs WHERE id = ? AND user_name = ?",
                       (job_id, user)).fetchone()
    return _job(row) if row else None


def owner_of(conn: sqlite3.Connection, job_id: str) -> str | None:
    """Who owns ``job_id`` (for the audit row of a refused request only)."""
    row = conn.execute("SELECT user_name FROM export_jobs WHERE id = ?", (job_id,)).fetchone()
    return str(row[0]) if row else None


def listed(conn: sqlite3.Connection, user: str, limit: int = 50) -> list[Job]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM export_jobs WHERE user_name = ? "
                        "ORDER BY created_at DESC, id LIMIT ?", (user, limit)).fetchall()
    return [_job(r) for r in rows]


def active_count(conn: sqlite3.Connection, user: str | None = None) -> int:
    sql = "SELECT COUNT(*) FROM export_jobs WHERE state IN ('queued', 'running')"
    row = conn.execute(sql + (" AND user_name = ?" if user else ""), (user,) if user else ()).fetchone()
    return int(row[0])


def active(conn: sqlite3.Connection) -> list[Job]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM export_jobs WHERE state IN ('queued', 'running')").fetchall()
    return [_job(r) for r in rows]


def due(conn: sqlite3.Connection, now: float) -> list[Job]:
    """Finished jobs past ``expires_at`` (to be marked ``expired``; the sweep removes the files of
    these, of failed jobs and of absent ones: :func:`pbx_recorder.exports.runner.sweep`)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM export_jobs WHERE state = 'done' AND expires_at <= ?",
                        (now,)).fetchall()
    return [_job(r) for r in rows]


def expire(conn: sqlite3.Connection, job_id: str) -> None:
    with Tx(conn):
        conn.execute("UPDATE export_jobs SET state = 'expired' WHERE id = ? AND state = 'done'", (job_id,))


def states(conn: sqlite3.Connection, job_ids: Sequence[str]) -> dict[str, tuple[str, float | None]]:
    """(state, expires_at) of each of ``job_ids`` that has a row (the sweep's view of the files in
    the export folder; an id without a row is absent from the answer)."""
    out: dict[str, tuple[str, float | None]] = {}
    ids = list(job_ids)
    for at in range(0, len(ids), 500):
        chunk = ids[at:at + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in conn.execute(f"SELECT id, state, expires_at FROM export_jobs WHERE id IN ({marks})",
                                chunk).fetchall():
            out[str(row[0])] = (str(row[1]), None if row[2] is None else float(row[2]))
    return out
