"""Fixtures of the player's browser test: the operator service on a free port (uvicorn in a thread)
over the seeded catalog plus a 10-minute stereo recording, Debian's chromium driven by Selenium,
and a login that hands the browser the session cookie.

Kept out of ``tests/browser/conftest.py`` (helper "pages" owns it): this module is self-contained,
so the player's test runs with or without that conftest."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers.player_support import put_wav
from tests.peers.service_support import PASSWORD, Service, make_service

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
LONG_S = 600  # 10 minutes of stereo 8 kHz: 19 MB, more than a browser fetches for a first play


@dataclass
class Console:
    base: str
    service: Service
    requests: list[tuple[str, str]]  # (path, Range header) of every request, as the server saw it

    def login(self, name: str) -> tuple[str, str]:
        """(session cookie value, CSRF token) of a fresh session of ``name``."""
        req = urllib.request.Request(self.base + "/api/login", method="POST",
                                     data=json.dumps({"name": name, "password": PASSWORD}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as answer:  # noqa: S310 (our own server)
            cookie = answer.headers["set-cookie"].split(";")[0].split("=", 1)[1]
            return cookie, json.loads(answer.read())["csrf_token"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def player_console(tmp_path: Path) -> Iterator[Console]:
    import uvicorn

    from pbx_recorder.service.app import build_app

    service = make_service(tmp_path)
    start = 1_800_000_000.0 - 3600
    manifest = json.dumps({"recorded_from": start, "pauses": [[start + 120, start + 150]]})  # PCI
    put_wav(service, "c-red-1", "r-long", LONG_S, 2, caller_from=20, agent_until=400, manifest=manifest)
    put_wav(service, "c-red-2", "r-gaps", 60, 1, caller_from=15)  # 15 s of silence first
    port = _free_port()
    seen: list[tuple[str, str]] = []
    app = build_app(service.ctx)  # type: ignore[arg-type]

    async def logged(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            seen.append((scope["path"], headers.get(b"range", b"").decode("latin-1")))
        await app(scope, receive, send)

    server = uvicorn.Server(uvicorn.Config(logged, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="player-console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "console did not start"
        time.sleep(0.05)
    try:
        yield Console(f"http://127.0.0.1:{port}", service, seen)
    finally:
        server.should_exit = True
        thread.join(30)
        service.ctx.catalog.close()  # type: ignore[attr-defined]


@pytest.fixture
def chromium() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1300,900", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=DriverService("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(driver, console: Console, name: str) -> str:  # type: ignore[no-untyped-def]
    """The browser holds ``name``'s session cookie (HttpOnly, as the login sets it); the CSRF token."""
    cookie, csrf = console.login(name)
    driver.get(console.base + "/static/player.css")  # any page of the origin, to set its cookie
    driver.add_cookie({"name": "pbxr_session", "value": cookie, "path": "/", "httpOnly": True,
                       "sameSite": "Strict"})
    return csrf


def audio_ranges(console: Console, rid: str) -> list[str]:
    """The Range headers of the browser's requests for ``rid``'s audio (the server's request log;
    the audit row of each has the same range, its digits masked by the audit's number scrubber)."""
    return [r for path, r in console.requests if path == f"/api/recordings/{rid}/audio"]
