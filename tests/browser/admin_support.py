"""Fixtures of the admin-page browser test: a console over the seeded catalog (uvicorn on a free
port) and a headless chromium (``tests/browser/driving.py``), a login made by the page's own
origin through ``POST /api/login`` (so the test does not depend on the login page's markup)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.driving import make_driver, screenshot, serve
from tests.peers.service_support import CHEAP, Clock, seed


@pytest.fixture(scope="module")
def admin_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from pbx_recorder.catalog import Catalog
    from pbx_recorder.service.app import build_app
    from pbx_recorder.service.context import ServiceContext

    seeded = seed(tmp_path_factory.mktemp("admin-console"))
    clock = Clock()
    ctx = ServiceContext(Catalog(seeded.db, clock=clock), {"hot": seeded.tier}, hasher=CHEAP, clock=clock)
    with serve(build_app(ctx)) as base:
        yield base, seeded.db
    ctx.catalog.close()


@pytest.fixture
def admin_browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    driver = make_driver()
    try:
        yield driver
        screenshot(driver, request.node.name, full=True)
    finally:
        driver.quit()


def api_login(driver: Any, base: str, name: str, password: str) -> int:
    """Log in over the API and hand the session cookie to the browser (every page of this
    origin but the console's own forbids a script's fetch: ``connect-src 'none'``)."""
    import urllib.error
    import urllib.request

    body = json.dumps({"name": name, "password": password}).encode()
    req = urllib.request.Request(f"{base}/api/login", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:  # noqa: S310 (a local test server)
            cookie = answer.headers["set-cookie"].split(";")[0]
            status = answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    key, _, value = cookie.partition("=")
    driver.get(f"{base}/static/admin_users.js")
    driver.delete_all_cookies()
    driver.add_cookie({"name": key, "value": value, "path": "/"})
    return int(status)
