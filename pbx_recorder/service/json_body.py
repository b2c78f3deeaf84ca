"""Reading a small JSON object body (every endpoint that takes one): chunk by chunk, never past a
cap (:mod:`pbx_recorder.service.body_limit` refuses bigger bodies before any endpoint runs; these
readers hold the same line on their own)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from pbx_recorder.service.auth import ApiError
from pbx_recorder.service.body_limit import DEFAULT_BODY, declared_length

MAX_BODY = DEFAULT_BODY


def too_large() -> ApiError:
    """413; the connection is closed after it (the rest of the body is never read)."""
    return ApiError(413, "body too large", headers={"Connection": "close"})


def parse_object(content_type: str, body: bytes, limit: int = MAX_BODY) -> dict[str, Any]:
    """``body`` as a JSON object: 415 unless sent as application/json (a cross-site form cannot),
    413 past ``limit``, 400 unless an object.  Called after the session and CSRF checks where the
    endpoint reads the body first (an anonymous request learns nothing from it)."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "takes a JSON body")
    if len(body) > limit:
        raise too_large()
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested past the stack
        raise ApiError(400, "body is not JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "body is not a JSON object")
    return data


async def read_capped(request: Request, limit: int) -> bytes:
    """The request's body, at most ``limit`` bytes: 413 for a ``Content-Length`` above it before
    anything is read, and as soon as the bytes received pass it (a chunked body is not read to
    its end first)."""
    declared = declared_length(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The request's body (:func:`read_capped`) through :func:`parse_object`."""
    return parse_object(request.headers.get("content-type", ""), await read_capped(request, limit), limit)
