"""The work of one export job, bound to the service (catalog, tiers, key ring, audit) and to the
actor who asked; run by :func:`pbx_recorder.exports.runner.launch` in its own thread.

Each builder checks what can be checked while the request is still open (the audio export's calls,
through the actor's row scope) and returns ``work(handle)``: the thread's body, writing into the
job's ``.part`` file (already created 0600) and publishing it as ``<id>.zip`` when complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from pbx_recorder.audit_trail import BATCH_ROWS as record_many_batch
from pbx_recorder.audit_trail import record_many
from pbx_recorder.catalog import engine
from pbx_recorder.catalog.queries import CallFilters
from pbx_recorder.exports import audio_job, jobs, store, table_job
from pbx_recorder.service import request_tag
from pbx_recorder.service.auth import Actor, ApiError, audit
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.roles import may

KEEP_S = jobs.KEEP_S
Work = Callable[[BinaryIO], None]


def _seal(ctx: ServiceContext, job_id: str, handle: BinaryIO, part: Path) -> tuple[str, int]:
    """The finished file synced, published as ``<id>.zip``; its (sha256, size)."""
    from pbx_recorder.service.api_exports import file_sha256

    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    sha, size = file_sha256(part)
    store.publish(part, part.with_suffix(".zip"))
    return sha, size


def table(ctx: ServiceContext, actor: Actor, job_id: str, part: Path, password: str, filters: CallFilters,
          fields: tuple[str, ...], unmask: bool, kind: str) -> Work:
    spec = table_job.TableSpec(filters=filters, scope=actor.scope, tz=ctx.tz, now=ctx.clock(), fields=fields,
                               unmask=unmask, kind=kind)
    user, role, client = actor.user.name, actor.user.role, actor.client

    def work(handle: BinaryIO) -> None:
        conn = ctx.catalog.connection()
        total, within = table_job.count(ctx.catalog, spec)
        if not within:
            raise audio_job.ExportFailed(f"more than {table_job.MAX_ROWS} rows: narrow the filter")
        jobs.start(conn, job_id, total)
        # the calls whose rows go into the file, one id a line in a 0600 file beside it (memory
        # stays one page whatever the row count): their calls.export.item rows once it is sealed
        ids_path = part.with_suffix(".ids")
        with store.create(ids_path) as ids:
            try:
                def seen(call_id: str) -> None:
                    ids.write(call_id.encode("utf-8") + b"\n")

                n = table_job.export(ctx.catalog, spec, handle, password, part,
                                     lambda done: jobs.progress(conn, job_id, done), f"calls.{kind}", seen)
                ids.seek(0)  # (before the file can be downloaded: a stop after it leaves no row out)
                item = request_tag.tagged({"client": client, "job": job_id, "kind": kind,
                                           "unmasked": unmask})
                _audit_items(ctx, user, role, ((line.rstrip(b"\n").decode("utf-8"), item) for line in ids))
                sha, size = _seal(ctx, job_id, handle, part)
                jobs.finish(conn, job_id, done=n, size=size, sha256=sha, file_name=f"{job_id}.zip",
                            now=ctx.clock(), keep_s=KEEP_S)
                audit(ctx, user, role, "calls.export.done", job_id,
                      {"kind": kind, "rows": n, "bytes": size, "sha256": sha, "unmasked": unmask})
            finally:
                store.remove(ids_path)

    return work


def _audit_items(ctx: ServiceContext, user: str, role: str,
                 items: Iterator[tuple[str, dict[str, Any]]]) -> None:
    """One ``calls.export.item`` row per (call id, detail): a call whose data is in the export,
    under its id (the call page's "who viewed, played, downloaded or exported" list and an audit
    search by call find it); written before the file is published (a stop after it leaves no
    row out), chained in batches (audit_trail.record_many)."""
    conn = ctx.catalog.connection()

    def bounded(n: int) -> None:  # (the job's memory stays bounded: its connection's page cache too)
        if n % (20 * record_many_batch) == 0:
            engine.release_memory(conn)

    record_many(conn, ((c, d) for c, d in items if c),  # (a call is one row of a list's result)
                actor=user, role=role, action="calls.export.item", now=ctx.clock(), after_batch=bounded)


def _calls(ctx: ServiceContext, actor: Actor, filters: CallFilters, call_ids: Any) -> list[dict[str, Any]]:
    """The calls to export, from the actor's scope only (the query layer's): the ids asked for
    (one outside the scope is refused like an absent one) or the filter's first MAX_CALLS."""
    if call_ids is not None:
        if (not isinstance(call_ids, list) or not call_ids or len(call_ids) > audio_job.MAX_CALLS
                or not all(isinstance(c, str) and 0 < len(c) <= 128 for c in call_ids)):
            raise ApiError(400, f"call_ids: 1 to {audio_job.MAX_CALLS} call ids")
        found = []
        for call_id in dict.fromkeys(call_ids):
            call = ctx.catalog.get_call(call_id, scope=actor.scope)
            if call is None:
                audit(ctx, actor.user.name, actor.user.role, "denied:calls.export", call_id,
                      {"client": actor.client, "reason": "out_of_scope_or_absent"})
                raise ApiError(404, "no such call")
            found.append(call)
        return found
    page = ctx.catalog.search_page(replace(filters, limit=audio_job.MAX_CALLS, after=None), tz=ctx.tz,
                                   count=False, scope=actor.scope)
    if page.next_cursor:
        raise ApiError(400, f"more than {audio_job.MAX_CALLS} calls: narrow the filter or pick calls")
    return page.rows


