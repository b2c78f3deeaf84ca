"""Review finding: an export's file outlived the promised 24 hours when its job failed after the
file was published (the ``done`` row or the ``calls.export.done`` audit row could not be written):
the sweep only looked at ``done`` jobs and the start-up pass skipped ``.zip`` files.  Now the
runner removes its published file on failure, and the sweep (on every export request and at start)
removes the files of failed, expired and absent jobs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.exports import jobs, runner, store
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service import export_work

DAY = 24 * 3600


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[SimpleNamespace]:
    Catalog(tmp_path / "c.db").close()
    conn = open_catalog(tmp_path / "c.db")
    folder = store.prepare(tmp_path / "exports")
    clock = [os.stat(folder).st_mtime]  # the service's clock, in step with the files' times
    ctx = SimpleNamespace(web=SimpleNamespace(export_dir=folder), clock=lambda: clock[0],
                          release=lambda: None, catalog=SimpleNamespace(connection=lambda: conn))
    yield SimpleNamespace(conn=conn, folder=folder, clock=clock, ctx=ctx)
    conn.close()


def _job(env: Any, state: str = "queued") -> str:
    job_id = jobs.new_id()
    jobs.create(env.conn, job_id, "lead", "csv", {}, ["call_id"], f"{job_id}.zip", env.clock[0])
    if state == "done":
        jobs.start(env.conn, job_id, 1)
        jobs.finish(env.conn, job_id, done=1, size=3, sha256="0" * 64, file_name=f"{job_id}.zip",
                    now=env.clock[0], keep_s=export_work.KEEP_S)
    elif state == "failed":
        jobs.fail(env.conn, job_id, "boom", env.clock[0])
    return job_id


def _files(env: Any) -> list[str]:
    return sorted(p.name for p in env.folder.iterdir())


def test_a_job_failing_after_its_file_was_published_leaves_no_file(env: Any) -> None:
    job_id = jobs.new_id()
    part = store.path_of(env.folder, job_id, "part")
    store.create(part).close()
    jobs.create(env.conn, job_id, "lead", "csv", {}, ["call_id"], f"{job_id}.zip", env.clock[0])

    def work() -> None:  # the review's export_linger.py
        with open(part, "r+b") as h:
            h.write(b"PK...secret rows...")
            sha, size = export_work._seal(env.ctx, job_id, h, part)
            jobs.start(env.conn, job_id, 1)
            jobs.finish(env.conn, job_id, done=1, size=size, sha256=sha, file_name=f"{job_id}.zip",
                        now=env.clock[0], keep_s=export_work.KEEP_S)
            raise RuntimeError("database is locked")  # the calls.export.done audit write fails

    runner.launch(env.ctx, job_id, part, work).join()
    job = jobs.get(env.conn, job_id, "lead")
    assert job is not None and job.state == "failed"
    assert _files(env) == []
    env.clock[0] += 10 * 86400
    runner.sweep(env.ctx)
    runner.on_start(env.ctx)
    assert _files(env) == []


def test_the_sweep_removes_the_files_of_failed_expired_and_absent_jobs(env: Any) -> None:
    failed, done, running = _job(env, "failed"), _job(env, "done"), _job(env, "running")
    jobs.start(env.conn, running, 1)
    orphan = jobs.new_id()  # a file no job row owns (its row lost with a restored catalog ...)
    for name in (f"{failed}.zip", f"{done}.zip", f"{running}.part", f"{orphan}.zip", "tmpabc123"):
        store.create(env.folder / name).close()
    env.clock[0] += 60  # a minute later: the fresh orphans are still inside the keeping time
    assert runner.sweep(env.ctx) == 1
    assert _files(env) == sorted([f"{done}.zip", f"{running}.part", f"{orphan}.zip", "tmpabc123"])
    env.clock[0] += DAY + 1  # past the keeping time: the done job expires, the orphans go
    runner.sweep(env.ctx)
    assert _files(env) == [f"{running}.part"]  # only what a running job still writes
    job = jobs.get(env.conn, done, "lead")
    assert job is not None and job.state == "expired"


def test_the_start_up_pass_removes_a_failed_jobs_published_file(env: Any) -> None:
    failed = _job(env, "failed")
    store.create(env.folder / f"{failed}.zip").close()  # the process died before removing it
    runner.on_start(env.ctx)
    assert _files(env) == []
