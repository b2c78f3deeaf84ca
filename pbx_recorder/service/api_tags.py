"""Tags and intent labels: the vocabulary (admin) and the tags of calls (agents, leads, QA).

    GET  /api/tags                      calls.view; the vocabulary (retired ones flagged)
    POST /api/tags                      tags.manage; JSON {tag, kind intent|topic, label_en, label_zh}
    POST /api/tags/{tag}/retire         tags.manage; never deleted: calls keep and find it
    POST /api/calls/{call_id}/tags      calls.tag; JSON {add: [...], remove: [...]}
    POST /api/tags/bulk?<search filter> calls.tag; JSON {add, remove, call_ids: [...]} (the selected
                                        rows) or {add, remove, expect: N} (every call of the filter:
                                        409 with the count until ``expect`` equals it; at most 5,000)

A call is tagged only within the actor's row scope (an agent their own calls; a call outside it
answers 404 like an absent one) and only with vocabulary tags that are not retired.  Removing a
tag is allowed, except a *guarded* one (:func:`four_eyes.guarded_tags`): a tag of
``web.four_eyes.tags`` or one the call's recording rule set (as recorded with the call:
:func:`four_eyes.set_by_rule`) is removed only by a role holding
``calls.replay_approve``; anyone else gets 403 (audited ``denied:calls.tag`` /
``denied:tags.bulk`` with reason ``guarded_tag``) and nothing changes, since removing it would
let them play the call without a second person's grant.  A call carries at most 20 tags.  Every
change and refusal is audited; a bulk change as one row with its filter (numbers masked) and count.
``calls.tags`` is written and the catalog's triggers keep the ``call_tags`` search index in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NoReturn

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.core.masking import mask_channel, mask_field
from pbx_recorder.errors import CatalogError
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import four_eyes, tag_store
from pbx_recorder.service.api_calls import _number_search, filters_of
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.roles import may
from pbx_recorder.service.scoped_endpoint import body_of, scoped_call, with_body
from pbx_recorder.service.tag_store import TagRefused

MAX_BODY = 8192
MAX_BULK = 5000
MAX_SELECTED = 500


class _GuardedRemoval(Exception):
    """A bulk change would remove a guarded tag from ``call_id`` (rolls the whole change back)."""

    def __init__(self, call_id: str, tags: list[str]) -> None:
        super().__init__(call_id)
        self.call_id, self.tags = call_id, tags


def _guarded(ctx: ServiceContext, call: Mapping[str, Any] | None,
             known: Mapping[str, frozenset[str] | None] | None = None) -> frozenset[str]:
    """The tags of ``call`` (its ``call_id``, ``rule`` and ``rule_tags``; None: the four-eyes tags
    alone) that only an approver removes.  ``known``: the manifests' tags of a batch of calls
    (:func:`four_eyes.manifest_tags_of`), else one query for a call from before schema 20."""
    if call is None:
        return four_eyes.guarded_tags(ctx.web.four_eyes.tags, frozenset())
    set_by_rule = four_eyes.call_set_by_rule(ctx.catalog.connection(), getattr(ctx.catalog, "numbers", None),
                                             call, getattr(ctx.config, "rules", None) or (), known)
    return four_eyes.guarded_tags(ctx.web.four_eyes.tags, set_by_rule)


def _checks(actor: Actor, removing: list[str]) -> bool:
    """Whether a change by ``actor`` that removes ``removing`` is checked for guarded tags (an
    approver's is not, nor one that removes nothing: no query for it)."""
    return bool(removing) and not may(actor.user.role, four_eyes.APPROVE)


def _blocked(actor: Actor, removing: list[str], guarded: frozenset[str]) -> list[str]:
    """The guarded tags of ``removing`` that ``actor`` may not remove."""
    return [] if may(actor.user.role, four_eyes.APPROVE) else sorted(set(removing) & guarded)


def _refuse(ctx: ServiceContext, actor: Actor, action: str, target: str, blocked: list[str],
            detail: dict[str, Any]) -> NoReturn:
    """403, audited as refused."""
    audit(ctx, actor.user.name, actor.user.role, f"denied:{action}", target,
          {"client": actor.client, "reason": "guarded_tag", "remove": blocked, **detail})
    raise ApiError(403, f"remove: {blocked[0]!r} makes calls need a replay grant or was set by the "
                        f"recording rule; only a role holding {four_eyes.APPROVE} removes it")


def list_tags(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "calls.view", "/api/tags")
    return JSONResponse({"tags": tag_store.vocabulary(ctx.catalog.connection())})


def _add_tag(request: Request, raw: bytes) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "tags.manage", "/api/tags", {"client": actor.client})
    data = body_of(request, raw, MAX_BODY)
    try:
        tag = tag_store.check_tag(data.get("tag"))
        kind = data.get("kind")
        if kind not in tag_store.KINDS:
            raise TagRefused(f"kind: one of {', '.join(tag_store.KINDS)}")
        label_en = tag_store.check_label(data.get("label_en"), "label_en")
        label_zh = tag_store.check_label(data.get("label_zh") or label_en, "label_zh")
        conn = ctx.catalog.connection()
        with Tx(conn):
            if not tag_store.add(conn, tag, str(kind), label_en, label_zh, actor.user.name, ctx.clock()):
                raise ApiError(409, f"tag: {tag!r} exists already (a retired tag is not made again)")
            audit(
                ctx,
                actor.user.name,
                actor.user.role,
                "tags.add",
                tag,
                {"client": actor.client, "kind": kind, "label_en": label_en, "label_zh": label_zh},
            )
    except TagRefused as exc:
        raise ApiError(400, str(exc)) from exc
    return JSONResponse(tag_store.get(conn, tag), status_code=201)


