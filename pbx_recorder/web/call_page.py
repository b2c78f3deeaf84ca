"""``GET /calls/{call_id}``: one call.

The row comes from :func:`pbx_recorder.service.api_calls.scoped_call` (404 page out of scope or
absent, both audited as the API does; ``?unmask=1`` only for a role holding ``calls.unmask``,
audited).  The same customer's other calls are a search by the caller's number through the query
layer (its blind index when numbers are encrypted), in the actor's scope, masked like the rest;
the page's one ``calls.view`` audit row names them (``others``).
Who viewed, played or downloaded the call is shown to roles holding ``audit.read`` (admin,
auditor): the log of who looked is itself audit data.  A hold's reason and creator are shown to
roles holding ``holds.read``; the others see only that the call is held.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pbx_recorder.catalog import marks as call_marks
from pbx_recorder.catalog.queries import CallFilters
from pbx_recorder.errors import CatalogError
from pbx_recorder.service import api_replay
from pbx_recorder.service.api_calls import (
    DETAIL_FIELDS,
    LIST_FIELDS,
    audit_call_view,
    linked_in_scope,
    scoped_call,
    shown,
)
from pbx_recorder.service.auth import Actor, actor_of, ctx_of
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.roles import may
from pbx_recorder.web import call_details, qa_pages
from pbx_recorder.web.render import page

OTHER_CALLS = 20


def other_calls(ctx: ServiceContext, actor: Actor, row: dict[str, Any], unmask: bool) -> list[dict[str, Any]]:
    """The same caller's other calls in the actor's scope, newest first (none for an extension)."""
    number = str(row.get("caller_num") or "")
    if sum(c.isdigit() for c in number) <= 4:
        return []
    try:
        found = ctx.catalog.search_page(CallFilters(caller=number, limit=OTHER_CALLS + 1), tz=ctx.tz,
                                        scope=actor.scope, count=False)
    except CatalogError:
        return []
    return [shown(r, unmask, LIST_FIELDS) for r in found.rows if r["call_id"] != row["call_id"]][:OTHER_CALLS]


def call(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    call_id = request.path_params["call_id"]
    row, unmask = scoped_call(request, ctx, actor, call_id, audit_view=False)
    others = other_calls(ctx, actor, row, unmask)
    audit_call_view(ctx, actor, call_id, unmask, [str(o["call_id"]) for o in others])  # one row
    data = shown(row, unmask, DETAIL_FIELDS)
    data["consent"] = linked_in_scope(ctx, actor, data.get("consent"))
    recordings = [call_details.recording_view(r)
                  for r in api_replay.bound_recordings(ctx, ctx.catalog.recordings_for_call(call_id))]
    ids = [str(r["recording_id"]) for r in recordings]
    consent = data.get("consent") if isinstance(data.get("consent"), dict) else {}
    held, holds = call_details.holds_shown(call_details.holds_of(ctx, call_id, ids),
                                           may(actor.user.role, "holds.read"))
    return page(request, "call.html", actor, call=data, consent=consent, recordings=recordings,
                timeline=call_details.timeline(data, recordings, call_details.ledger_of(ctx, ids)),
                held=held, holds=holds,
                marks=call_marks.shown(call_marks.for_call(ctx.catalog.connection(), call_id),
                                       actor.user.name, unmask),
                others=others,
                access=(call_details.access_of(ctx, call_id, ids) if may(actor.user.role, "audit.read")
                        else None),
                may_play=may(actor.user.role, "calls.play"), may_unmask=may(actor.user.role, "calls.unmask"),
                unmasked=unmask, legs=[str(u) for u in (row.get("uniqueids") or [])],
                qa=qa_pages.call_block(ctx, actor, data))
