"""What a page path answers when the service refuses: a redirect to the login page (401), or an
error page (403, 404 ...) that says no more than the status.  A path under ``/api/`` keeps its
JSON answer.  Out of scope and absent are the same 404 page (the audit row tells them apart)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pbx_recorder.service.auth import Actor, ApiError, actor_of, ctx_of
from pbx_recorder.web.render import page

KNOWN = (400, 403, 404, 429, 503)


def is_page(request: Request) -> bool:
    path = request.url.path
    return not (path == "/api" or path.startswith("/api/"))


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site (``/...``), else ``/``: no open redirect."""
    if not target or len(target) > 2048 or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 0x20 or c == "\x7f" for c in target):
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


def login_redirect(request: Request) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(safe_next(here), safe='')}", status_code=303)


def _actor_or_none(request: Request) -> Actor | None:
    try:
        return actor_of(request)
    except ApiError:
        return None


def error_page(request: Request, status: int, headers: dict[str, str] | None = None) -> Response:
    """The page for ``status`` (its texts only, never the refusal's message)."""
    ctx = ctx_of(request)
    try:
        shown = status if status in KNOWN else 400
        response = page(request, "error.html", _actor_or_none(request), status=status, code=shown)
    finally:
        ctx.release()
    if headers and "Retry-After" in headers:
        response.headers["Retry-After"] = headers["Retry-After"]
    return response


def page_api_error(request: Request, exc: ApiError) -> Response:
    if exc.status == 401:
        return login_redirect(request)
    return error_page(request, exc.status, exc.headers)