def retire_tag(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    tag = request.path_params["tag"][:60]
    require(ctx, actor, "tags.manage", f"tag:{tag}", {"client": actor.client})
    conn = ctx.catalog.connection()
    found = tag_store.get(conn, tag)
    if found is None:
        raise ApiError(404, "no such tag")
    with Tx(conn):
        tag_store.retire(conn, tag)
        audit(
            ctx,
            actor.user.name,
            actor.user.role,
            "tags.retire",
            tag,
            {"client": actor.client, "was_retired": found["retired"]},
        )
    return JSONResponse(tag_store.get(conn, tag))


def _tag_call(request: Request, raw: bytes) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    call_id = request.path_params["call_id"]
    call = scoped_call(ctx, actor, call_id, "calls.tag", "tags")
    data = body_of(request, raw, MAX_BODY)
    conn = ctx.catalog.connection()
    try:
        adding, removing = tag_store.check_change(conn, data.get("add"), data.get("remove"))
        guarded = _guarded(ctx, call) if _checks(actor, removing) else frozenset()
        blocked = _blocked(actor, removing, guarded)
        if blocked:
            _refuse(ctx, actor, "calls.tag", call_id, blocked, {"add": adding})
        with Tx(conn):
            after = tag_store.apply(conn, call_id, adding, removing)
            audit(
                ctx,
                actor.user.name,
                actor.user.role,
                "calls.tag",
                call_id,
                {"client": actor.client, "add": adding, "remove": removing},
            )
    except TagRefused as exc:
        raise ApiError(400, str(exc)) from exc
    return JSONResponse({"call_id": call_id, "tags": after})


def _filter_detail(request: Request) -> dict[str, str]:
    """The bulk change's filter as audited: the query string, numbers masked."""
    out = {}
    for key, value in request.query_params.items():
        if key in ("after", "limit", "unmask"):
            continue
        out[key[:40]] = (mask_field(value) if key in ("caller", "callee")
                         else mask_channel(value[:256]) if key == "agent" else value[:256])
    return out


def _bulk_targets(request: Request, data: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The call ids a bulk change applies to, and how they were chosen (for the audit)."""
    ctx = ctx_of(request)
    actor = actor_of(request)
    selected = data.get("call_ids")
    if selected is not None:
        if (
            not isinstance(selected, list)
            or not selected
            or len(selected) > MAX_SELECTED
            or not all(isinstance(c, str) and c for c in selected)
        ):
            raise ApiError(400, f"call_ids: a list of 1..{MAX_SELECTED} call ids")
        ids = sorted(set(selected))
        for call_id in ids:  # every one in scope, or nothing changes (each refusal audited)
            scoped_call(ctx, actor, call_id, "calls.tag", "tags.bulk")
        return ids, {"selected": len(ids), "call_ids": ids}
    require(ctx, actor, "calls.view", "/api/tags/bulk")
    f = filters_of(request, ctx)
    _number_search(ctx, actor, f, may(actor.user.role, "calls.unmask"))
    try:
        page = ctx.catalog.search_page(
            replace(f, limit=MAX_BULK, after=None),
            tz=ctx.tz,
            scope=actor.scope,
            count=True,
            count_cap=MAX_BULK + 1,
        )
    except CatalogError as exc:
        raise ApiError(400, str(exc)) from exc
    count = page.count.value if page.count else len(page.rows)
    if count > MAX_BULK:
        raise ApiError(400, f"expect: the filter matches more than {MAX_BULK} calls; narrow it")
    expect = data.get("expect")
    if isinstance(expect, bool) or expect != count:  # the count to confirm: a search's answer, audited
        audit(ctx, actor.user.name, actor.user.role, "tags.bulk.count", "",
              {"client": actor.client, "filter": _filter_detail(request), "count": count})
        return [], {"count": count}
    return [str(r["call_id"]) for r in page.rows], {"filter": _filter_detail(request), "count": count}


def _bulk(request: Request, raw: bytes) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "calls.tag", "/api/tags/bulk", {"client": actor.client})
    data = body_of(request, raw, 64 * 1024)
    conn = ctx.catalog.connection()
    try:
        adding, removing = tag_store.check_change(conn, data.get("add"), data.get("remove"))
    except TagRefused as exc:
        raise ApiError(400, str(exc)) from exc
    blocked = _blocked(actor, removing, _guarded(ctx, None))  # the four-eyes tags: whatever the calls
    if blocked:
        _refuse(ctx, actor, "tags.bulk", "/api/tags/bulk", blocked, {"add": adding})
    ids, how = _bulk_targets(request, data)
    if not ids and "count" in how and "filter" not in how:
        return JSONResponse(
            {"error": "confirm the number of calls (send it as expect)", "count": how["count"]},
            status_code=409,
        )
    changed = 0
    checks = _checks(actor, removing)
    # the manifests' tags of the calls from before schema 20, for all of them at once
    known = four_eyes.manifest_tags_of(conn, ids, getattr(ctx.catalog, "numbers", None)) if checks else {}
    try:
        with Tx(conn):
            for call_id in ids:
                before = conn.execute("SELECT tags, rule, rule_tags FROM calls WHERE call_id = ?",
                                      (call_id,)).fetchone()
                recorded = {"call_id": call_id, "rule": before[1], "rule_tags": before[2]} if before else None
                blocked = _blocked(actor, removing, _guarded(ctx, recorded, known) if checks else frozenset())
                if blocked:
                    raise _GuardedRemoval(call_id, blocked)
                try:
                    after = tag_store.apply(conn, call_id, adding, removing)
                except TagRefused as exc:
                    raise TagRefused(f"{exc} (call {call_id}; nothing was changed)") from exc
                changed += int(
                    before is not None and after is not None and tag_store.tags_of(before[0]) != after
                )
            audit(
                ctx,
                actor.user.name,
                actor.user.role,
                "tags.bulk",
                "/api/tags/bulk",
                {"client": actor.client, **how, "add": adding, "remove": removing, "changed": changed},
            )
    except TagRefused as exc:
        raise ApiError(400, str(exc)) from exc
    except _GuardedRemoval as exc:  # rolled back: nothing was changed
        _refuse(ctx, actor, "tags.bulk", "/api/tags/bulk", exc.tags, {**how, "call_id": exc.call_id})
    return JSONResponse({"count": len(ids), "changed": changed, "add": adding, "remove": removing})


def routes(sync: Any) -> list[BaseRoute]:
    """``sync``: app._releasing (gives the worker thread's catalog connection back)."""
    return [
        Route("/api/tags", sync(list_tags), methods=["GET"]),
        Route("/api/tags", with_body(_add_tag), methods=["POST"]),
        Route("/api/tags/bulk", with_body(_bulk), methods=["POST"]),
        Route("/api/tags/{tag}/retire", sync(retire_tag), methods=["POST"]),
        Route("/api/calls/{call_id}/tags", with_body(_tag_call), methods=["POST"]),
    ]
