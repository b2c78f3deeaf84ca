"""The service's outer gate: a request that carries neither the session cookie nor an
``Authorization: Bearer`` header is answered before any endpoint runs (401 under ``/api/``, the
login redirect for a console page), so no endpoint parses a body or touches the catalog for an
anonymous client.  Only the login page, the login call and the static files are open.  Whether
the credential is valid is still for :func:`pbx_recorder.service.auth.actor_of` to decide."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/login", "/api/login"})
OPEN_PREFIXES = ("/static/",)


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class CredentialGate:
    def __init__(self, app: ASGIApp, cookie: str) -> None:
        self.app, self.cookie = app, cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.cookies.get(self.cookie) or request.headers.get("authorization", "").startswith("Bearer "):
            await self.app(scope, receive, send)
            return
        await self._refuse(request)(scope, receive, send)

    @staticmethod
    def _refuse(request: Request) -> Response:
        from pbx_recorder.web import errors as web_errors

        if web_errors.is_page(request):
            return web_errors.login_redirect(request)
        return JSONResponse({"error": "not logged in (or the session ended)"}, status_code=401)
