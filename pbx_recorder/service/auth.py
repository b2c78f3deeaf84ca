"""Who is asking: the session cookie, the CSRF header, the client address; login and logout.

* ``POST /api/login`` takes JSON ``{"name", "password"}`` (a JSON body only: a cross-site HTML form
  cannot send one without a CORS preflight, which this service never grants).  Any session the
  client presents is ended first and a new one is issued (no session fixation).  The answer
  carries the CSRF token, once.
* Every other request needs the session cookie; every request that is not GET/HEAD also needs
  ``X-CSRF-Token`` matching the session's token (checked here for every route, so no
  state-changing route can forget it).  A refusal is audited.
* The cookie is ``HttpOnly``, ``SameSite=Strict``, ``Path=/``; under TLS (``web.tls`` or
  ``web.tls_cert``) it is also
  ``Secure`` and named ``__Host-pbxr_session`` (a browser then refuses it over plain HTTP and
  from any sub-domain).
* The client address is the TCP peer; only when that peer is one of ``web.trusted_proxies`` is the
  right-most untrusted address of ``X-Forwarded-For`` taken instead.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pbx_recorder import audit_trail
from pbx_recorder.catalog.scopes import Scope
from pbx_recorder.errors import LoginRefused
from pbx_recorder.service import api_token_store, login_limit, request_tag, sessions, totp
from pbx_recorder.service.accounts import User
from pbx_recorder.service.body_limit import LOGIN_BODY
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.roles import may

CSRF_HEADER = "x-csrf-token"
OK_STAGE = frozenset({"ok"})
ANY_STAGE = frozenset({"ok", "totp", "enrol"})
SAFE_METHODS = frozenset({"GET", "HEAD"})
MAX_LOGIN_BODY = LOGIN_BODY


class ApiError(Exception):
    """An answer other than 2xx, as JSON ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass(frozen=True, slots=True)
class Actor:
    user: User
    session: sessions.Session
    scope: Scope
    client: str
    via: str = "session"  #: 'session' (cookie) or 'token' (Authorization: Bearer)


def over_tls(ctx: ServiceContext) -> bool:
    """Served over TLS: by uvicorn (``web.tls_cert``) or by a proxy in front (``web.tls``)."""
    return bool(ctx.web.tls or ctx.web.tls_cert is not None)


def cookie_name(ctx: ServiceContext) -> str:
    return "__Host-pbxr_session" if over_tls(ctx) else "pbxr_session"


