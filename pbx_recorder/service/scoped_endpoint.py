"""Pieces the call endpoints share (marks, QA reviews and assignments, tags, disposal): a call read
through the actor's row scope (404 like an absent call, the refusal audited), and write endpoints
that take a body (read in the event loop, at most its route's limit, handled in a worker thread
that gives its catalog connection back)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pbx_recorder.service.auth import Actor, ApiError, audit, ctx_of, require
from pbx_recorder.service.body_limit import limit_for, route_path
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.json_body import parse_object, read_capped

MAX_ID = 200


def scoped_call(ctx: ServiceContext, actor: Actor, call_id: str, verb: str, what: str) -> dict[str, Any]:
    """The call when ``actor`` holds ``verb`` and the call lies in their row scope; else 403 (no
    verb) or 404 (absent or out of scope: the same answer), each audited."""
    detail = {"client": actor.client, "what": what}
    require(ctx, actor, verb, call_id[:MAX_ID], detail)
    call = ctx.catalog.get_call(call_id, scope=actor.scope) if len(call_id) <= MAX_ID else None
    if call is None:
        absent = len(call_id) > MAX_ID or ctx.catalog.get_call(call_id) is None
        audit(ctx, actor.user.name, actor.user.role, f"{verb}.absent" if absent else f"denied:{verb}",
              call_id[:MAX_ID], {**detail, "reason": "absent" if absent else "out_of_scope"})
        raise ApiError(404, "no such call")
    return call


def sealed_in_scope(ctx: ServiceContext, actor: Actor, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (each naming a ``call_id``) whose call lies in the actor's scope as its sealed row
    says, for a scope its calls' agent column decides (an agent's, a team's) while the service
    holds the signing key's public half: the QA lists select by the agent a row names (the call's
    ``agent``, a review's copy of it) in SQL, which an insider can rewrite without the key."""
    if ctx.seal_key is None or not actor.scope.reads_agent:
        return rows
    kept = {cid for cid in {str(r.get("call_id") or "") for r in rows}
            if ctx.catalog.get_call(cid, scope=actor.scope) is not None}
    return [r for r in rows if str(r.get("call_id") or "") in kept]


def body_of(request: Request, raw: bytes, limit: int) -> dict[str, Any]:
    return parse_object(request.headers.get("content-type", ""), raw, limit)


def int_param(request: Request, name: str) -> int | None:
    raw = request.path_params.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 18 else None


def with_body(handler: Callable[[Request, bytes], Response]) -> Callable[[Request], Awaitable[Response]]:
    """An async endpoint reading the body (413 past the route's limit,
    :func:`pbx_recorder.service.body_limit.limit_for`: the handler applies its own after the
    session check), then running ``handler(request, body)`` in a worker thread that releases its
    catalog connection."""

    async def endpoint(request: Request) -> Response:
        raw = await read_capped(request, limit_for(request.method, route_path(request.scope)))

        def run() -> Response:
            try:
                return handler(request, raw)
            finally:
                ctx_of(request).release()

        return await run_in_threadpool(run)

    endpoint.__name__ = handler.__name__
    return endpoint
