"""Four-eyes replay over HTTP (:mod:`pbx_recorder.service.four_eyes`; on when ``web.four_eyes``
names tags or rules).

    POST /api/calls/{call_id}/replay-requests   {"reason"}: ask (a role that may play the call)
    GET  /api/replay-requests                   pending requests (approvers: all; others: their own)
    POST /api/replay-requests/{id}/grant        an approver other than the requester
    POST /api/replay-requests/{id}/refuse

The audio endpoint calls :func:`check` after the row scope: a sensitive call without a live grant
of the actor answers 403 (audited ``denied:calls.play`` / ``denied:calls.download`` with reason
``four_eyes``).  Every request, grant and refusal is audited, and so is every read of the
pending list (``replay.list``, one row per request: :mod:`pbx_recorder.service.list_audit`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pbx_recorder.errors import AccessDenied, NotFound
from pbx_recorder.service import four_eyes, list_audit
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require, require_person
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.json_body import read_json
from pbx_recorder.service.roles import may
from pbx_recorder.service.typed_reasons import reason_shown, unmask_asked

log = logging.getLogger(__name__)


def sensitive(ctx: ServiceContext, call: dict[str, Any],
              known: Mapping[str, frozenset[str] | None] | None = None) -> bool:
    """The call's current tags, the tags its recording rule set when it was recorded (sealed, not
    editable by operators; :func:`set_by_rule`) and its rule.  ``known``: its manifests' tags from a
    batch of :func:`four_eyes.manifest_tags_of` (an export checks many calls)."""
    rules = ctx.web.four_eyes
    if not rules.enabled:
        return False  # (no query)
    if four_eyes.is_sensitive(call, rules.tags, rules.rules, set_by_rule(ctx, call, known)):
        return True
    return bool(seal_problem(ctx, call))


def seal_problem(ctx: ServiceContext, call: Mapping[str, Any]) -> str:
    """What is wrong with the seal of the call's stored row ('' when nothing, or no key to check
    it with).  Its rule, its recorded rule tags and its numbers are what decide four-eyes replay:
    an insider who edits them in the catalog (no signing key) breaks the seal, and such a call
    needs a grant, as if sensitive (fail closed), until ``verify`` has been answered."""
    if ctx.seal_key is None:
        return ""
    from pbx_recorder.recording.call_seal import call_seal_problem

    call_id = str(call.get("call_id") or "")
    numbers = getattr(ctx.catalog, "numbers", None)
    why = call_seal_problem(ctx.catalog.connection(), call_id, ctx.seal_key, numbers)
    if why:
        log.error("ALERT call=%s: %s; four-eyes replay asks for a grant (see `pbx-recorder verify`)",
                  call_id, why)
    return why


def set_by_rule(ctx: ServiceContext, call: Mapping[str, Any],
                known: Mapping[str, frozenset[str] | None] | None = None) -> frozenset[str]:
    """:func:`four_eyes.call_set_by_rule` against the service's catalog (a row from before schema
    20: one query for its recordings' manifest copies, unless ``known`` holds them) and rules."""
    return four_eyes.call_set_by_rule(ctx.catalog.connection(), getattr(ctx.catalog, "numbers", None), call,
                                      getattr(ctx.config, "rules", None) or (), known)


def recording_binding(ctx: ServiceContext, rec: Mapping[str, Any]) -> str:
    """'' when the recording row is the call's it names; else what says it was moved to another
    call (``verify_bindings.call_binding_problem``), with an ALERT: such a row is served to nobody
    (the call it names would decide the row scope and four-eyes replay) until ``verify`` is answered."""
    from pbx_recorder.recording.verify_bindings import call_binding_problem

    why = call_binding_problem(ctx.catalog.connection(), rec)
    if why:
        log.error("ALERT recording %s (row names call=%s): %s; not served (see `pbx-recorder verify`)",
                  rec.get("recording_id"), rec.get("call_id"), why)
    return why


