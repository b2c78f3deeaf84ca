"""Reading a small JSON object body (every endpoint that takes one)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from pbx_recorder.service.auth import ApiError

MAX_BODY = 16384


def parse_object(content_type: str, body: bytes, limit: int = MAX_BODY) -> dict[str, Any]:
    """``body`` as a JSON object: 415 unless sent as application/json (a cross-site form cannot),
    413 past ``limit``, 400 unless an object.  Called after the session and CSRF checks where the
    endpoint reads the body first (an anonymous request learns nothing from it)."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "takes a JSON body")
    if len(body) > limit:
        raise ApiError(413, "body too large")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, "body is not JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "body is not a JSON object")
    return data


async def read_json(request: Request) -> dict[str, Any]:
    """The request's body through :func:`parse_object`."""
    return parse_object(request.headers.get("content-type", ""), await request.body())
