"""The service's first gate on request bodies: no body larger than its route needs ever reaches an
endpoint, whoever sends it (``/api/login`` is open to anyone, and uvicorn itself has no limit).

* A ``Content-Length`` above the route's limit is answered 413 before a byte of the body is read
  (uvicorn sends no ``100 Continue``, so a polite client never sends it).
* A body without one (chunked) is counted as it arrives; the piece that passes the limit is not
  handed on, the endpoint stops, and the answer is 413.
* Either 413 carries ``Connection: close``: the rest of the body is never read.

The limits are a visible table, :func:`limit_for`: small by default, bigger only for the few routes
whose JSON bodies are bigger (QA reviews, scorecards, bulk tagging).  There is no upload route.  An
endpoint may still refuse a smaller body than its route's limit here (its own check, after the
session's); the body readers (:func:`pbx_recorder.service.json_body.read_capped`) read with the
same cap, chunk by chunk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGIN_BODY = 4 * 1024  #: ``POST /api/login``: a name and a password
DEFAULT_BODY = 16 * 1024  #: every other route (most JSON bodies are a few hundred bytes)
LARGE_BODY = 64 * 1024  #: the routes below
#: (method, path) of the routes whose limit is not :data:`DEFAULT_BODY`, with that limit
ROUTE_LIMITS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("POST", re.compile(r"/api/login"), LOGIN_BODY),
    ("POST", re.compile(r"/api/tags/bulk"), LARGE_BODY),  # api_tags._bulk: 64 KiB
    ("POST", re.compile(r"/api/calls/[^/]+/reviews"), LARGE_BODY),  # api_qa_reviews.MAX_BODY
    ("PUT", re.compile(r"/api/qa/reviews/[^/]+"), LARGE_BODY),  # api_qa_reviews.MAX_BODY
    ("POST", re.compile(r"/api/qa/scorecards"), LARGE_BODY),  # api_qa_scorecards.MAX_BODY (32 KiB)
)
TOO_LARGE = json.dumps({"error": "request body too large"}).encode()


def limit_for(method: str, path: str) -> int:
    """The most body bytes a request to ``method path`` may carry.  Pure."""
    for want, pattern, limit in ROUTE_LIMITS:
        if method == want and pattern.fullmatch(path):
            return limit
    return DEFAULT_BODY


def declared_length(value: str | None) -> int | None:
    """``Content-Length`` as a number (None when absent or not plain ASCII digits)."""
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def route_path(scope: Scope) -> str:
    """The path routes match on (without a ``root_path`` prefix, as Starlette's router)."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root):] if root and path.startswith(root) else path


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class BodyTooLarge(Exception):
    """Raised by the counting ``receive`` once a body passes its limit: a signal to
    :class:`BodyLimit` (which answers 413), not an error of the application."""


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["method"], route_path(scope))
        declared = declared_length(_header(scope.get("headers", ()), b"content-length"))
        if declared is not None and declared > limit:
            await _refuse(send)
            return
        received = 0
        started = False

        async def counting() -> Message:
            nonlocal received
            if received > limit:  # asked again after the refusal: still refused
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except BodyTooLarge:
            if started:  # an answer already began: the server closes the connection
                raise
            await _refuse(send)


async def _refuse(send: Send) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(TOO_LARGE)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": TOO_LARGE})