def bound_recordings(ctx: ServiceContext, recs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``recs`` (a call's recordings, as a page lists them) without those whose row was moved to
    this call from another (:func:`recording_binding`, with its ALERT): not listed under it."""
    return [r for r in recs if not recording_binding(ctx, r)]


def check_recording(ctx: ServiceContext, actor: Actor, rec: Mapping[str, Any], verb: str, target: str,
                    detail: dict[str, Any]) -> None:
    """409 (audited ``denied:<verb>``, reason ``binding``) for a row moved to another call."""
    why = recording_binding(ctx, rec)
    if why:
        audit(ctx, actor.user.name, actor.user.role, f"denied:{verb}", target,
              {**detail, "reason": "binding", "call_id": rec.get("call_id")})
        raise ApiError(409, "this recording's catalog row does not match its ledger or manifest: "
                            "see `pbx-recorder verify`")


def manifest_tags(ctx: ServiceContext,
                  calls: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str] | None]:
    """The manifests' tags of those ``calls`` that record no rule tags, in one query per 500 calls
    (none when four-eyes is off): the ``known`` of :func:`sensitive` for a batch."""
    if not ctx.web.four_eyes.enabled:
        return {}
    wanted = [str(c["call_id"]) for c in calls if four_eyes.needs_manifests(c)]
    if not wanted:
        return {}
    return four_eyes.manifest_tags_of(ctx.catalog.connection(), wanted, getattr(ctx.catalog, "numbers", None))


def check(ctx: ServiceContext, actor: Actor, call: dict[str, Any], verb: str, target: str,
          detail: dict[str, Any]) -> None:
    """403 (audited) when ``call`` needs a grant and ``actor`` holds no live one for it."""
    if not sensitive(ctx, call):
        return
    grant = four_eyes.open_grant(ctx.catalog.connection(), str(call["call_id"]), actor.user.name, ctx.clock(),
                                 ctx.access_seal)
    if grant is not None:
        detail["grant"] = grant.id
        return
    audit(ctx, actor.user.name, actor.user.role, f"denied:{verb}", target,
          {**detail, "reason": "four_eyes", "call_id": call["call_id"]})
    raise ApiError(403, "this call needs a replay grant (POST /api/calls/{id}/replay-requests)")


async def ask(request: Request) -> Response:
    data = await read_json(request)
    from starlette.concurrency import run_in_threadpool

    def run() -> Response:
        try:
            return _ask(request, data)
        finally:
            ctx_of(request).release()

    return await run_in_threadpool(run)


def _ask(request: Request, data: dict[str, Any]) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    call_id = request.path_params["call_id"]
    require(ctx, actor, "calls.play", call_id, {"client": actor.client})
    call = ctx.catalog.get_call(call_id, scope=actor.scope)
    if call is None:
        audit(ctx, actor.user.name, actor.user.role, "denied:replay.request", call_id,
              {"client": actor.client, "reason": "out_of_scope_or_absent"})
        raise ApiError(404, "no such call")
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > four_eyes.MAX_REASON:
        raise ApiError(400, f'takes {{"reason": ...}} (1-{four_eyes.MAX_REASON} characters)')
    if not sensitive(ctx, call):
        raise ApiError(409, "this call needs no replay grant")
    grant_id = four_eyes.ask(ctx.catalog.connection(), call_id, actor.user.name, reason.strip(), ctx.clock(),
                             ctx.access_seal)
    audit(ctx, actor.user.name, actor.user.role, "replay.request", call_id,
          {"client": actor.client, "request": grant_id, "reason": reason.strip()[:200]})
    return JSONResponse({"id": grant_id, "state": "requested"}, status_code=201)


def pending_for(ctx: ServiceContext, actor: Actor, page: str = "",
                unmask: bool = False) -> tuple[list[four_eyes.Grant], bool]:
    """The pending requests ``actor`` may read (an approver: every one; anyone else: their own) and
    whether they are an approver; writes the read's one ``replay.list`` row (``page``: the console
    page that shows them).  A request names a call, its requester and their free-text reason
    (numbers masked but for its requester, or ``unmask``: ``service.typed_reasons``)."""
    approver = may(actor.user.role, four_eyes.APPROVE)
    rows = [dataclasses.replace(g, reason=reason_shown(g.reason, g.requester, actor.user.name, unmask))
            for g in four_eyes.pending(ctx.catalog.connection(), None if approver else actor.user.name,
                                       seal=ctx.access_seal)]
    shown: dict[str, Any] = {} if approver else {"requester": actor.user.name}
    if page:
        shown["page"] = page
    if unmask:
        shown["unmask"] = True
    list_audit.listed(ctx, actor, list_audit.REPLAY, "", len(rows), shown)
    return rows, approver


def listing(request: Request) -> Response:
    actor = actor_of(request)
    rows, _ = pending_for(ctx_of(request), actor, unmask=unmask_asked(request, actor.user.role))
    return JSONResponse({"requests": [{"id": g.id, "call_id": g.call_id, "requester": g.requester,
                                       "reason": g.reason, "requested_at": g.requested_at} for g in rows]})


def _decide(grant: bool) -> Any:
    action = "replay.grant" if grant else "replay.refuse"

    def endpoint(request: Request) -> Response:
        ctx = ctx_of(request)
        actor = actor_of(request)
        raw = request.path_params["grant_id"]
        require(ctx, actor, "calls.replay_approve", raw[:32], {"client": actor.client})
        require_person(ctx, actor, "calls.replay_approve", raw[:32])
        if not raw.isdigit():
            raise ApiError(404, "no such replay request")
        try:
            decided = four_eyes.decide(ctx.catalog.connection(), int(raw), actor.user.name, grant,
                                       ctx.clock(), ctx.web.four_eyes.grant_minutes, ctx.access_seal)
        except NotFound as exc:
            raise ApiError(404, "no such replay request") from exc
        except AccessDenied as exc:
            audit(ctx, actor.user.name, actor.user.role, f"denied:{action}", raw,
                  {"client": actor.client, "reason": str(exc)})
            raise ApiError(403, str(exc)) from exc
        audit(ctx, actor.user.name, actor.user.role, action, decided.call_id,
              {"client": actor.client, "request": decided.id, "requester": decided.requester,
               "expires_at": decided.expires_at})
        return JSONResponse({"id": decided.id, "state": decided.state, "expires_at": decided.expires_at})

    return endpoint


def routes(sync: Any) -> list[Route]:
    return [Route("/api/calls/{call_id}/replay-requests", ask, methods=["POST"]),
            Route("/api/replay-requests", sync(listing), methods=["GET"]),
            Route("/api/replay-requests/{grant_id}/grant", sync(_decide(True)), methods=["POST"]),
            Route("/api/replay-requests/{grant_id}/refuse", sync(_decide(False)), methods=["POST"])]
