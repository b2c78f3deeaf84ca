"""What the disposal endpoints share: the lifecycle ``Runtime`` built from the service's own
context (the same jobs the CLI runs: one implementation), JSON-body endpoints run in a worker
thread, and the row-scope check of a call named in a request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pbx_recorder.lifecycle.runtime import Runtime
from pbx_recorder.service import scoped_endpoint
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.json_body import parse_object

Handler = Callable[[Request, Actor, dict[str, Any]], Response]


def runtime_of(ctx: ServiceContext, actor: Actor) -> Runtime:
    """The lifecycle jobs over the service's catalog connection and tiers, acting as ``actor``
    (503 when the service runs without the recorder's config, as some tests build it)."""
    if ctx.config is None:
        raise ApiError(503, "the service was started without the recorder's config: disposal is unavailable")
    return Runtime(ctx.config, ctx.catalog.connection(), ctx.tiers, actor.user.name, actor.user.role)


def checkpoint(ctx: ServiceContext) -> None:
    """After an action that extended the ledger: sign the chain heads as every lifecycle CLI
    command does at its end (``chain_head.checkpoint_if_possible``: skipped when this process
    cannot read the signing key; the daemon's next checkpoint then covers the rows)."""
    from pbx_recorder.recording.chain_head import checkpoint_if_possible

    if ctx.config is not None:
        checkpoint_if_possible(ctx.config, ctx.catalog.connection(), ctx.clock())


def with_body(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint taking a JSON object body (:func:`scoped_endpoint.with_body`: a worker thread
    that gives its catalog connection back); the session and the CSRF token are checked first."""

    def run(request: Request, raw: bytes) -> Response:
        actor = actor_of(request)  # the session and the CSRF token before the body is read
        return handler(request, actor, parse_object(request.headers.get("content-type", ""), raw))

    run.__name__ = handler.__name__
    return scoped_endpoint.with_body(run)


def call_in_scope(ctx: ServiceContext, actor: Actor, call_id: str, action: str) -> dict[str, Any]:
    """The call's row when the actor's row scope holds it; else 404 like an absent call, the
    audit row telling out-of-scope from absent."""
    row = ctx.catalog.get_call(call_id, scope=actor.scope)
    if row is None:
        reason = "absent" if ctx.catalog.get_call(call_id) is None else "out_of_scope"
        audit(ctx, actor.user.name, actor.user.role, f"denied:{action}", call_id,
              {"client": actor.client, "reason": reason})
        raise ApiError(404, "no such call")
    return row


def text(data: dict[str, Any], key: str, limit: int, *, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        raise ApiError(400, f"{key}: {'required, ' if required else ''}text of at most {limit} characters")
    return value.strip()


