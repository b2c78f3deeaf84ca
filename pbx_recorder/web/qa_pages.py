"""The console's QA review and tag pages, over the JSON API (``service/api_qa*.py``, ``api_tags.py``):

    /qa                   qa.read: a reviewer's assignments (to review / reviewed); a lead's or an
                          admin's assignments of their scope with the assign / unassign forms; the
                          reviews the user may read (an agent: those of their own calls)
    /admin/scorecards     qa.scorecards: the scorecards, a form to make one, retire
    /admin/tags           tags.manage: the vocabulary, a form to add a tag, retire
    /calls/{id}/review    qa.read (the call in the user's scope: a reviewer's assigned calls only,
                          404 otherwise): the call's reviews, and with qa.review a form per scorecard

The call page's last block (:func:`call_block`) shows the call's tags with their labels, the tag
form (calls.tag) and the call's reviews (qa.read).  Forms post through ``static/qa.js``; the API
decides and audits.  The /qa page writes one ``qa.list`` audit row (how many assignments and
reviews it showed); the call and review pages are audited as the call's ``calls.view``.  Every
text (tag labels, criteria, comments) is shown as text.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.catalog import marks as call_marks
from pbx_recorder.service import api_calls, api_qa, list_audit, qa_store, tag_store
from pbx_recorder.service.api_qa_reviews import readable
from pbx_recorder.service.auth import Actor, actor_of, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.roles import may
from pbx_recorder.web import preferences, render


def qa_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "qa.read", "/qa", {"client": actor.client})
    role = actor.user.role
    rows = api_qa.visible_assignments(ctx, actor) if role in api_qa.ASSIGNMENT_READERS else []
    reviews = readable(ctx, actor, None)
    list_audit.listed(ctx, actor, list_audit.QA_PAGE, "", len(rows) + len(reviews),
                      {"page": "/qa", "assignments": len(rows), "reviews": len(reviews)})
    return render.page(
        request,
        "qa.html",
        actor,
        todo=[a for a in rows if not a["reviewed"]],
        done=[a for a in rows if a["reviewed"]],
        shows_assignments=role in api_qa.ASSIGNMENT_READERS,
        may_assign=may(role, "qa.assign"),
        reviewers=qa_store.qa_accounts(ctx.catalog.connection()) if may(role, "qa.assign") else [],
        reviews=reviews,
    )


def scorecards_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "qa.scorecards", "/admin/scorecards", {"client": actor.client})
    return render.page(
        request, "admin_scorecards.html", actor,
        cards=qa_store.scorecards(ctx.catalog.connection(), seal=ctx.access_seal),
    )


def tags_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "tags.manage", "/admin/tags", {"client": actor.client})
    return render.page(
        request,
        "admin_tags.html",
        actor,
        tags=tag_store.vocabulary(ctx.catalog.connection()),
        kinds=tag_store.KINDS,
    )


def review_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    call_id = request.path_params["call_id"]
    require(ctx, actor, "qa.read", call_id[:200], {"client": actor.client, "what": "review page"})
    row, _ = api_calls.scoped_call(request, ctx, actor, call_id)  # 404 out of scope, audited
    conn = ctx.catalog.connection()
    reviews = readable(ctx, actor, call_id)
    mine = {int(r["scorecard_id"]): r for r in reviews if r["reviewer"] == actor.user.name}
    cards = (
        [c for c in qa_store.scorecards(conn, seal=ctx.access_seal)
         if not c["retired"] or int(c["id"]) in mine]
        if may(actor.user.role, "qa.review")
        else []
    )
    recordings = [r for r in ctx.catalog.recordings_for_call(call_id) if r.get("kind") != "consent"]
    return render.page(
        request,
        "review.html",
        actor,
        call=api_calls.shown(row, False, ("call_id", "agent", "queue", "started_at", "duration", "status")),
        reviews=reviews,
        cards=cards,
        mine=mine,
        marks=call_marks.shown(call_marks.for_call(conn, call_id), actor.user.name, False),
        recordings=recordings,
        may_mark=may(actor.user.role, "calls.mark"),
    )


def call_block(ctx: ServiceContext, actor: Actor, call: dict[str, Any]) -> dict[str, Any]:
    """What the call page's last block shows (the call is in the actor's scope already)."""
    conn = ctx.catalog.connection()
    role = actor.user.role
    labels = tag_store.labels(conn, preferences.lang_of(ctx, actor.user.name))
    return {
        "labels": labels,
        "tags": list(call.get("tags") or []),
        "may_tag": may(role, "calls.tag"),
        "vocabulary": tag_store.vocabulary(conn, include_retired=False) if may(role, "calls.tag") else [],
        "reviews": readable(ctx, actor, str(call["call_id"])) if may(role, "qa.read") else None,
        "may_review": may(role, "qa.review"),
    }


def search_block(ctx: ServiceContext, actor: Actor) -> dict[str, Any]:
    """The search page's tag filter (the vocabulary, labels in the user's language) and bulk form."""
    conn = ctx.catalog.connection()
    vocab = tag_store.vocabulary(conn)
    return {
        "vocabulary": vocab,
        "labels": tag_store.labels(conn, preferences.lang_of(ctx, actor.user.name)),
        "may_tag": may(actor.user.role, "calls.tag"),
        "bulk_max": 5000,
    }


def routes(sync: Any) -> list[BaseRoute]:
    """``sync``: app._releasing (gives the worker thread's catalog connection back)."""
    return [
        Route("/qa", sync(qa_page), methods=["GET"]),
        Route("/admin/scorecards", sync(scorecards_page), methods=["GET"]),
        Route("/admin/tags", sync(tags_page), methods=["GET"]),
        Route("/calls/{call_id}/review", sync(review_page), methods=["GET"]),
    ]
