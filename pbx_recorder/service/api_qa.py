"""QA assignments by hand (the sampling rule assigns the rest: ``pbx-recorder review sample``).

    GET    /api/qa/assignments                          qa.read; a reviewer their own, a lead the
                                                        assignments of their team's calls, admin all
    POST   /api/calls/{call_id}/qa-assignments          qa.assign; JSON {reviewer}
    DELETE /api/calls/{call_id}/qa-assignments/{reviewer}  qa.assign

A lead assigns only calls of their own row scope (another team's call answers 404 like an
absent one), and only to an active account whose role is ``qa``; admin any call.  An agent holds
``qa.read`` for their reviews but never sees which of their calls are sampled (403).  Every
list, assignment, removal and refusal is audited (``qa.assignments.list``, one row per request;
``qa.assign`` like the sampling's, ``qa.unassign``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import list_audit, qa_store
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.scoped_endpoint import body_of, scoped_call, sealed_in_scope, with_body

MAX_BODY = 4096
#: roles that see assignments (an agent must not learn which of their calls are sampled)
ASSIGNMENT_READERS = ("admin", "supervisor", "qa")


def visible_assignments(ctx: ServiceContext, actor: Actor) -> list[dict[str, Any]]:
    """The assignments ``actor`` may list (403, audited, for a role outside :data:`ASSIGNMENT_READERS`)."""
    require(ctx, actor, "qa.read", "/api/qa/assignments", {"client": actor.client})
    if actor.user.role not in ASSIGNMENT_READERS:
        audit(
            ctx,
            actor.user.name,
            actor.user.role,
            "denied:qa.assignments",
            "/api/qa/assignments",
            {"client": actor.client},
        )
        raise ApiError(403, f"role {actor.user.role} does not see QA assignments")
    reviewer = actor.user.name if actor.user.role == "qa" else None
    rows = qa_store.assignments(ctx.catalog.connection(), actor.scope, reviewer=reviewer,
                                seal=ctx.access_seal)
    return sealed_in_scope(ctx, actor, rows)


def list_assignments(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    rows = visible_assignments(ctx, actor)
    shown = {"reviewer": actor.user.name} if actor.user.role == "qa" else {}
    list_audit.listed(ctx, actor, list_audit.ASSIGNMENTS, "", len(rows), shown)
    return JSONResponse({"assignments": rows})


def _reviewer_ok(ctx: ServiceContext, name: Any) -> bool:
    if not isinstance(name, str) or not name or len(name) > 64:
        return False
    user = ctx.accounts().get(name)
    return user is not None and user.role == "qa" and not user.disabled


def _assign(request: Request, raw: bytes) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    call_id = request.path_params["call_id"]
    scoped_call(ctx, actor, call_id, "qa.assign", "qa.assign")
    reviewer = body_of(request, raw, MAX_BODY).get("reviewer")
    if not _reviewer_ok(ctx, reviewer):
        audit(
            ctx,
            actor.user.name,
            actor.user.role,
            "denied:qa.assign",
            call_id,
            {"client": actor.client, "reason": "not_a_qa_account", "reviewer": str(reviewer)[:64]},
        )
        raise ApiError(400, "reviewer: an active account whose role is qa")
    conn = ctx.catalog.connection()
    with Tx(conn):
        new = qa_store.assign(conn, call_id, str(reviewer), actor.user.name, ctx.clock(), ctx.access_seal)
        if new:
            audit(
                ctx,
                actor.user.name,
                actor.user.role,
                "qa.assign",
                call_id,
                {"client": actor.client, "reviewer": reviewer, "assigned_by": actor.user.name},
            )
    return JSONResponse(
        {"call_id": call_id, "reviewer": reviewer, "new": new}, status_code=201 if new else 200
    )


def unassign(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    call_id, reviewer = request.path_params["call_id"], request.path_params["reviewer"][:64]
    scoped_call(ctx, actor, call_id, "qa.assign", "qa.unassign")
    conn = ctx.catalog.connection()
    with Tx(conn):
        found = qa_store.unassign(conn, call_id, reviewer, ctx.access_seal)
        if found:
            audit(
                ctx,
                actor.user.name,
                actor.user.role,
                "qa.unassign",
                call_id,
                {"client": actor.client, "reviewer": reviewer},
            )
    if not found:
        raise ApiError(404, "no such assignment")
    return JSONResponse({"call_id": call_id, "reviewer": reviewer, "removed": True})


def routes(sync: Any) -> list[BaseRoute]:
    """``sync``: app._releasing (gives the worker thread's catalog connection back)."""
    return [
        Route("/api/qa/assignments", sync(list_assignments), methods=["GET"]),
        Route("/api/calls/{call_id}/qa-assignments", with_body(_assign), methods=["POST"]),
        Route("/api/calls/{call_id}/qa-assignments/{reviewer}", sync(unassign), methods=["DELETE"]),
    ]
