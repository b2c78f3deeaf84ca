"""Running export jobs in threads of the service, and what the service does with them at start.

A job runs in a daemon thread that owns its own catalog connection (given back at its end).  A
job that raises is marked ``failed`` and its partial file removed.  A process that dies mid-job
leaves a ``<id>.part`` file in this service's export folder and a ``running`` row: at the next
start (:func:`on_start`) such rows become ``failed`` ("the service stopped") and the files go.
Only jobs whose partial file lies in *this* folder are touched, so a second service node sharing
a PostgreSQL catalog (with its own folder) keeps its running jobs.

An export is kept at most 24 hours whatever happened to its job: a job that fails after its file
was published (the ``done`` row or its audit row could not be written) removes ``<id>.zip`` too,
and at start, on every request to the export API and every ``SWEEP_EVERY_S`` while the service
runs (:func:`sweep_every`: a quiet service too) every file in the folder that no job still
needs goes: the file of an expired, failed or absent job, and any other file older
than the keeping time (a work file of a dead process).
"""

from __future__ import annotations

import contextvars
import logging
import os
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
            store.remove(part.with_suffix(".zip"))  # published before the failure: never kept
        finally:
            ctx.release()
            with _LOCK:
                LIVE.pop(job_id, None)

    # the request's context goes with the job: an export asked with an API token names the
    # token in every audit row its thread writes, as the request's own rows do (request_tag)
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), name=f"export-{job_id[:8]}", daemon=True)
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
    """Mark the jobs past ``expires_at`` ``expired`` and remove every file in the export folder that
    no job needs any more (:func:`_unneeded`); how many files went."""
    folder = folder_of(ctx)
    if folder is None:
        return 0
    conn = ctx.catalog.connection()
    now = ctx.clock()
    for job in jobs.due(conn, now):
        jobs.expire(conn, job.id)
    gone = 0
    with os.scandir(folder) as entries:
        files = [e for e in entries if e.is_file(follow_symlinks=False) or e.is_symlink()]
    stems = {e.name.split(".", 1)[0] for e in files}
    owned = jobs.states(conn, [s for s in stems if _is_job_id(s)])
    for entry in files:
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        if _unneeded(entry.name, owned, age, now):
            store.remove(folder / entry.name)
            gone += 1
            log.info("export folder: removed %s", entry.name)
    return gone


SWEEP_EVERY_S = 600.0  #: the running service's own sweep (an expired or withdrawn export's file)


async def sweep_every(ctx: Any, interval_s: float | None = None) -> None:
    """Run :func:`sweep` every ``interval_s`` (default :data:`SWEEP_EVERY_S`) in a worker thread
    until cancelled (the service's lifespan); a failing sweep is logged and tried again later."""
    import asyncio

    from starlette.concurrency import run_in_threadpool

    def once() -> None:
        try:
            sweep(ctx)
        finally:
            ctx.release()

    while True:
        await asyncio.sleep(SWEEP_EVERY_S if interval_s is None else interval_s)
        try:
            await run_in_threadpool(once)
        except Exception as exc:  # contain: the next round tries again
            log.error("export folder sweep failed: %s", exc)


def _unneeded(name: str, owned: dict[str, tuple[str, float | None]], age: float, now: float) -> bool:
    """Whether the file ``name`` (``age`` seconds old) may go: the file of a job that is failed,
    expired or past ``expires_at``; a job's file that no row owns, or any other file, once older
    than the keeping time (a job's row is written just after its file is created).  The files of a
    job that runs, or of a ``done`` one before it expires, stay."""
    stem, _, suffix = name.partition(".")
    if stem in LIVE:
        return False
    if stem in owned:
        state, expires_at = owned[stem]
        if state in jobs.ACTIVE:
            return False  # running (a dead process's part file is failed by on_start)
        if state == "done" and suffix == "zip":
            return expires_at is not None and expires_at <= now
        return True  # failed or expired, or a done job's stray work file
    # (a job's work files carry its id; xlsxwriter's temp files do not, so those wait for no job
    # to be running)
    return age > jobs.KEEP_S and (_is_job_id(stem) or not LIVE)


def _is_job_id(stem: str) -> bool:
    return len(stem) == 32 and all(c in "0123456789abcdef" for c in stem)


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
        sweep(ctx)  # the files of expired, failed and absent jobs
    finally:
        ctx.release()
