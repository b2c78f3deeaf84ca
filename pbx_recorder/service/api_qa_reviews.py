"""QA reviews: a scorecard filled for a call.

    GET  /api/calls/{call_id}/reviews   qa.read; the call's reviews the actor may read (an agent
                                        their own calls', a reviewer theirs, a lead their team's,
                                        admin all)
    POST /api/calls/{call_id}/reviews   qa.review; JSON {scorecard_id, answers, comments}
    PUT  /api/qa/reviews/{review_id}    qa.review; the author only; JSON {answers, comments}

A reviewer reviews only calls assigned to them (their row scope: any other call answers 404 like
an absent one); admin any call.  A retired scorecard takes no new review.  The answers are
checked against the criteria and the score (weighted, 0..100) is computed here
(:mod:`pbx_recorder.service.qa_scoring`).  A comment is ``{text, mark_id}`` (a mark of this call)
or ``{text, recording_id, position_s}`` (a recording of this call: a mark labelled ``QA`` is made
there, audited as ``marks.add``).  Listing is audited (``qa.review.list``, one row per request),
creating and editing too (an edit with the answers and score before and after; comment texts only
by length: they may quote the caller).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.catalog import marks
from pbx_recorder.core.masking import redact_card_numbers
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import list_audit, qa_evidence, qa_scoring, qa_store
from pbx_recorder.service.api_qa_scorecards import seal_refused, sealed_card
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.scoped_endpoint import body_of, int_param, scoped_call, sealed_in_scope, with_body

MAX_BODY = 64 * 1024
MAX_COMMENTS = 50
MAX_TEXT = 2000
COMMENT_LABEL = "QA"
Comment = tuple[str, int | None, marks.NewMark | None]


def list_reviews(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    call_id = request.path_params["call_id"]
    scoped_call(ctx, actor, call_id, "qa.read", "reviews")
    rows = readable(ctx, actor, call_id)
    list_audit.listed(ctx, actor, list_audit.REVIEWS, call_id, len(rows))
    return JSONResponse({"call_id": call_id, "reviews": rows})


def readable(ctx: ServiceContext, actor: Actor, call_id: str | None) -> list[dict[str, Any]]:
    rows = qa_store.reviews(
        ctx.catalog.connection(), actor.user.role, actor.user.name, actor.scope, call_id=call_id,
        seal=ctx.access_seal,
    )
    return sealed_in_scope(ctx, actor, rows)


def _comments(ctx: ServiceContext, actor: Actor, call_id: str, raw: Any) -> list[Comment]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_COMMENTS:
        raise ApiError(400, f"comments: a list of at most {MAX_COMMENTS}")
    conn, out = ctx.catalog.connection(), []
    for i, item in enumerate(raw):
        where = f"comments[{i}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{where}: an object {{text, mark_id}} or {{text, recording_id, position_s}}")
        text = item.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT or "\x00" in text:
            raise ApiError(400, f"{where}.text: 1..{MAX_TEXT} characters")
        mark_id = item.get("mark_id")
        if mark_id is not None:
            mark = (
                marks.get(conn, mark_id)
                if isinstance(mark_id, int) and not isinstance(mark_id, bool) and 0 < mark_id < 2**62
                else None
            )
            if mark is None or mark["call_id"] != call_id:
                raise ApiError(400, f"{where}.mark_id: not a mark of this call")
            out.append((text, int(mark_id), None))
            continue
        rid = item.get("recording_id")
        if rid is None:
            raise ApiError(400, f"{where}: anchor it: mark_id, or recording_id and position_s")
        require(ctx, actor, "calls.mark", call_id, {"client": actor.client, "what": "review comment"})
        rec = ctx.catalog.get_recording(rid) if isinstance(rid, str) and 0 < len(rid) <= 200 else None
        if rec is None or rec["call_id"] != call_id:
            raise ApiError(400, f"{where}.recording_id: a recording of this call")
        new = marks.NewMark(
            call_id,
            str(rid),
            item.get("position_s"),
            COMMENT_LABEL,  # type: ignore[arg-type]
            text[: marks.MAX_NOTE],
            actor.user.name,
        )
        try:
            marks.validate(new, float(rec["duration_s"]) if rec.get("duration_s") else None)
        except marks.MarkRefused as exc:
            raise ApiError(400, f"{where}.{exc}") from exc
        out.append((text, None, new))
    return out


def _stored_comments(
    ctx: ServiceContext, actor: Actor, call_id: str, parsed: list[Comment]
) -> list[dict[str, Any]]:
    """The comments as stored, making the marks of positioned ones (inside the caller's Tx)."""
    conn, out = ctx.catalog.connection(), []
    for text, mark_id, new in parsed:
        if new is not None:
            try:
                mark_id = marks.add(conn, new, ctx.clock())
            except marks.MarkRefused as exc:
                raise ApiError(409, str(exc)) from exc
            audit(
                ctx,
                actor.user.name,
                actor.user.role,
                "marks.add",
                call_id,
                {
                    "client": actor.client,
                    "mark_id": mark_id,
                    "recording_id": new.recording_id,
                    "position_s": float(new.position_s),
                    "label_chars": len(new.label),
                    "note_chars": len(new.note),
                    "for": "qa.review",
                },
            )
        out.append({"mark_id": mark_id, "text": redact_card_numbers(text)})  # (PCI: never stored)
    return out


def _scored(card: dict[str, Any], answers: Any) -> tuple[dict[str, Any], float]:
    try:
        criteria = qa_scoring.criteria_of(card["criteria"])
        checked = qa_scoring.check_answers(criteria, answers)
    except qa_scoring.ScorecardRefused as exc:
        raise ApiError(400, str(exc)) from exc
    return dict(checked), qa_scoring.score(criteria, checked)


def _summary(comments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"mark_id": c.get("mark_id"), "chars": len(str(c.get("text", "")))} for c in comments or []]


