"""What the player needs besides the audio: waveform peaks and the restore of a cold recording.

    GET  /api/recordings/{recording_id}/peaks    calls.play; peaks computed once, then cached
    POST /api/recordings/{recording_id}/restore  calls.restore; starts (or checks) the restore

Both are scoped like the audio: the recording's call must lie in the actor's row scope, else
404 exactly as for an absent recording (the audit row tells the two apart).  Every answer and
every refusal is audited (``calls.play`` with ``what: peaks``; ``calls.restore``).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pbx_recorder.errors import NotFound, ObjectNotRestored, PolicyRefusal, RecorderError
from pbx_recorder.service import api_replay
from pbx_recorder.service import peaks as peak_store
from pbx_recorder.service.api_audio import READABLE_STATES
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext

log = logging.getLogger(__name__)

RESTORE_DAYS = 3


def scoped_recording(ctx: ServiceContext, actor: Actor, rid: str, verb: str,
                     detail: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(recording, call) when ``verb`` is held and the call is in scope; else 403 / 404, audited."""
    require(ctx, actor, verb, rid, detail)
    rec = ctx.catalog.get_recording(rid) if len(rid) <= 200 else None
    call = ctx.catalog.get_call(str(rec["call_id"]), scope=actor.scope) if rec else None
    if rec is None or call is None:
        reason = "absent" if rec is None else "out_of_scope"
        audit(ctx, actor.user.name, actor.user.role, f"denied:{verb}" if rec else f"{verb}.absent",
              rid[:200], {**detail, "reason": reason})
        raise ApiError(404, "no such recording")
    api_replay.check_recording(ctx, actor, rec, verb, rid, detail)  # the row is the call's it names
    return rec, call


def peaks(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    rid = request.path_params["recording_id"]
    detail = {"client": actor.client, "what": "peaks"}
    rec, call = scoped_recording(ctx, actor, rid, "calls.play", detail)
    api_replay.check(ctx, actor, call, "calls.play", rid, detail)  # four-eyes, as for the audio
    tier = ctx.tiers.get(str(rec["tier"]))
    if tier is None or rec["state"] not in READABLE_STATES:
        raise ApiError(409, f"recording is {rec['state']}: no waveform")
    audit(ctx, actor.user.name, actor.user.role, "calls.play", rid, {**detail, "call_id": rec["call_id"]})
    try:
        data = peak_store.peaks_of(ctx, rec, tier)
    except ObjectNotRestored as exc:
        raise ApiError(409, "recording is in cold storage: restore it first") from exc
    except RecorderError as exc:
        log.error("recording %s: no waveform: %s", rid, exc)
        raise ApiError(422, "no waveform for this recording") from exc
    return JSONResponse({**data, "recording_id": rid, "call_id": rec["call_id"],
                         "pauses": peak_store.pauses_of(rec),
                         "customer_channel": peak_store.customer_channel(call, data["channel_peaks"])})


def restore(request: Request) -> Response:
    from pbx_recorder.lifecycle import access

    ctx = ctx_of(request)
    actor = actor_of(request)
    rid = request.path_params["recording_id"]
    detail = {"client": actor.client}
    rec, _ = scoped_recording(ctx, actor, rid, "calls.restore", detail)
    try:
        state = access.restore(ctx.catalog.connection(), rec, ctx.tiers, RESTORE_DAYS)
    except (NotFound, PolicyRefusal) as exc:
        raise ApiError(409, str(exc)) from exc
    except RecorderError as exc:
        log.error("recording %s: restore failed: %s", rid, exc)
        raise ApiError(502, "the storage tier refused the restore") from exc
    audit(ctx, actor.user.name, actor.user.role, "calls.restore", rid,
          {**detail, "call_id": rec["call_id"], "state": state, "days": RESTORE_DAYS})
    return JSONResponse({"recording_id": rid, "restore_state": state or "not_needed"})
