"""The console's routes (added to the service by ``build_app``).

    GET  /login                    login page (JS posts JSON to /api/login, then goes to ``next``)
    GET  /  and  /calls            search page (GET form: the filter lives in the URL)
    GET  /calls/{call_id}          call page (404 page out of scope or absent)
    POST /api/me/lang              JSON {"lang"}: the user's language (CSRF)
    GET  /api/searches             the user's saved searches (audited ``searches.list``)
    POST /api/searches             JSON {"name", "query"}: save (CSRF)
    DELETE /api/searches/{name}    delete (CSRF)
    GET  /static/...               CSS and JS of the console
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pbx_recorder.service import list_audit
from pbx_recorder.service.auth import actor_of, ctx_of
from pbx_recorder.web import call_page, login_page, preferences, saved_searches, search_page

STATIC = Path(__file__).parent / "static"


def list_searches(request: Request) -> Response:
    """``GET /api/searches``: :func:`saved_searches.list_searches` (the session and ``calls.view``
    checked there, a refusal audited there alone), then the read's one ``searches.list`` row: a
    saved query, opened for its owner, can name a number (last 4, or typed in a keyword), an
    agent.  (Kept out of ``saved_searches.py`` while that file is being changed; the row can move
    into ``list_searches`` itself.)"""
    answer = saved_searches.list_searches(request)
    count = len(json.loads(bytes(answer.body)).get("searches", []))
    list_audit.listed(ctx_of(request), actor_of(request), list_audit.SAVED_SEARCHES, "", count)
    return answer


def routes(sync: Callable[[Callable[[Request], Response]], Any]) -> list[BaseRoute]:
    """``sync`` wraps a synchronous endpoint so that it gives its catalog connection back."""
    return [
        Route("/login", login_page.login, methods=["GET"]),
        Route("/", sync(search_page.search), methods=["GET"]),
        Route("/calls", sync(search_page.search), methods=["GET"]),
        Route("/calls/{call_id}", sync(call_page.call), methods=["GET"]),
        Route("/api/me/lang", preferences.save_lang, methods=["POST"]),
        Route("/api/searches", sync(list_searches), methods=["GET"]),
        Route("/api/searches", saved_searches.save_search, methods=["POST"]),
        Route("/api/searches/{name}", sync(saved_searches.delete_search), methods=["DELETE"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
