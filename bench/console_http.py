"""The HTTP side of bench_console.py: uvicorn in this process on a free port, a keep-alive client
with a session cookie, and a sampler of the process's resident set.

Client and server share this process (and its GIL), as the brief asks: the client's own cost
(``http.client``, a few tens of microseconds per request) is inside every HTTP figure.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from typing import Any

import uvicorn


class LiveServer:
    """``app`` served by uvicorn in a thread of this process; ``port`` once it answers."""

    def __init__(self, app: Any) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:  # a free port, as
            probe.bind(("127.0.0.1", 0))  # `serve` binds host and port (uvicorn's own listener)
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="off", timeout_keep_alive=3600)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise SystemExit("uvicorn did not start")
            time.sleep(0.01)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Client:
    """One keep-alive connection; ``login`` keeps the session cookie for every later request."""

    def __init__(self, port: int) -> None:
        self.port, self.cookie = port, ""
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def login(self, name: str, password: str) -> None:
        body = json.dumps({"name": name, "password": password})
        self.conn.request("POST", "/api/login", body, {"Content-Type": "application/json"})
        answer = self.conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"login as {name}: HTTP {answer.status}")
        self.cookie = answer.getheader("set-cookie", "").split(";")[0]

    def get(self, path: str) -> tuple[float, bytes]:
        """(milliseconds for the whole answer, its body); anything but 200 stops the bench."""
        t0 = time.perf_counter()
        self.conn.request("GET", path, headers={"Cookie": self.cookie})
        answer = self.conn.getresponse()
        body = answer.read()
        ms = (time.perf_counter() - t0) * 1000
        if answer.status != 200:
            raise SystemExit(f"GET {path}: HTTP {answer.status} {body[:200]!r}")
        return ms, body

    def first_byte(self, path: str, range_from: int | None = None) -> float:
        """Milliseconds from sending the request (connection already open) to the first body
        byte; the rest of the answer is not read (a player that seeks drops it the same way)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.connect()
        headers = {"Cookie": self.cookie}
        if range_from is not None:
            headers["Range"] = f"bytes={range_from}-"
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        first = answer.read(1)
        ms = (time.perf_counter() - t0) * 1000
        conn.close()
        if answer.status not in (200, 206) or len(first) != 1:
            raise SystemExit(f"GET {path}: HTTP {answer.status}")
        return ms

    def stream(self, path: str) -> tuple[float, int]:
        """(seconds, bytes) for the whole answer read in 64 KiB blocks on a connection of its own."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        t0, size = time.perf_counter(), 0
        conn.request("GET", path, headers={"Cookie": self.cookie})
        answer = conn.getresponse()
        while block := answer.read(65536):
            size += len(block)
        conn.close()
        return time.perf_counter() - t0, size


class PeakRss:
    """The process's resident set sampled every 5 ms while a ``with`` block runs: peak - start."""

    def __enter__(self) -> PeakRss:
        self.start = self.peak = _rss()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def grown_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