def _create(request: Request, raw: bytes) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    call_id = request.path_params["call_id"]
    call = scoped_call(ctx, actor, call_id, "qa.review", "review")
    data = body_of(request, raw, MAX_BODY)
    conn = ctx.catalog.connection()
    card_id = data.get("scorecard_id")
    card = (
        sealed_card(ctx, card_id)
        if isinstance(card_id, int) and not isinstance(card_id, bool) and 0 < card_id < 2**62
        else None
    )
    if card is None or card["retired"]:
        raise ApiError(400, "scorecard_id: a scorecard in use (not retired)")
    answers, score = _scored(card, data.get("answers"))
    parsed = _comments(ctx, actor, call_id, data.get("comments"))
    with Tx(conn):
        done = qa_store.review_by(conn, call_id, actor.user.name, int(card["id"]))
        if done is not None:  # (409 naming its seal when it fails it: an insider's row blocks this one)
            _sealed_review(ctx, int(done["id"]))
            raise ApiError(409, "scorecard_id: you reviewed this call with this scorecard; edit that review"
                           f" ({done['id']})")
        comments = _stored_comments(ctx, actor, call_id, parsed)
        review_id = qa_store.add_review(
            conn,
            {
                "call_id": call_id,
                "reviewer": actor.user.name,
                "agent": str(call.get("agent") or ""),
                "scorecard_id": int(card["id"]),
                "answers": answers,
                "score": score,
                "comments": comments,
            },
            ctx.clock(),
            ctx.access_seal,
        )
        audit(
            ctx,
            actor.user.name,
            actor.user.role,
            "qa.review",
            call_id,
            {
                "client": actor.client,
                "review_id": review_id,
                # (masked as numbers are, and a keyed digest of it as written: qa_evidence reads them)
                **qa_evidence.agent_fields(conn, str(call.get("agent") or "")),
                "scorecard_id": card["id"],
                "score": score,
                "answers": answers,
                "comments": _summary(comments),
            },
        )
    return JSONResponse(_sealed_review(ctx, review_id), status_code=201)


def _edit(request: Request, raw: bytes) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    review_id = int_param(request, "review_id")
    target = f"review:{request.path_params['review_id'][:20]}"
    require(ctx, actor, "qa.review", target, {"client": actor.client})
    conn = ctx.catalog.connection()
    # who may edit it is asked first, of the row as stored (its seal is checked after: an operator
    # who may not edit it learns nothing of its seal)
    stored = qa_store.review(conn, review_id) if review_id is not None else None
    if stored is None:  # audited, and answered as a review on a call out of scope is (no oracle)
        audit(ctx, actor.user.name, actor.user.role, "qa.review.absent", target,
              {"client": actor.client, "what": "review.edit", "reason": "absent"})
        raise ApiError(404, "no such review")
    try:
        scoped_call(ctx, actor, str(stored["call_id"]), "qa.review", "review.edit")
    except ApiError as exc:  # (audited there) the same answer as an absent review
        if exc.status == 404:
            raise ApiError(404, "no such review") from exc
        raise
    if stored["reviewer"] != actor.user.name:
        audit(
            ctx,
            actor.user.name,
            actor.user.role,
            "denied:qa.review.edit",
            target,
            {"client": actor.client, "reviewer": stored["reviewer"]},
        )
        raise ApiError(403, "only the review's author edits it")
    before = _sealed_review(ctx, int(stored["id"]))
    if before is None:
        raise ApiError(404, "no such review")
    data = body_of(request, raw, MAX_BODY)
    card = sealed_card(ctx, int(before["scorecard_id"]))
    if card is None:
        raise ApiError(409, "the review's scorecard is missing")
    answers, score = _scored(card, data.get("answers"))
    call_id = str(before["call_id"])
    parsed = _comments(ctx, actor, call_id, data.get("comments"))
    with Tx(conn):
        comments = _stored_comments(ctx, actor, call_id, parsed)
        with seal_refused(f"review {before['id']} fails its seal (changed outside the recorder)"):
            changed = qa_store.update_review(conn, int(before["id"]), answers, score, comments, ctx.clock(),
                                             ctx.access_seal)  # (may have failed its seal since the read)
        if not changed:
            raise ApiError(409, "the review changed meanwhile: load it again")
        audit(
            ctx,
            actor.user.name,
            actor.user.role,
            "qa.review.edit",
            call_id,
            {
                "client": actor.client,
                "review_id": before["id"],
                "before": {
                    "answers": before["answers"],
                    "score": before["score"],
                    "comments": _summary(before["comments"]),
                },
                "after": {"answers": answers, "score": score, "comments": _summary(comments)},
            },
        )
    return JSONResponse(_sealed_review(ctx, int(before["id"])))


def _sealed_review(ctx: ServiceContext, review_id: int) -> dict[str, Any] | None:
    """The review (None: there is none); 409 when it fails its seal."""
    with seal_refused():
        return qa_store.review(ctx.catalog.connection(), review_id, seal=ctx.access_seal)


def routes(sync: Any) -> list[BaseRoute]:
    """``sync``: app._releasing (gives the worker thread's catalog connection back)."""
    return [
        Route("/api/calls/{call_id}/reviews", sync(list_reviews), methods=["GET"]),
        Route("/api/calls/{call_id}/reviews", with_body(_create), methods=["POST"]),
        Route("/api/qa/reviews/{review_id}", with_body(_edit), methods=["PUT"]),
    ]
