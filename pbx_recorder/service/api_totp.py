"""The TOTP second factor over HTTP (:mod:`pbx_recorder.service.totp`).

    POST /api/me/totp/enrol    -> {"secret", "uri"} once (otpauth URI for an authenticator app)
    POST /api/me/totp/confirm  {"code"}: the first code makes the factor active
    POST /api/login/totp       {"code"}: the second login step

A user with TOTP gets, after the right password, a session of stage ``totp`` that can do nothing
but ``POST /api/login/totp`` (and log out); the right code ends it and issues a new session
(new cookie, new CSRF token).  A user whose role is in ``web.totp_required_roles`` and who has
not enrolled gets a session of stage ``enrol`` that can only enrol and confirm; the confirmation
issues the full session.  Wrong codes count toward the account's lockout and the client
address's login limit; each is audited.  An enrolled factor is replaced only after an admin's
``users reset-totp`` (a stolen session cannot swap it).  API tokens cannot enrol.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pbx_recorder.service import login_limit, sessions
from pbx_recorder.service.auth import (
    ANY_STAGE,
    Actor,
    ApiError,
    actor_of,
    audit,
    check_client_limit,
    ctx_of,
    session_response,
)
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.json_body import read_capped
from pbx_recorder.service.totp import TotpStore

ENROL_STAGES = frozenset({"ok", "enrol"})
MAX_BODY = 1024  #: {"code": "123456"} with room to spare


async def _code(request: Request) -> str | None:
    """The body's code, or None when there is none (answered 400 only after the session and its
    CSRF token were checked: an anonymous or cross-site request learns nothing from the body).
    A body past :data:`MAX_BODY` is refused (413) as soon as it passes it."""
    body = await read_capped(request, MAX_BODY)
    try:
        code = json.loads(body)["code"]
    except (ValueError, KeyError, TypeError, RecursionError):
        code = None
    return code if isinstance(code, str) else None


def _given(code: str | None) -> str:
    if code is None:
        raise ApiError(400, 'takes {"code": "123456"}')
    return code


def _store(ctx: ServiceContext) -> TotpStore:
    return TotpStore(ctx.catalog.connection(), ctx.secret_box, ctx.access_seal)


def _personal(request: Request, stages: frozenset[str]) -> Actor:
    actor = actor_of(request, stages)
    if actor.via != "session":
        raise ApiError(403, "an API token cannot manage a second factor")
    return actor


def enrol(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = _personal(request, ENROL_STAGES)
    if ctx.secret_box is None:
        raise ApiError(409, "TOTP is not configured on this service (web.secret_key_file)")
    store = _store(ctx)
    if store.state(actor.user.name) == "enrolled":
        audit(ctx, actor.user.name, actor.user.role, "denied:totp.enrol", actor.user.name,
              {"client": actor.client, "reason": "enrolled"})
        raise ApiError(409, "a second factor is enrolled; an admin resets it (users reset-totp)")
    secret, uri = store.start(actor.user.name)
    audit(ctx, actor.user.name, actor.user.role, "totp.enrol.start", actor.user.name,
          {"client": actor.client})
    return JSONResponse({"secret": secret, "uri": uri})


def _failed(ctx: ServiceContext, actor_name: str, role: str, client: str, action: str, *,
            address_counted: bool = False) -> None:
    """A wrong code: audited, counted against the account and (unless the attempt was counted
    before the check, ``login_limit.begin``) against the client address."""
    audit(ctx, actor_name, role, action, actor_name, {"client": client, "reason": "totp"})
    if not address_counted:
        login_limit.record(ctx.catalog.connection(), client, ctx.clock())
    ctx.accounts().count_failure(actor_name, role, client, ctx.clock())


async def confirm(request: Request) -> Response:
    code = await _code(request)
    return await _in_thread(_confirm, request, code)


def _confirm(request: Request, given: str | None) -> Response:
    ctx = ctx_of(request)
    actor = _personal(request, ENROL_STAGES)
    code = _given(given)
    name, role = actor.user.name, actor.user.role
    _begin(ctx, name, role, actor.client)
    if not _store(ctx).check(name, code, ctx.clock(), pending=True):
        _failed(ctx, name, role, actor.client, "totp.confirm.failed")
        raise ApiError(400, "wrong code (or no enrolment started)")
    audit(ctx, name, role, "totp.enrol", name, {"client": actor.client})
    if actor.session.stage == "ok":
        ctx.accounts().attempt_passed(name, ctx.clock())
        return JSONResponse({"ok": True, "stage": "ok"})
    return _logged_in(ctx, actor, actor.user)


def _begin(ctx: ServiceContext, name: str, role: str, client: str) -> None:
    """Count this code guess before it is checked (``Accounts.begin_attempt``): guesses sent at once
    cannot all pass a lock test made before any of them was counted."""
    if not ctx.accounts().begin_attempt(name, role, client, ctx.clock()):
        raise ApiError(401, "not logged in (or the session ended)")


async def login_totp(request: Request) -> Response:
    code = await _code(request)
    return await _in_thread(_login_totp, request, code)


def _login_totp(request: Request, given: str | None) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request, ANY_STAGE)
    if actor.session.stage != "totp":
        raise ApiError(409, "no second factor is due on this session")
    code = _given(given)
    name, role = actor.user.name, actor.user.role
    check_client_limit(ctx, actor.client, name)
    user = ctx.accounts().get(name)
    if user is None:
        raise ApiError(401, "not logged in (or the session ended)")
    _begin(ctx, name, role, actor.client)
    if not _store(ctx).check(name, code, ctx.clock()):
        _failed(ctx, name, role, actor.client, "login.failed", address_counted=True)
        raise ApiError(401, "wrong code")
    login_limit.passed(ctx.catalog.connection(), actor.client, ctx.clock())
    return _logged_in(ctx, actor, user)


def _logged_in(ctx: ServiceContext, actor: Actor, user: Any) -> Response:
    """The pending session (stage 'totp' or 'enrol') ended and a full one issued in its place."""
    sessions.end_hash(ctx.catalog.connection(), actor.session.id_hash)
    if not ctx.accounts().login_done(user.name, user.role, actor.client, ctx.clock()):
        raise ApiError(401, "not logged in (or the session ended)")  # locked by a guess beside this one
    return session_response(ctx, user, actor.client, "ok")


async def _in_thread(fn: Any, request: Request, code: str | None) -> Response:
    from starlette.concurrency import run_in_threadpool

    def run() -> Response:
        try:
            return fn(request, code)  # type: ignore[no-any-return]
        finally:
            ctx_of(request).release()

    return await run_in_threadpool(run)


def routes(sync: Any) -> list[Route]:
    """``sync``: the app's wrapper that gives a sync endpoint's catalog connection back."""
    return [Route("/api/login/totp", login_totp, methods=["POST"]),
            Route("/api/me/totp/enrol", sync(enrol), methods=["POST"]),
            Route("/api/me/totp/confirm", confirm, methods=["POST"])]