def _four_eyes(ctx: ServiceContext, actor: Actor, job_id: str, calls: list[dict[str, Any]]) -> set[str]:
    """Calls whose audio needs a replay grant the actor does not hold (four-eyes): left out of the
    archive, listed as pending, each refusal audited as the audio endpoint audits it.  The manifests'
    tags of calls from before schema 20 are read for all the calls at once (``api_replay.manifest_tags``)."""
    from pbx_recorder.service import api_replay, four_eyes

    held: set[str] = set()
    known = api_replay.manifest_tags(ctx, calls)
    for call in calls:
        call_id = str(call["call_id"])
        if not api_replay.sensitive(ctx, call, known):
            continue
        if four_eyes.open_grant(ctx.catalog.connection(), call_id, actor.user.name, ctx.clock(),
                                  ctx.access_seal) is None:
            held.add(call_id)
            audit(ctx, actor.user.name, actor.user.role, "denied:calls.download", call_id,
                  {"client": actor.client, "reason": "four_eyes", "job": job_id})
    return held


def audio(ctx: ServiceContext, actor: Actor, job_id: str, part: Path, password: str, filters: CallFilters,
          call_ids: Any) -> Work:
    from pbx_recorder.service import api_replay

    calls = _calls(ctx, actor, filters, call_ids)
    user, role, client = actor.user.name, actor.user.role, actor.client
    held_back = _four_eyes(ctx, actor, job_id, calls)

    def restore(rec: Mapping[str, Any]) -> str:
        from pbx_recorder.lifecycle import access
        from pbx_recorder.service.api_player import RESTORE_DAYS

        state = access.restore(ctx.catalog.connection(), rec, ctx.tiers, RESTORE_DAYS)
        audit(ctx, user, role, "calls.restore", str(rec["recording_id"]),
              {"client": client, "call_id": rec["call_id"], "state": state, "days": RESTORE_DAYS,
               "via": "export", "job": job_id})
        return state

    who = audio_job.Who(user, role, may(role, "calls.restore"), restore)

    def work(handle: BinaryIO) -> None:
        conn = ctx.catalog.connection()
        pairs = [(call, rec) for call in calls
                 for rec in ctx.catalog.recordings_for_call(str(call["call_id"]))]
        moved = {str(r["recording_id"]) for _, r in pairs if api_replay.recording_binding(ctx, r)}
        free = [p for p in pairs
                if p[0]["call_id"] not in held_back and str(p[1]["recording_id"]) not in moved]
        ready, pending = audio_job.plan(free, ctx.tiers, who)
        for c, r in pairs:  # (one held back for four-eyes is listed once, below)
            if str(r["recording_id"]) in moved and c["call_id"] not in held_back:
                pending.append({"call_id": str(c["call_id"]), "recording_id": str(r["recording_id"]),
                                "reason": "its catalog row does not match its ledger or manifest "
                                          "(see verify)"})
                audit(ctx, user, role, "denied:calls.download", str(r["recording_id"]),
                      {"client": client, "reason": "binding", "call_id": c["call_id"], "job": job_id})
        pending += [{"call_id": str(c["call_id"]), "recording_id": str(r["recording_id"]),
                     "reason": "needs a replay grant (four-eyes)"}
                    for c, r in pairs if c["call_id"] in held_back]
        jobs.start(conn, job_id, sum(size for _, _, size in ready))
        jobs.set_pending(conn, job_id, pending)
        step = {"last": 0}

        def progress(done: int) -> None:
            if done - step["last"] >= 1 << 20:
                step["last"] = done
                jobs.progress(conn, job_id, done, done)

        def outside(call_ids: list[str]) -> list[str]:  # (a transfer's linked calls: the call page's rule)
            if actor.scope.kind == "all":
                return []
            return [c for c in call_ids if ctx.catalog.get_call(c, scope=actor.scope) is None]

        done, files = audio_job.export(ready, pending, ctx.tiers, ctx.keyring, handle, password, progress,
                                       {"created_by": user, "job": job_id}, outside)
        by_call: dict[str, list[str]] = {}  # each call with its recordings in the archive
        for f in files:
            by_call.setdefault(str(f["call_id"]), []).append(str(f["recording_id"]))
        _audit_items(ctx, user, role, ((call_id, request_tag.tagged({"client": client, "job": job_id,
                                                                     "recordings": recordings}))
                                       for call_id, recordings in by_call.items()))
        sha, size = _seal(ctx, job_id, handle, part)
        jobs.finish(conn, job_id, done=done, size=size, sha256=sha, file_name=f"{job_id}.zip",
                    now=ctx.clock(), keep_s=KEEP_S)
        audit(ctx, user, role, "calls.export.done", job_id,
              {"kind": "audio", "rows": len(files), "bytes": size, "sha256": sha,
               "recordings": [f["recording_id"] for f in files],
               "pending": [p["recording_id"] for p in pending],
               "signature_withheld": [f["recording_id"] for f in files if "signature_withheld" in f]})

    return work
