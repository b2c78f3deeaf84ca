"""Marks on a call: a label and a note at a position of one of its recordings, shared with whoever
may see the call.

    GET    /api/calls/{call_id}/marks   calls.view; the call's marks, oldest position first
    POST   /api/calls/{call_id}/marks   calls.mark; JSON {recording_id, position_s, label, note}
    DELETE /api/marks/{mark_id}         calls.mark; the author, or an admin

A call (or a mark's call) outside the actor's row scope answers 404 exactly like an absent one.
Every list (``marks.list``, one row per request; ``"unmask": true`` when asked), add, delete and
refusal is audited (the audit keeps the label's length, not its text: a note may quote the
caller).  Text is stored as typed but for a payment card number (redacted for good) and returned
with its numbers masked like free text, unless its author reads it or a reader holding
``calls.unmask`` asks ``?unmask=1``; pages show it as text (autoescaped templates,
``textContent`` in the player's script).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pbx_recorder.catalog import marks
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import list_audit
from pbx_recorder.service import peaks as peak_store
from pbx_recorder.service.auth import ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.json_body import parse_object, read_capped
from pbx_recorder.service.scoped_endpoint import scoped_call
from pbx_recorder.service.typed_reasons import unmask_asked

MAX_BODY = 8192


def list_marks(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    call_id = request.path_params["call_id"]
    scoped_call(ctx, actor, call_id, "calls.view", "marks")
    unmask = unmask_asked(request, actor.user.role)
    rows = marks.shown(marks.for_call(ctx.catalog.connection(), call_id), actor.user.name, unmask)
    list_audit.listed(ctx, actor, list_audit.MARKS, call_id, len(rows), {"unmask": True} if unmask else None)
    return JSONResponse({"call_id": call_id, "marks": rows})


async def add_mark(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    body = await read_capped(request, MAX_BODY)  # (413 past it, before it is all read)
    return await run_in_threadpool(_add_mark, request, body)


def _body(request: Request, raw: bytes) -> dict[str, Any]:
    return parse_object(request.headers.get("content-type", ""), raw, MAX_BODY)


def _add_mark(request: Request, raw: bytes) -> Response:
    ctx = ctx_of(request)
    try:
        actor = actor_of(request)
        call_id = request.path_params["call_id"]
        scoped_call(ctx, actor, call_id, "calls.mark", "marks")
        data = _body(request, raw)
        rid = data.get("recording_id") or ""
        rec = ctx.catalog.get_recording(str(rid)) if isinstance(rid, str) and rid else None
        if rec is None or rec["call_id"] != call_id:
            raise ApiError(400, "recording_id: a recording of this call")
        mark = marks.NewMark(call_id, rid, data.get("position_s"), data.get("label"),  # type: ignore[arg-type]
                             data.get("note", ""), actor.user.name)
        duration = float(rec["duration_s"]) if rec.get("duration_s") else None
        if duration is None:  # a row without its duration: the waveform's, once computed
            duration = (peak_store.cached(ctx, rid) or {}).get("duration")
        try:
            marks.validate(mark, duration)
        except marks.MarkRefused as exc:
            raise ApiError(400, str(exc)) from exc
        conn = ctx.catalog.connection()
        with Tx(conn):
            try:
                mark_id = marks.add(conn, mark, ctx.clock())
            except marks.MarkRefused as exc:
                raise ApiError(409, str(exc)) from exc
            audit(ctx, actor.user.name, actor.user.role, "marks.add", call_id,
                  {"client": actor.client, "mark_id": mark_id, "recording_id": rid,
                   "position_s": float(mark.position_s), "label_chars": len(mark.label),
                   "note_chars": len(mark.note)})
        return JSONResponse(marks.get(conn, mark_id), status_code=201)
    finally:
        ctx.release()


def delete_mark(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    raw = request.path_params["mark_id"]
    target = f"mark:{raw[:40]}"
    require(ctx, actor, "calls.mark", target, {"client": actor.client})
    conn = ctx.catalog.connection()
    mark = marks.get(conn, int(raw)) if raw.isdigit() and len(raw) < 19 else None
    if mark is None or ctx.catalog.get_call(str(mark["call_id"]), scope=actor.scope) is None:
        audit(ctx, actor.user.name, actor.user.role, "denied:calls.mark" if mark else "calls.mark.absent",
              target, {"client": actor.client, "reason": "out_of_scope" if mark else "absent"})
        raise ApiError(404, "no such mark")
    if mark["author"] != actor.user.name and actor.user.role != "admin":
        audit(ctx, actor.user.name, actor.user.role, "denied:marks.delete", target,
              {"client": actor.client, "call_id": mark["call_id"], "author": mark["author"]})
        raise ApiError(403, "only the mark's author or an admin deletes it")
    with Tx(conn):
        marks.delete(conn, int(mark["id"]))
        audit(ctx, actor.user.name, actor.user.role, "marks.delete", mark["call_id"],
              {"client": actor.client, "mark_id": mark["id"], "author": mark["author"]})
    return JSONResponse({"deleted": mark["id"]})
