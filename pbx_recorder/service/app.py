"""The operator service's ASGI application (Starlette), run by ``pbx-recorder serve`` (uvicorn).

    POST /api/login                          JSON {name, password} -> session cookie + CSRF token
    POST /api/logout                         (CSRF)
    GET  /api/session                        who is logged in
    GET  /api/calls                          search (scoped, masked, number searches throttled)
    GET  /api/calls/{call_id}                one call (404 out of scope or absent)
    GET  /api/recordings/{recording_id}/audio  audio with Range (play; ?download=1)
    the console's pages and their JSON helpers: pbx_recorder.web.console.routes
    the player page, peaks, restore, marks: pbx_recorder.web.player.routes
    POST /api/calls/{call_id}/pause|resume   PCI pause of a live call (api_pause.py)
    GET  /api/audit, /api/audit/export.csv, /api/audit/chain, page /audit   (api_audit.py)
    GET  /api/health, page /health           (api_health.py)
    POST/GET /api/exports..., page /exports  (api_exports.py, web/exports_page.py)

Every answer is JSON (``{"error": ...}`` on failure) except the audio, and carries headers that
keep it out of caches and frames.  A request body past its route's limit is refused (413) before
anything else runs (``body_limit.py``).  On a console page path (anything outside ``/api/``) a 401
becomes a redirect to ``/login?next=...`` and other refusals an error page.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pbx_recorder.errors import CatalogError
from pbx_recorder.exports import runner as export_runner
from pbx_recorder.service import (
    api_audio,
    api_audit,
    api_calls,
    api_disposal,
    api_erasure,
    api_exports,
    api_health,
    api_holds,
    api_pause,
    api_qa,
    api_qa_reviews,
    api_qa_scorecards,
    api_replay,
    api_reports,
    api_retention,
    api_tags,
    api_tokens,
    api_totp,
    api_users,
    auth,
)
from pbx_recorder.service.accounts import dummy_hash
from pbx_recorder.service.auth import ApiError
from pbx_recorder.service.body_limit import BodyLimit
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.credential_gate import CredentialGate
from pbx_recorder.web import (
    account_page,
    admin_teams_page,
    admin_tokens_page,
    admin_users_page,
    console,
    disposal_pages,
    exports_page,
    pages_ops,
    player,
    qa_pages,
    replay_page,
    reports_page,
    storage_page,
)
from pbx_recorder.web import errors as web_errors

log = logging.getLogger(__name__)

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` (and HSTS under TLS) to every response that lacks them."""

    def __init__(self, app: ASGIApp, tls: bool = False) -> None:
        self.app, self.tls = app, tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = SECURITY_HEADERS + ((b"strict-transport-security", b"max-age=31536000"),) \
                    if self.tls else SECURITY_HEADERS
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await sending(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            # Starlette's own 500 is sent outside every middleware, without these headers: the
            # 500 is sent here (the error goes on to the server, which logs it)
            if not started:
                await sending({"type": "http.response.start", "status": 500,
                               "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await sending({"type": "http.response.body", "body": b"Internal Server Error"})
            raise


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if web_errors.is_page(request):  # the console: a login redirect or an error page
        return await run_in_threadpool(web_errors.page_api_error, request, exc)
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


async def _catalog_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s", request.method, request.url.path, exc)
    if web_errors.is_page(request):
        return await run_in_threadpool(web_errors.error_page, request, 503)
    return JSONResponse({"error": "catalog unavailable"}, status_code=503)


async def _http_error(request: Request, exc: Exception) -> Response:
    """No such route (404) or method (405): the console's page, or JSON under ``/api/``."""
    assert isinstance(exc, HTTPException)
    if web_errors.is_page(request):
        return await run_in_threadpool(web_errors.error_page, request, exc.status_code)
    return JSONResponse({"error": "not found" if exc.status_code == 404 else "method not allowed"},
                        status_code=exc.status_code, headers=exc.headers)


def _releasing(ctx: ServiceContext, endpoint: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """``endpoint`` (sync: Starlette runs it in a worker thread) giving back the thread's catalog
    connection when it returns (a streamed body reads no catalog)."""

    @functools.wraps(endpoint)
    def run(request: Request) -> Response:
        try:
            return endpoint(request)
        finally:
            ctx.release()

    return run


@contextlib.asynccontextmanager
async def _lifespan(ctx: ServiceContext, app: Starlette) -> AsyncIterator[None]:
    """While the service runs: the export folder swept every ``runner.SWEEP_EVERY_S`` (the file of
    an expired export, or one an erasure withdrew, goes on a quiet service too)."""
    task = asyncio.create_task(export_runner.sweep_every(ctx)) if export_runner.folder_of(ctx) else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def build_app(ctx: ServiceContext) -> Starlette:
    sync = functools.partial(_releasing, ctx)
    routes = [
        Route("/api/login", auth.login, methods=["POST"]),  # async; releases in its worker thread
        Route("/api/logout", sync(auth.logout), methods=["POST"]),
        Route("/api/session", sync(auth.whoami), methods=["GET"]),
        Route("/api/calls", sync(api_calls.search), methods=["GET"]),
        Route("/api/calls/{call_id}", sync(api_calls.show), methods=["GET"]),
        Route("/api/recordings/{recording_id}/audio", sync(api_audio.audio), methods=["GET"]),
        *player.routes(sync),  # the player page, peaks, restore, marks (pbx_recorder.web.player)
    ]
    routes += console.routes(sync)
    routes += api_totp.routes(sync)
    routes += api_tokens.routes(sync)
    routes += api_users.routes(sync)
    routes += api_replay.routes(sync)
    routes += admin_users_page.routes(sync)
    routes += admin_teams_page.routes(sync)
    routes += admin_tokens_page.routes(sync)
    routes += api_pause.routes(sync) + api_audit.routes(sync) + api_health.routes(sync)
    routes += pages_ops.routes(sync)
    routes += replay_page.routes(sync)
    routes += account_page.routes(sync)
    routes += api_disposal.routes(sync) + api_erasure.routes(sync)
    routes += api_holds.routes(sync) + api_retention.routes(sync)
    routes += disposal_pages.routes(sync)
    routes += api_qa.routes(sync) + api_qa_scorecards.routes(sync) + api_qa_reviews.routes(sync)
    routes += api_tags.routes(sync) + qa_pages.routes(sync)
    routes += api_reports.routes(sync) + reports_page.routes(sync) + storage_page.routes(sync)
    routes += api_exports.routes(sync) + exports_page.routes(sync)
    # BodyLimit is the first to see the body: SecurityHeaders, outside it, only adds headers to
    # the answers (the 413 too); the credential gate and every endpoint come after it
    app = Starlette(routes=routes, lifespan=functools.partial(_lifespan, ctx),
                    middleware=[Middleware(SecurityHeaders, tls=auth.over_tls(ctx)),
                                               Middleware(BodyLimit),
                                               Middleware(CredentialGate, cookie=auth.cookie_name(ctx))],
                    exception_handlers={ApiError: _api_error, CatalogError: _catalog_error,
                                        404: _http_error, 405: _http_error})
    app.state.ctx = ctx
    dummy_hash(ctx.hasher)  # made now: the first unknown name costs no more than a known one
    export_runner.on_start(ctx)  # the export folder checked, jobs of a dead process failed
    return app
