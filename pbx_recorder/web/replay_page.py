"""Four-eyes replay in the console (:mod:`pbx_recorder.service.api_replay` holds the rule and the
API): the player of a call that needs a grant shows a request form instead of the audio, and
``/replay-requests`` lists the pending requests (every one, with grant / refuse buttons, for a
role holding ``calls.replay_approve``; a user's own otherwise).  The buttons post through
``static/replay.js`` with the page's CSRF token; the API decides (never the requester, audited).
Reading the list is audited like the API's (``replay.list`` with ``page``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.service import api_replay, four_eyes, typed_reasons
from pbx_recorder.service.auth import Actor, actor_of, ctx_of
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.roles import may
from pbx_recorder.web import render


def grant_state(ctx: ServiceContext, actor: Actor, call: dict[str, object]) -> str:
    """'' (no grant needed, or a live one held), 'asked' (a request is pending) or 'needed'."""
    if not api_replay.sensitive(ctx, dict(call)):
        return ""
    conn, call_id = ctx.catalog.connection(), str(call["call_id"])
    if four_eyes.open_grant(conn, call_id, actor.user.name, ctx.clock(), ctx.access_seal) is not None:
        return ""
    mine = four_eyes.pending(conn, actor.user.name, seal=ctx.access_seal)
    return "asked" if any(g.call_id == call_id for g in mine) else "needed"


def requests_page(request: Request) -> Response:
    actor = actor_of(request)
    unmask = typed_reasons.unmask_asked(request, actor.user.role)
    rows, approver = api_replay.pending_for(ctx_of(request), actor, "/replay-requests", unmask)  # audited
    return render.page(request, "replay_requests.html", actor, requests=rows, approver=approver,
                       may_unmask=may(actor.user.role, "calls.unmask"), unmasked=unmask)


def routes(sync: Any) -> list[BaseRoute]:
    """``sync``: app._releasing (gives the worker thread's catalog connection back)."""
    return [Route("/replay-requests", sync(requests_page), methods=["GET"])]
