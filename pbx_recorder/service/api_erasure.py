"""Right-to-erasure requests over HTTP (:class:`pbx_recorder.lifecycle.erasure.Eraser`, the CLI's
``erase``):

    GET  /api/erasure                            requests with their 15-day deadline, late ones
                                                 flagged (``erasure.read``)
    POST /api/erasure/preview                    {"number"}: what erasing it covers -- calls,
                                                 recordings per tier (hot / cold), the holds that
                                                 block parts of it (``erasure.manage``)
    POST /api/erasure                            {"number"}: open a request (or find the open one
                                                 of the same subject); the deadline starts now
    POST /api/erasure/{erasure_id}/execute       {"number"}: erase (the number is typed again: it
                                                 is never stored; it must be the request's subject);
                                                 ``include_protected``: also open a two-person
                                                 deletion request for what a protected retention
                                                 class withheld (lifecycle/protected_override.py)
    GET  /api/erasure/{erasure_id}/receipt       the receipt (JSON download; ``erasure.read``)

The number is sent in a JSON body only (never a URL, so no access log holds it), used to compute
its keyed hash and blind index, and never stored in clear or written to the audit or a log: the
audit rows name the subject by its keyed hash.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pbx_recorder.catalog.number_protection import lookup_keys
from pbx_recorder.core.retention import DAY
from pbx_recorder.errors import PolicyRefusal
from pbx_recorder.lifecycle import backup_shred, number_lookup, policy, protected_override
from pbx_recorder.lifecycle.runtime import Runtime
from pbx_recorder.service.api_disposal_support import checkpoint, runtime_of, text, with_body
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require

MAX_PREVIEW_CALLS = 500
COLUMNS = "request_id, subject, received_at, deadline, completed_at, status"


def _number(data: dict[str, Any]) -> str:
    number = text(data, "number", 40)
    if sum(c.isdigit() for c in number) < 5 or not set(number) <= set("0123456789+-() ."):
        raise ApiError(400, "number: a full phone number (digits, at least 5)")
    return number


def late(row: dict[str, Any], now: float) -> bool:
    """Past its deadline: still not done, or done after it, or done with the older catalog
    backups still to shred past it (``backup_shred_pending``)."""
    done = row.get("completed_at")
    if done is None or row["status"] == "open" or row.get("backup_shred_pending"):
        return now > float(row["deadline"])
    return float(done) > float(row["deadline"])


def with_shreds(conn: Any, items: list[dict[str, Any]], now: float) -> None:
    """Each request's ``backup_shred_pending`` (its older catalog backups wait for the next catalog
    backup: ``lifecycle.backup_shred``), ``backup_shred_nodes`` (the nodes whose backup keys are
    still to destroy once the fresh backup exists) and ``late``."""
    waiting, nodes_left = backup_shred.pending(conn), backup_shred.waiting_nodes(conn)
    for r in items:
        r["backup_shred_pending"] = r["request_id"] in waiting
        # the fresh backup taken: the nodes whose own backup keys are still to destroy
        r["backup_shred_nodes"] = nodes_left.get(r["request_id"], [])
        r["late"] = late(r, now)


def listing(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "erasure.read", "", {"what": "erasure.list"})
    now = ctx.clock()
    cur = ctx.catalog.connection().execute(f"SELECT {COLUMNS} FROM erasure_requests ORDER BY received_at DESC"
                                           " LIMIT 500")
    names = [d[0] for d in cur.description]
    items = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    with_shreds(ctx.catalog.connection(), items, now)
    for r in items:
        r["days_left"] = round((float(r["deadline"]) - now) / DAY, 1)
    audit(ctx, actor.user.name, actor.user.role, "erase.status", "",
          {"client": actor.client, "count": len(items), "late": sum(r["late"] for r in items)})
    return JSONResponse({"requests": items, "deadline_days": policy.ERASURE_DEADLINE_DAYS})


def _tier_kind(rt: Runtime, tier: str) -> str:
    st = rt.config.storage
    hot = {st.hot, *(r.hot for r in st.regions.values())}
    cold = {st.cold, *(r.cold for r in st.regions.values())}
    return "hot" if tier in hot else "cold" if tier in cold else tier


def preview(rt: Runtime, number: str) -> dict[str, Any]:
    """Everything erasing ``number`` covers, read as ``Eraser.erase`` would find it."""
    ids = sorted(number_lookup.calls_naming(rt.conn, rt.hash_key, number))
    holds = rt.holds()
    active = holds.active_holds()
    eraser = rt.eraser()  # (what its execution withholds by default: protected retention classes too)
    calls: list[dict[str, Any]] = []
    recordings = held = 0
    for call_id in ids[:MAX_PREVIEW_CALLS]:
        call = rt.conn.execute("SELECT started_at FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        cur = rt.conn.execute("SELECT * FROM recordings WHERE call_id = ? ORDER BY recording_id", (call_id,))
        names = [d[0] for d in cur.description]
        recs = []
        for row in (dict(zip(names, r, strict=True)) for r in cur.fetchall()):
            hold = (holds.hold_for(row, active=active)
                    or (("", "legal hold flag set") if row["legal_hold"] else None)
                    or eraser.protected_reason(row.get("retention_class"), row.get("protected"),
                                               row.get("state")))
            recs.append({"recording_id": row["recording_id"], "tier": row["tier"], "state": row["state"],
                         "where": _tier_kind(rt, str(row["tier"])), "storage_class": row.get("storage_class"),
                         "hold_id": hold[0] if hold else "", "hold_reason": hold[1] if hold else ""})
            recordings, held = recordings + 1, held + bool(hold)
        calls.append({"call_id": call_id, "started_at": call[0] if call else None, "recordings": recs})
    where: dict[str, int] = {}
    for c in calls:
        for r in c["recordings"]:
            where[r["where"]] = where.get(r["where"], 0) + 1
    return {"subject": policy.number_hash(rt.hash_key, number), "calls_total": len(ids),
            "calls": calls, "recordings": recordings, "held": held, "by_tier": where,
            "shown": len(calls), "deadline_days": policy.ERASURE_DEADLINE_DAYS}


def _preview(request: Request, actor: Actor, data: dict[str, Any]) -> Response:
    ctx = ctx_of(request)
    require(ctx, actor, "erasure.manage", "", {"what": "erasure.preview"})
    number = _number(data)
    out = preview(runtime_of(ctx, actor), number)
    audit(ctx, actor.user.name, actor.user.role, "erase.preview", out["subject"],
          {"client": actor.client, "calls": out["calls_total"], "held": out["held"]})
    return JSONResponse(out)


def _open(request: Request, actor: Actor, data: dict[str, Any]) -> Response:
    ctx = ctx_of(request)
    require(ctx, actor, "erasure.manage", "", {"what": "erasure.open"})
    number = _number(data)
    rt = runtime_of(ctx, actor)
    subject = policy.number_hash(rt.hash_key, number)
    row = rt.eraser().receive(subject_hash=subject, request_id=None, now=ctx.clock())
    audit(ctx, actor.user.name, actor.user.role, "erase.open", row["request_id"],
          {"client": actor.client, "subject": subject, "deadline": row["deadline"]})
    return JSONResponse({k: row[k] for k in ("request_id", "subject", "received_at", "deadline", "status")},
                        status_code=201)


def _find(request: Request, raw: str) -> dict[str, Any]:
    cur = ctx_of(request).catalog.connection().execute(
        f"SELECT {COLUMNS}, receipt FROM erasure_requests WHERE request_id = ?", (raw[:64],))
    found = cur.fetchone()
    if found is None:
        raise ApiError(404, "no such erasure request")
    return dict(zip([d[0] for d in cur.description], found, strict=True))


def _execute(request: Request, actor: Actor, data: dict[str, Any]) -> Response:
    ctx = ctx_of(request)
    raw = request.path_params["erasure_id"]
    require(ctx, actor, "erasure.manage", raw[:64], {"what": "erasure.execute"})
    req = _find(request, raw)
    number = _number(data)
    rt = runtime_of(ctx, actor)
    # the subject may still be under the key a blind-index rotation replaces (not re-keyed yet)
    if req["subject"] not in {policy.number_hash(k, number) for k in lookup_keys(rt.hash_key)}:
        audit(ctx, actor.user.name, actor.user.role, "denied:erase", req["request_id"],
              {"client": actor.client, "reason": "number_is_not_the_subject"})
        raise ApiError(409, "this number is not the subject of the request")
    include_protected = data.get("include_protected", False)
    if not isinstance(include_protected, bool):
        raise ApiError(400, "include_protected must be true or false")
    eraser = rt.eraser()  # protected classes withheld: their override is a second person's decision
    try:
        receipt = eraser.erase(caller=number, request_id=req["request_id"], actor=actor.user.name,
                               now=ctx.clock())
    except PolicyRefusal as exc:
        raise ApiError(409, str(exc)) from exc
    # asked for: a two-person deletion request for what the erasure withheld as protected
    asked = (protected_override.ask_deletion(rt.conn, receipt, requester=actor.user.name, now=ctx.clock())
             if include_protected else [])
    for deletion_id in asked:  # as POST /api/deletions writes it
        audit(ctx, actor.user.name, actor.user.role, "deletion.request", deletion_id,
              {"client": actor.client, "erasure": receipt["request_id"], "protected_override": True})
    audit(ctx, actor.user.name, actor.user.role, "erase", receipt["request_id"],
          {"client": actor.client, "subject": receipt["subject"], "status": receipt["status"],
           "recordings_erased": receipt["recordings_erased"], "withheld": len(receipt["withheld"]),
           "include_protected": include_protected, "protected_deletion_requests": asked})
    checkpoint(ctx)
    return JSONResponse({**receipt, "protected_deletion_requests": asked})


def receipt(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    raw = request.path_params["erasure_id"]
    require(ctx, actor, "erasure.read", raw[:64], {"what": "erasure.receipt"})
    req = _find(request, raw)
    body = json.loads(req["receipt"] or "{}")
    if not body:
        raise ApiError(409, "this request has no receipt yet (not executed)")
    audit(ctx, actor.user.name, actor.user.role, "erase.receipt", req["request_id"], {"client": actor.client})
    safe = "".join(c for c in str(req["request_id"]) if c.isascii() and (c.isalnum() or c in "._-"))
    name = f"erasure-receipt-{safe}.json"
    return Response(json.dumps(body, indent=2, sort_keys=True), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def routes(sync: Any) -> list[Route]:
    return [Route("/api/erasure", sync(listing), methods=["GET"]),
            Route("/api/erasure", with_body(_open), methods=["POST"]),
            Route("/api/erasure/preview", with_body(_preview), methods=["POST"]),
            Route("/api/erasure/{erasure_id}/execute", with_body(_execute), methods=["POST"]),
            Route("/api/erasure/{erasure_id}/receipt", sync(receipt), methods=["GET"])]
