"""Exports over HTTP (:mod:`pbx_recorder.exports`): ``calls.export`` (admin all calls, a lead their
team's through the row scope, legal); the auditor and agents get 403 (audited).

    POST /api/exports?<search filter>   {"kind": csv|xlsx|audio, "fields": [...], "password": ...,
                                         "unmasked": bool, "call_ids": [...] (audio, optional)}
    GET  /api/exports                   the user's own jobs (audited ``exports.list``);
                                        ``?progress=1``: states and counts only (the page's
                                        poll; no audit row: :func:`progress_view`)
    GET  /api/exports/{job_id}          one of them (anyone else's: 404 like an absent one)
    GET  /api/exports/{job_id}/file     the encrypted ZIP, to its owner only, until it expires

The filter is the search page's query string, read by the same function as ``GET /api/calls``
(:func:`pbx_recorder.service.api_calls.filters_of`), and the rows come from the same query layer
with the actor's row scope: there is no second scope check here to drift from the first.  Numbers
are masked as on the search page unless the role holds ``calls.unmask`` and ``unmasked`` is
ticked (audited as an unmask too).  The password is used by the job's thread and dropped: it is
never stored, logged nor audited.  Every export is audited with its filter (numbers masked),
fields, kind, then its row count and the file's sha256 when done, and again at download.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from pbx_recorder.exports import columns, jobs, runner, store, stored_filter
from pbx_recorder.exports.jobs import KINDS
from pbx_recorder.service import api_calls, export_work, list_audit, scoped_endpoint
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.json_body import parse_object
from pbx_recorder.service.roles import may

MIN_PASSWORD = 12
MAX_PASSWORD = 256
MAX_ACTIVE_PER_USER = 2
MAX_ACTIVE = 6


def filter_doc(request: Request) -> dict[str, str]:
    """The filter as kept on the job and in the audit: every value masked (never a number at rest:
    the row outlives an erasure; :func:`pbx_recorder.exports.stored_filter.masked`).  This copy is
    only shown; the job runs on the filter parsed from the request
    (:func:`pbx_recorder.service.api_calls.filters_of`), held in memory by its thread."""
    return stored_filter.masked(request.query_params)


def _checked(ctx: ServiceContext, actor: Actor, target: str) -> None:
    require(ctx, actor, "calls.export", target, {"client": actor.client})
    if runner.folder_of(ctx) is None:
        raise ApiError(409, "exports are off: web.export_dir is not set")
    runner.sweep(ctx)


def _password(data: dict[str, Any]) -> str:
    password = data.get("password")
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ApiError(400, f"password: {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _create(request: Request, body: bytes) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    _checked(ctx, actor, "/api/exports")
    data = parse_object(request.headers.get("content-type", ""), body)
    kind = data.get("kind")
    if kind not in KINDS:
        raise ApiError(400, f"kind: one of {', '.join(KINDS)}")
    password = _password(data)
    unmask = data.get("unmasked") is True
    if unmask:
        require(ctx, actor, "calls.unmask", "/api/exports", {"client": actor.client, "what": "export"})
    if kind == "audio":
        require(ctx, actor, "calls.download", "/api/exports", {"client": actor.client, "what": "export"})
        fields: tuple[str, ...] = ()
    else:
        try:
            fields = columns.parse_fields(data.get("fields"))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
    filters = replace(api_calls.filters_of(request, ctx), after=None)
    # number searches audited and throttled exactly as on the search page
    api_calls._number_search(ctx, actor, filters, may(actor.user.role, "calls.unmask"))
    conn = ctx.catalog.connection()
    if (jobs.active_count(conn, actor.user.name) >= MAX_ACTIVE_PER_USER
            or jobs.active_count(conn) >= MAX_ACTIVE):
        raise ApiError(429, "too many exports running: wait for one to finish", headers={"Retry-After": "30"})
    doc = filter_doc(request)
    job_id = jobs.new_id()
    folder = runner.folder_of(ctx)
    assert folder is not None
    part = store.path_of(folder, job_id, "part")
    if kind == "audio":
        work = export_work.audio(ctx, actor, job_id, part, password, filters, data.get("call_ids"))
        if isinstance(data.get("call_ids"), list):
            doc = {**doc, "call_ids": str(len(data["call_ids"]))}
    else:
        work = export_work.table(ctx, actor, job_id, part, password, filters, fields, unmask, str(kind))
    store.create(part).close()  # 0600, O_EXCL: the job's thread writes into it
    try:
        jobs.create(conn, job_id, actor.user.name, str(kind), doc, fields, f"{job_id}.zip", ctx.clock())
    except BaseException:
        store.remove(part)
        raise
    detail = {"client": actor.client, "job": job_id, "kind": kind, "filter": doc, "fields": list(fields),
              "unmasked": unmask}
    audit(ctx, actor.user.name, actor.user.role, "calls.export", job_id, detail)
    if unmask:
        audit(ctx, actor.user.name, actor.user.role, "calls.export.unmask", job_id, {"client": actor.client})
    runner.launch(ctx, job_id, part, functools.partial(_run, part, work))
    return JSONResponse({"id": job_id, "state": "queued"}, status_code=202)


def _run(part: Path, work: export_work.Work) -> None:
    with open(part, "r+b") as handle:  # created 0600 by the request; closed whatever happens
        work(handle)


def _own(ctx: ServiceContext, actor: Actor, job_id: str, verb: str) -> jobs.Job:
    job = jobs.get(ctx.catalog.connection(), job_id[:64], actor.user.name)
    if job is None:
        owner = jobs.owner_of(ctx.catalog.connection(), job_id[:64])
        action = "denied:calls.export" if owner else "calls.export.absent"
        audit(ctx, actor.user.name, actor.user.role, action,
              job_id[:64], {"client": actor.client, "what": verb,
                            "reason": "not_owner" if owner else "absent"})
        raise ApiError(404, "no such export")
    return job


#: what the export page's progress poll shows of a job: no filter, no field list, no call
PROGRESS_FIELDS = ("id", "kind", "state", "rows_total", "rows_done", "progress", "error", "created_at",
                   "finished_at", "expires_at")


def progress_view(job: jobs.Job) -> dict[str, Any]:
    """A job as the page's poll sees it (``?progress=1``): its state, counts and failure message,
    and how many recordings it waits for (not which): nothing of a call's data, so the poll, sent
    every second while a job runs, writes no audit row."""
    public = job.public()
    return {**{k: public[k] for k in PROGRESS_FIELDS}, "pending_count": len(job.pending)}


def own_jobs(ctx: ServiceContext, actor: Actor, page: str = "") -> list[jobs.Job]:
    """The actor's export jobs, newest first, and the read's one ``exports.list`` audit row (a job
    shows its masked filter and the calls an audio export still waits for)."""
    mine = jobs.listed(ctx.catalog.connection(), actor.user.name)
    list_audit.listed(ctx, actor, list_audit.EXPORTS, "", len(mine), {"page": page} if page else None)
    return mine


def listing(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    _checked(ctx, actor, "/api/exports")
    if request.query_params.get("progress") in ("1", "true"):  # the page's poll: not audited
        return JSONResponse({"jobs": [progress_view(j) for j in
                                      jobs.listed(ctx.catalog.connection(), actor.user.name)]})
    return JSONResponse({"jobs": [j.public() for j in own_jobs(ctx, actor)]})


def one(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    _checked(ctx, actor, "/api/exports")
    return JSONResponse(_own(ctx, actor, request.path_params["job_id"], "status").public())


def download(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    _checked(ctx, actor, "/api/exports")
    job = _own(ctx, actor, request.path_params["job_id"], "download")
    if job.state != "done":
        raise ApiError(409, f"the export is {job.state}")
    folder = runner.folder_of(ctx)
    assert folder is not None
    path = store.path_of(folder, job.id, "zip")
    if not path.exists():
        raise ApiError(404, "no such export")
    audit(ctx, actor.user.name, actor.user.role, "calls.export.download", job.id,
          {"client": actor.client, "kind": job.kind, "rows": job.rows_done if job.kind != "audio" else None,
           "sha256": job.sha256, "bytes": job.bytes})
    day = datetime.fromtimestamp(job.created_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    return FileResponse(path, media_type="application/zip", filename=f"pbxr-export-{job.kind}-{day}.zip",
                        headers={"Cache-Control": "no-store"})


def file_sha256(path: os.PathLike[str] | str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as src:
        while block := src.read(1 << 16):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def routes(sync: Any) -> list[Route]:
    return [Route("/api/exports", scoped_endpoint.with_body(_create), methods=["POST"]),
            Route("/api/exports", sync(listing), methods=["GET"]),
            Route("/api/exports/{job_id}", sync(one), methods=["GET"]),
            Route("/api/exports/{job_id}/file", sync(download), methods=["GET"])]
