"""QA scorecards (admin: ``qa.scorecards``).

    GET  /api/qa/scorecards                       qa.read; every scorecard (retired ones flagged)
    POST /api/qa/scorecards                       qa.scorecards; JSON {name, criteria: [{key, label,
                                                  kind yesno|scale, max, weight}]}
    POST /api/qa/scorecards/{scorecard_id}/retire qa.scorecards

A scorecard is never deleted nor changed once made (reviews refer to it and to its criteria):
retired, it is offered for no new review.  The criteria are checked strictly
(:mod:`pbx_recorder.service.qa_scoring`); a refusal names the field.  Audited.  With the
service's seal a scorecard is a sealed row (``qa_store``): one that fails its seal is not listed
and answers 409.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import qa_scoring, qa_store
from pbx_recorder.service.auth import ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.scoped_endpoint import body_of, int_param, with_body

MAX_BODY = 32 * 1024
MAX_CARDS = 500


def list_cards(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "qa.read", "/api/qa/scorecards", {"client": actor.client})
    return JSONResponse({"scorecards": qa_store.scorecards(ctx.catalog.connection(), seal=ctx.access_seal)})


def _create(request: Request, raw: bytes) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "qa.scorecards", "/api/qa/scorecards", {"client": actor.client})
    data = body_of(request, raw, MAX_BODY)
    unknown = sorted(set(data) - {"name", "criteria"})
    try:
        if unknown:
            raise qa_scoring.ScorecardRefused(f"{unknown[0][:40]}: unknown field")
        name = qa_scoring.check_name(data.get("name"))
        criteria = [c.as_json() for c in qa_scoring.check_criteria(data.get("criteria"))]
    except qa_scoring.ScorecardRefused as exc:
        raise ApiError(400, str(exc)) from exc
    conn = ctx.catalog.connection()
    with Tx(conn):
        if qa_store.name_taken(conn, name):
            raise ApiError(409, f"name: a scorecard {name!r} exists (retired ones keep their name)")
        if qa_store.count_scorecards(conn) >= MAX_CARDS:
            raise ApiError(409, f"name: at most {MAX_CARDS} scorecards")
        card_id = qa_store.add_scorecard(conn, name, criteria, actor.user.name, ctx.clock(), ctx.access_seal)
        audit(ctx, actor.user.name, actor.user.role, "qa.scorecards.add", f"scorecard:{card_id}",
              {"client": actor.client, "name": name, "criteria": criteria})
    return JSONResponse(sealed_card(ctx, card_id), status_code=201)


def retire(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    card_id = int_param(request, "scorecard_id")
    target = f"scorecard:{request.path_params['scorecard_id'][:20]}"
    require(ctx, actor, "qa.scorecards", target, {"client": actor.client})
    conn = ctx.catalog.connection()
    card = sealed_card(ctx, card_id) if card_id is not None else None
    if card is None:
        raise ApiError(404, "no such scorecard")
    with Tx(conn):
        with seal_refused():  # (failed its seal since the read above)
            retired = qa_store.retire_scorecard(conn, int(card["id"]), ctx.access_seal)
        if not retired:
            raise ApiError(409, "the scorecard changed meanwhile: load it again")
        audit(ctx, actor.user.name, actor.user.role, "qa.scorecards.retire", target,
              {"client": actor.client, "name": card["name"], "was_retired": card["retired"]})
    return JSONResponse(sealed_card(ctx, int(card["id"])))


@contextmanager
def seal_refused(what: str | None = None) -> Iterator[None]:
    """A QA row failing its seal inside the block (changed outside the recorder) as a 409 that
    says so (``what``, else the refusal's own text) and what to do."""
    try:
        yield
    except qa_store.RowFailsSeal as exc:
        raise ApiError(409, f"{what or exc}: an admin checks it (pbx-recorder users seal --check)") from exc


def sealed_card(ctx: ServiceContext, card_id: int) -> dict[str, Any] | None:
    """The scorecard (None: there is none); 409 when it fails its seal."""
    with seal_refused():
        return qa_store.scorecard(ctx.catalog.connection(), card_id, ctx.access_seal)


def routes(sync: Any) -> list[BaseRoute]:
    """``sync``: app._releasing (gives the worker thread's catalog connection back)."""
    return [
        Route("/api/qa/scorecards", sync(list_cards), methods=["GET"]),
        Route("/api/qa/scorecards", with_body(_create), methods=["POST"]),
        Route("/api/qa/scorecards/{scorecard_id}/retire", sync(retire), methods=["POST"]),
    ]