def ctx_of(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def client_ip(request: Request, trusted: tuple[str, ...] = ()) -> str:
    peer = request.client.host if request.client else ""
    if peer not in trusted:
        return peer
    # every header line: a proxy that adds its own line after the client's (HAProxy's `option
    # forwardfor`) left the first line -- the client's own words -- as the one read
    hops = [h.strip() for line in request.headers.getlist("x-forwarded-for") for h in line.split(",")
            if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return _address(hop) or peer  # not an address: nothing a proxy wrote
    return peer


def _address(hop: str) -> str:
    """The IP address of one hop ('' when it is none): ``1.2.3.4``, ``1.2.3.4:5678``,
    ``2001:db8::1``, ``[2001:db8::1]:443`` (some proxies append the client's port)."""
    text = hop
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""


def audit(ctx: ServiceContext, actor: str, role: str, action: str, target: str,
          detail: dict[str, Any]) -> None:
    audit_trail.record(ctx.catalog.connection(), actor=actor, role=role, action=action, target=target,
                       detail=request_tag.tagged(detail), now=ctx.clock())


def actor_of(request: Request, stages: frozenset[str] = OK_STAGE) -> Actor:
    """The logged-in user behind ``request`` (401 without a live session, or with one whose
    second factor is still due unless ``stages`` allows it; 403 without the CSRF token on a
    state-changing request).  ``Authorization: Bearer`` names an API token instead (no cookie,
    no CSRF token: a browser never sends the header by itself)."""
    ctx = ctx_of(request)
    client = client_ip(request, ctx.web.trusted_proxies)
    conn = ctx.catalog.connection()
    if "authorization" in request.headers:
        return _bearer_actor(ctx, request.headers["authorization"], client)
    session = sessions.lookup(conn, request.cookies.get(cookie_name(ctx)), ctx.clock(),
                              idle=ctx.web.idle_timeout_s, absolute=ctx.web.absolute_timeout_s,
                              seal=ctx.access_seal)
    if session is None:
        raise ApiError(401, "not logged in (or the session ended)")
    if session.stage not in stages:
        raise ApiError(401, "the second factor is due (POST /api/login/totp)" if session.stage == "totp"
                       else "enrol a second factor first (POST /api/me/totp/enrol)")
    accounts = ctx.accounts()
    user = accounts.get(session.user)
    if user is None or user.disabled:
        sessions.end_hash(conn, session.id_hash)
        raise ApiError(401, "not logged in (or the session ended)")
    if request.method not in SAFE_METHODS and not sessions.csrf_ok(session, request.headers.get(CSRF_HEADER)):
        audit(ctx, user.name, user.role, "denied:csrf", request.url.path,
              {"client": client, "method": request.method})
        raise ApiError(403, "missing or wrong CSRF token")
    return Actor(user, session, accounts.scope(user), client)


def _bearer_actor(ctx: ServiceContext, header: str, client: str) -> Actor:
    kind, _, token = header.partition(" ")
    found = api_token_store.resolve(ctx.catalog.connection(), token.strip(), ctx.clock(),
                                    touch_s=ctx.web.token_touch_s,
                                    seal=ctx.access_seal) if kind.lower() == "bearer" else None
    owner = ctx.accounts().get(found.user) if found else None
    if found is None or owner is None or owner.disabled or not api_token_store.within(found.role, owner.role):
        raise ApiError(401, "no valid API token", headers={"WWW-Authenticate": "Bearer"})
    request_tag.set_token(found.label or found.id_hash[:12])
    user = replace(owner, role=found.role)
    session = sessions.Session("token:" + found.id_hash, user.name, "", found.created_at, ctx.clock())
    return Actor(user, session, ctx.accounts().scope(user), client, via="token")


def require(ctx: ServiceContext, actor: Actor, verb: str, target: str,
            detail: dict[str, Any] | None = None) -> None:
    """403 (audited) unless the actor's role holds ``verb``."""
    if may(actor.user.role, verb):
        return
    audit(ctx, actor.user.name, actor.user.role, f"denied:{verb}", target,
          {"client": actor.client, **(detail or {})})
    raise ApiError(403, f"role {actor.user.role} may not {verb}")


def require_person(ctx: ServiceContext, actor: Actor, verb: str, target: str) -> None:
    """403 (audited, reason ``bearer``) for an API token: a second person's decision (a replay
    grant, a deletion's approval or execution) is made by that person logged in.  An account
    holding ``tokens.manage`` mints tokens for other accounts: a token of the compliance
    officer's would let an admin approve their own request under that officer's name."""
    if actor.via != "token":
        return
    audit(ctx, actor.user.name, actor.user.role, f"denied:{verb}", target,
          {"client": actor.client, "reason": "bearer"})
    raise ApiError(403, "a second person's decision is made logged in, never with an API token")


async def login(request: Request) -> Response:
    ctx = ctx_of(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "login takes a JSON body")
    from pbx_recorder.service.json_body import read_capped  # json_body imports this module

    body = await read_capped(request, MAX_LOGIN_BODY)  # 413 past it, never read to the end first
    try:
        data = json.loads(body)
        name, password = data["name"], data["password"]
        if not isinstance(name, str) or not isinstance(password, str):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # (nesting past the stack)
        raise ApiError(400, 'login takes {"name": ..., "password": ...}') from exc
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_login, request, ctx, name, password)


def _login(request: Request, ctx: ServiceContext, name: str, password: str) -> Response:
    try:
        return _login_checked(request, ctx, name, password)
    finally:
        ctx.release()


def _login_checked(request: Request, ctx: ServiceContext, name: str, password: str) -> Response:
    client = client_ip(request, ctx.web.trusted_proxies)
    conn = ctx.catalog.connection()
    sessions.end(conn, request.cookies.get(cookie_name(ctx)))  # whatever was presented: never reused
    check_client_limit(ctx, client, name)  # (the attempt counted from here on)
    enrolled = totp.TotpStore(conn, None, ctx.access_seal).state(name) == "enrolled"
    try:
        user = ctx.accounts().authenticate(name, password, client=client, now=ctx.clock(),
                                           second_factor=enrolled)
    except LoginRefused as exc:
        raise ApiError(401, str(exc)) from exc
    login_limit.passed(conn, client, ctx.clock())
    stage = "totp" if enrolled else "enrol" if user.role in ctx.web.totp_required_roles else "ok"
    return session_response(ctx, user, client, stage)


def check_client_limit(ctx: ServiceContext, client: str, name: str) -> None:
    """429 (audited) once the client address has failed too many logins in the window; else the
    attempt is counted (``login_limit.begin``) and the caller writes ``login_limit.passed`` once
    its password or code is right."""
    retry = login_limit.begin(ctx.catalog.connection(), client, ctx.clock(), ctx.web)
    if retry is not None:
        audit(ctx, login_limit.actor_of_client(client), "", "throttled:login", name[:64], {"client": client})
        raise ApiError(429, "too many failed logins from this address; try again later",
                       headers={"Retry-After": str(retry)})


def session_response(ctx: ServiceContext, user: User, client: str, stage: str) -> Response:
    """A new session of ``user`` at ``stage``, its cookie and (once) its CSRF token."""
    token, csrf = sessions.create(ctx.catalog.connection(), user.name, client, ctx.clock(),
                                  idle=ctx.web.idle_timeout_s, absolute=ctx.web.absolute_timeout_s,
                                  stage=stage, seal=ctx.access_seal)
    response = JSONResponse({"user": user.name, "role": user.role, "teams": list(user.teams),
                             "csrf_token": csrf, "stage": stage})
    response.set_cookie(cookie_name(ctx), token, max_age=ctx.web.absolute_timeout_s, path="/",
                        secure=over_tls(ctx), httponly=True, samesite="strict")
    return response


def logout(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request, ANY_STAGE)
    sessions.end_hash(ctx.catalog.connection(), actor.session.id_hash)
    audit(ctx, actor.user.name, actor.user.role, "logout", actor.user.name, {"client": actor.client})
    response = JSONResponse({"ok": True})
    response.delete_cookie(cookie_name(ctx), path="/", secure=over_tls(ctx), httponly=True,
                           samesite="strict")
    return response


def whoami(request: Request) -> Response:
    actor = actor_of(request)
    return JSONResponse({"user": actor.user.name, "role": actor.user.role, "teams": list(actor.user.teams)})
