"""Reading a small JSON object body (the admin, token and replay endpoints)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from pbx_recorder.service.auth import ApiError

MAX_BODY = 16384


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object: 415 unless sent as application/json (a cross-site form cannot),
    413 past :data:`MAX_BODY`, 400 unless an object."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "takes a JSON body")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, "body too large")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, "body is not JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "body is not a JSON object")
    return data
