"""The console's routes (added to the service by ``build_app``).

    GET  /login                    login page (JS posts JSON to /api/login, then goes to ``next``)
    GET  /  and  /calls            search page (GET form: the filter lives in the URL)
    GET  /calls/{call_id}          call page (404 page out of scope or absent)
    POST /api/me/lang              JSON {"lang"}: the user's language (CSRF)
    GET  /api/searches             the user's saved searches
    POST /api/searches             JSON {"name", "query"}: save (CSRF)
    DELETE /api/searches/{name}    delete (CSRF)
    GET  /static/...               CSS and JS of the console
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pbx_recorder.web import call_page, login_page, preferences, saved_searches, search_page

STATIC = Path(__file__).parent / "static"


def routes(sync: Callable[[Callable[[Request], Response]], Any]) -> list[BaseRoute]:
    """``sync`` wraps a synchronous endpoint so that it gives its catalog connection back."""
    return [
        Route("/login", login_page.login, methods=["GET"]),
        Route("/", sync(search_page.search), methods=["GET"]),
        Route("/calls", sync(search_page.search), methods=["GET"]),
        Route("/calls/{call_id}", sync(call_page.call), methods=["GET"]),
        Route("/api/me/lang", preferences.save_lang, methods=["POST"]),
        Route("/api/searches", sync(saved_searches.list_searches), methods=["GET"]),
        Route("/api/searches", saved_searches.save_search, methods=["POST"]),
        Route("/api/searches/{name}", sync(saved_searches.delete_search), methods=["DELETE"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
