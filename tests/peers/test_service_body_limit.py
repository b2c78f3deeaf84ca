"""Request bodies past their route's limit: refused (413, connection closed) before they are read
(``Content-Length``) or as soon as they pass the limit (chunked), by the first middleware and by
every body reader; the app never holds more than the limit.  Normal requests are unaffected."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.requests import Request

from pbx_recorder.service.app import build_app
from pbx_recorder.service.auth import ApiError
from pbx_recorder.service.body_limit import DEFAULT_BODY, LARGE_BODY, LOGIN_BODY, BodyLimit, limit_for
from pbx_recorder.service.json_body import read_capped
from pbx_recorder.web import preferences

TEN_MIB = 10 * 1024 * 1024
CHUNK = 1024


class Body:
    """An ASGI ``receive`` sending ``total`` bytes of JSON blanks in ``chunk``-byte pieces (made
    lazily: the test itself holds one piece), counting what was taken from it."""

    def __init__(self, total: int, chunk: int = CHUNK) -> None:
        self.left, self.piece, self.pulled = total, b" " * chunk, 0

    async def __call__(self) -> dict[str, Any]:
        if self.left <= 0:
            await asyncio.sleep(0)
            return {"type": "http.disconnect"}
        piece = self.piece[:self.left]
        self.left -= len(piece)
        self.pulled += len(piece)
        return {"type": "http.request", "body": piece, "more_body": self.left > 0}


def _scope(path: str, headers: dict[str, str], method: str = "POST") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("192.0.2.7", 50000), "server": ("testserver", 80)}


async def _call(app: Any, scope: dict[str, Any], body: Body) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, body, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), content


JSON = {"content-type": "application/json"}


async def test_an_announced_ten_mib_login_body_is_refused_before_a_byte_is_read(seeded_service) -> None:  # type: ignore[no-untyped-def]
    app = build_app(seeded_service.ctx)
    body = Body(TEN_MIB)
    scope = _scope("/api/login", {**JSON, "content-length": str(TEN_MIB)})
    status, headers, content = await _call(app, scope, body)
    assert status == 413 and headers[b"connection"] == b"close" and b"too large" in content
    assert body.pulled == 0
    assert headers[b"x-content-type-options"] == b"nosniff"  # the security headers still apply


async def test_a_chunked_ten_mib_login_body_is_refused_with_bounded_memory(seeded_service) -> None:  # type: ignore[no-untyped-def]
    app = build_app(seeded_service.ctx)
    body = Body(TEN_MIB)
    tracemalloc.start()
    try:
        status, headers, _ = await _call(app, _scope("/api/login", JSON), body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413 and headers[b"connection"] == b"close"
    assert body.pulled <= LOGIN_BODY + CHUNK  # stopped at the limit, not read to the end
    assert peak < 1024 * 1024  # the body never sat in memory (10 MiB before)


async def test_the_app_behind_the_gate_never_receives_more_than_the_limit() -> None:
    delivered = 0

    async def greedy(scope: Any, receive: Any, send: Any) -> None:  # reads everything it is given
        nonlocal delivered
        while True:
            message = await receive()
            delivered += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read"})

    status, _, _ = await _call(BodyLimit(greedy), _scope("/api/login", JSON), Body(TEN_MIB, 3000))
    assert status == 413 and delivered <= LOGIN_BODY
    delivered = 0
    status, _, content = await _call(BodyLimit(greedy), _scope("/api/login", JSON), Body(LOGIN_BODY, 1000))
    assert status == 200 and content == b"read" and delivered == LOGIN_BODY  # at the limit: passes


async def test_a_body_reader_stops_at_its_own_cap_below_the_route_limit(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client, csrf = seeded_service.login("alice")
    app = build_app(seeded_service.ctx)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    headers = {**JSON, "cookie": cookie, "x-csrf-token": csrf}
    body = Body(TEN_MIB)
    status, found, _ = await _call(app, _scope("/api/me/lang", headers), body)
    assert status == 413 and found[b"connection"] == b"close"
    assert body.pulled <= preferences.MAX_BODY + CHUNK < DEFAULT_BODY  # the endpoint's cap, not the route's


async def test_read_capped_refuses_a_declared_length_unread_and_streams_up_to_the_cap() -> None:
    body = Body(TEN_MIB)
    with pytest.raises(ApiError) as refused:
        await read_capped(Request(_scope("/x", {"content-length": str(TEN_MIB)}), body), 2048)
    assert refused.value.status == 413 and body.pulled == 0
    body = Body(TEN_MIB)
    with pytest.raises(ApiError):
        await read_capped(Request(_scope("/x", {}), body), 2048)
    assert body.pulled <= 2048 + CHUNK
    assert await read_capped(Request(_scope("/x", {}), Body(2048)), 2048) == b" " * 2048


def test_limits_are_small_by_default_and_larger_only_where_a_route_needs_it() -> None:
    assert limit_for("POST", "/api/login") == LOGIN_BODY
    assert limit_for("POST", "/api/searches") == DEFAULT_BODY
    assert limit_for("POST", "/api/tags/bulk") == LARGE_BODY
    assert limit_for("POST", "/api/calls/c-1/reviews") == LARGE_BODY
    assert limit_for("PUT", "/api/qa/reviews/7") == LARGE_BODY
    assert limit_for("POST", "/api/qa/scorecards") == LARGE_BODY
    assert limit_for("POST", "/api/calls/c-1/reviews/x") == DEFAULT_BODY


def test_normal_requests_are_unaffected(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client, csrf = seeded_service.login("root-admin")  # login with its Content-Length
    hdr = {"X-CSRF-Token": csrf}
    assert client.post("/api/me/lang", json={"lang": "zh"}, headers=hdr).json() == {"lang": "zh"}
    saved = client.post("/api/searches", json={"name": "mine", "query": "agent=alice"}, headers=hdr)
    assert saved.status_code == 200, saved.text
    big = client.post("/api/tags/bulk", json={"pad": "x" * 40_000}, headers=hdr)  # a large route
    assert big.status_code != 413 and "too large" not in big.text
    small = client.post("/api/searches", json={"pad": "x" * 40_000}, headers=hdr)  # a default one
    assert small.status_code == 413


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(seeded_service) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The app under uvicorn (which has no body limit of its own) on a local port."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(seeded_service.ctx), host="127.0.0.1", port=port,
                                           log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(timeout=30)


def _answer_and_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails the test)."""
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("chunked", [False, True])
def test_uvicorn_answers_413_and_closes_the_connection(served: int, chunked: bool) -> None:
    head = "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", served)) as sock:
        if chunked:  # more than the limit, then the client waits: the server must not
            piece = b" " * 2048
            sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode()
                         + b"".join(b"800\r\n" + piece + b"\r\n" for _ in range(4)))
        else:
            sock.sendall((head + f"Content-Length: {TEN_MIB}\r\n\r\n").encode())
        answer = _answer_and_close(sock)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer.lower()


def test_a_mark_body_past_its_own_cap_is_refused(seeded_service) -> None:  # type: ignore[no-untyped-def]
    # the marks endpoint reads through read_capped (8 KiB, below the route's 16 KiB)
    client, _ = seeded_service.login("lead-red")
    answer = client.post("/api/calls/c-red-1/marks", content=b"{" + b" " * 12_000 + b"}",
                         headers={"content-type": "application/json", "x-csrf-token": "x"})
    assert answer.status_code == 413
