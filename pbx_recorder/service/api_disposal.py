"""Manual deletion requests over HTTP (:mod:`pbx_recorder.lifecycle.deletion_requests`):

    POST /api/deletions                      {"reason", "call_ids": [...]}: ask (``calls.delete``;
                                             every call in the requester's row scope, else 404)
    GET  /api/deletions                      the requests, newest first (``calls.delete`` or
                                             ``calls.delete_approve``)
    GET  /api/deletions/{deletion_id}        one request with its destruction records
    POST /api/deletions/{deletion_id}/approve   ``calls.delete_approve``, never the requester: approves,
                                             then destroys every copy of the fixed recordings
    POST /api/deletions/{deletion_id}/refuse    {"reason"?}: refuses
    POST /api/deletions/{deletion_id}/execute   runs an approved request again (after a crash or a
                                             failed tier): idempotent by recording

The requester is compared by name, whatever verbs a role holds.  Every request, decision and
denial is audited, and so is every read: the list (``deletion.list``, one row per request, with
its ``state`` filter and the rows returned) and one request (``deletion.view``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pbx_recorder.errors import AccessDenied, NotFound, PolicyRefusal
from pbx_recorder.lifecycle import destruction
from pbx_recorder.lifecycle.deletion_requests import MAX_CALLS, MAX_REASON, DeletionRequests
from pbx_recorder.service import list_audit, provisioning
from pbx_recorder.service.api_disposal_support import call_in_scope, checkpoint, runtime_of, text, with_body
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require, require_person
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.roles import may
from pbx_recorder.service.typed_reasons import deletion_shown, unmask_asked


def store(ctx: ServiceContext, actor: Actor, *, acting: bool = False) -> DeletionRequests:
    """The requests over the service's catalog; ``acting``: with the lifecycle's tiers and holds
    (the ``Runtime`` the CLI builds) to ask for or execute one."""
    if not acting:
        return DeletionRequests(ctx.catalog.connection())
    rt = runtime_of(ctx, actor)
    return DeletionRequests(rt.conn, rt.tiers, rt.holds())


def _ask(request: Request, actor: Actor, data: dict[str, Any]) -> Response:
    ctx = ctx_of(request)
    require(ctx, actor, "calls.delete", "", {"what": "deletion.request"})
    reason = text(data, "reason", MAX_REASON)
    ids = data.get("call_ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_CALLS \
            or not all(isinstance(i, str) and 0 < len(i) <= 128 for i in ids):
        raise ApiError(400, f'takes {{"reason", "call_ids": [1-{MAX_CALLS} call ids]}}')
    for call_id in ids:
        call_in_scope(ctx, actor, call_id, "deletion.request")
    try:
        req = store(ctx, actor, acting=True).ask(requester=actor.user.name, reason=reason, call_ids=ids,
                                                 now=ctx.clock())
    except PolicyRefusal as exc:
        raise ApiError(409, str(exc)) from exc
    audit(ctx, actor.user.name, actor.user.role, "deletion.request", req["id"],
          {"client": actor.client, "calls": req["scope"]["call_ids"][:50],
           "recordings": len(req["recordings"]), "reason": reason[:200]})
    return JSONResponse(req, status_code=201)


def _may_see(ctx: ServiceContext, actor: Actor, target: str) -> None:
    if may(actor.user.role, "calls.delete_approve"):
        return
    require(ctx, actor, "calls.delete", target, {"what": "deletion.read"})


def listed(ctx: ServiceContext, actor: Actor, state: str | None = None,
           page: str = "", unmask: bool = False) -> list[dict[str, Any]]:
    """The deletion requests (of ``state`` when given), newest first, and the read's one
    ``deletion.list`` audit row: each request names its calls, its requester and their reason
    (numbers masked but for their author, or ``unmask``: ``service.typed_reasons``)."""
    rows = [deletion_shown(r, actor.user.name, unmask) for r in store(ctx, actor).listing(state=state)]
    shown: dict[str, Any] = {"state": state} if state else {}
    if page:
        shown["page"] = page
    if unmask:
        shown["unmask"] = True
    list_audit.listed(ctx, actor, list_audit.DELETIONS, "", len(rows), shown)
    return rows


def listing(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    _may_see(ctx, actor, "")
    state = request.query_params.get("state") or None
    if state not in (None, "requested", "refused", "executed", "failed"):
        raise ApiError(400, "state: requested, refused, executed or failed")
    unmask = unmask_asked(request, actor.user.role)
    return JSONResponse({"requests": listed(ctx, actor, state, unmask=unmask)})


def _found(ctx: ServiceContext, actor: Actor, raw: str) -> tuple[DeletionRequests, dict[str, Any]]:
    requests = store(ctx, actor)
    try:
        return requests, requests.get(raw[:64])
    except NotFound as exc:
        raise ApiError(404, "no such deletion request") from exc


def show(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    raw = request.path_params["deletion_id"]
    _may_see(ctx, actor, raw[:64])
    _, req = _found(ctx, actor, raw)
    unmask = unmask_asked(request, actor.user.role)
    req = deletion_shown(req, actor.user.name, unmask)
    req["destroyed"] = destruction.of_request(ctx.catalog.connection(), req["id"])
    detail: dict[str, Any] = {"client": actor.client,
                              "calls": len((req.get("scope") or {}).get("call_ids") or [])}
    if unmask:
        detail["unmask"] = True
    audit(ctx, actor.user.name, actor.user.role, "deletion.view", req["id"], detail)
    return JSONResponse(req)


def _decision(action: str) -> Any:
    def handler(request: Request, actor: Actor, data: dict[str, Any]) -> Response:
        ctx = ctx_of(request)
        raw = request.path_params["deletion_id"]
        require(ctx, actor, "calls.delete_approve", raw[:64], {"what": f"deletion.{action}"})
        require_person(ctx, actor, "calls.delete_approve", raw[:64])
        _, req = _found(ctx, actor, raw)
        try:  # by name: whatever verbs the role holds; nor an account either of them holds
            provisioning.require_independent(ctx.catalog.connection(), req["requested_by"], actor.user.name,
                                             "a deletion request")
        except AccessDenied as exc:
            own = req["requested_by"] == actor.user.name
            audit(ctx, actor.user.name, actor.user.role, f"denied:deletion.{action}", req["id"],
                  {"client": actor.client, "reason": "own_request" if own else "account_holder"})
            raise ApiError(403, str(exc)) from exc
        note = text(data, "reason", MAX_REASON, required=False)
        requests = store(ctx, actor, acting=action != "refuse")
        try:
            if action == "execute":
                if not req["pending_execution"]:
                    raise PolicyRefusal(f"deletion request {req['id']} is not approved and pending")
            else:
                req = requests.decide(req["id"], approver=actor.user.name, approve=action == "approve",
                                      now=ctx.clock(), note=note)
                audit(ctx, actor.user.name, actor.user.role, f"deletion.{action}", req["id"],
                      {"client": actor.client, "requester": req["requested_by"], "reason": note[:200]})
            if action != "refuse":
                req = requests.execute(req["id"], now=ctx.clock())
                result = req["result"]
                audit(ctx, actor.user.name, actor.user.role, "deletion.execute", req["id"],
                      {"client": actor.client, "state": req["state"], "deleted": len(result["deleted"]),
                       "withheld": [w["recording_id"] for w in result["withheld"]][:50],
                       "failed": len(result["failed"])})
                checkpoint(ctx)
        except (AccessDenied, PolicyRefusal) as exc:
            audit(ctx, actor.user.name, actor.user.role, f"denied:deletion.{action}", req["id"],
                  {"client": actor.client, "reason": str(exc)[:200]})
            raise ApiError(409, str(exc)) from exc
        return JSONResponse(deletion_shown(req, actor.user.name, False))

    handler.__name__ = f"deletion_{action}"
    return with_body(handler)


def routes(sync: Any) -> list[Route]:
    return [Route("/api/deletions", with_body(_ask), methods=["POST"]),
            Route("/api/deletions", sync(listing), methods=["GET"]),
            Route("/api/deletions/{deletion_id}", sync(show), methods=["GET"]),
            *[Route(f"/api/deletions/{{deletion_id}}/{a}", _decision(a), methods=["POST"])
              for a in ("approve", "refuse", "execute")]]
