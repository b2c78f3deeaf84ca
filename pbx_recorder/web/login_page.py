"""``GET /login``: the login form.  Its script posts JSON to ``/api/login`` and then goes to
``next`` when that is a path on this site (:func:`pbx_recorder.web.errors.safe_next`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pbx_recorder.web.errors import safe_next
from pbx_recorder.web.render import page


def login(request: Request) -> Response:
    return page(request, "login.html", None, next=safe_next(request.query_params.get("next")))
