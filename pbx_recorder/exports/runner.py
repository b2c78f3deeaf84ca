"""Running export jobs in threads of the service, and what the service does with them at start.

A job runs in a daemon thread that owns its own catalog connection (given back at its end).  A
job that raises is marked ``failed`` and its partial file removed.  A process that dies mid-job
leaves a ``<id>.part`` file in this service's export folder and a ``running`` row: at the next
start (:func:`on_start`) such rows become ``failed`` ("the service stopped") and the files go.
Only jobs whose partial file lies in *this* folder are touched, so a second service node sharing
a PostgreSQL catalog (with its own folder) keeps its running jobs.  Expired files are removed at
start and on every request to the export API (:func:`sweep`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pbx_recorder.exports import jobs, store

log = logging.getLogger(__name__)

LIVE: dict[str, threading.Thread] = {}  # job id -> its thread (tests join them)
_LOCK = threading.Lock()


def folder_of(ctx: Any) -> Path | None:
    folder = getattr(ctx.web, "export_dir", None)
    return Path(folder) if folder is not None else None


def launch(ctx: Any, job_id: str, part: Path, work: Callable[[], None]) -> threading.Thread:
    """Run ``work`` in a thread; any exception fails the job (its message, never a secret)."""

    def run() -> None:
        try:
            work()
        except Exception as exc:  # contain: one job fails, the service goes on
            log.error("export %s failed: %s", job_id, type(exc).__name__ if not str(exc) else exc)
            try:
                jobs.fail(ctx.catalog.connection(), job_id, _reason(exc), ctx.clock())
            except Exception as inner:  # the catalog itself is gone: the start-up pass fails it
                log.error("export %s: cannot mark it failed: %s", job_id, inner)
            store.remove(part)
        finally:
            ctx.release()
            with _LOCK:
                LIVE.pop(job_id, None)

    thread = threading.Thread(target=run, name=f"export-{job_id[:8]}", daemon=True)
    with _LOCK:
        LIVE[job_id] = thread
    thread.start()
    return thread


def _reason(exc: Exception) -> str:
    from pbx_recorder.errors import RecorderError

    return str(exc)[:300] if isinstance(exc, RecorderError) else f"internal error ({type(exc).__name__})"


def wait(job_id: str, timeout: float) -> None:
    with _LOCK:
        thread = LIVE.get(job_id)
    if thread is not None:
        thread.join(timeout)


def sweep(ctx: Any) -> int:
    """Remove the files of jobs past ``expires_at`` (state ``expired``); how many."""
    folder = folder_of(ctx)
    if folder is None:
        return 0
    conn = ctx.catalog.connection()
    gone = 0
    for job in jobs.due(conn, ctx.clock()):
        try:
            store.remove(store.path_of(folder, job.id, "zip"))
        except ValueError:
            pass  # an id this service never makes: nothing of ours to remove
        jobs.expire(conn, job.id)
        gone += 1
    return gone


def on_start(ctx: Any) -> None:
    """The export folder checked (ConfigError naming ``web.export_dir``), the jobs of a dead
    process failed, expired files removed."""
    folder = folder_of(ctx)
    if folder is None:
        return
    store.prepare(folder)
    conn = ctx.catalog.connection()
    try:
        for job in jobs.active(conn):
            try:
                part = store.path_of(folder, job.id, "part")
            except ValueError:
                continue
            if part.exists() and job.id not in LIVE:
                jobs.fail(conn, job.id, "the service stopped while the export ran", ctx.clock())
                store.remove(part)
                log.warning("export %s: left running by a stopped service, now failed", job.id)
        for leftover in folder.iterdir():  # an XLSX work file, xlsxwriter's temp files of a dead job
            if leftover.suffix not in (".zip", ".part") and leftover.is_file() and not LIVE:
                store.remove(leftover)
        sweep(ctx)
    finally:
        ctx.release()
