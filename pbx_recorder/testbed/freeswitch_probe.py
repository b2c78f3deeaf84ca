"""A tiny blocking ESL client for the test bed (not the product's ESL adapter).

It authenticates, subscribes to ``event plain ALL``, collects every event on a background
thread (with its arrival time), runs ``api`` commands, and can keep the raw bytes it read
(``tap``) so frames captured from the real FreeSWITCH become test fixtures.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import BinaryIO

Event = dict[str, str]


def parse_headers(block: bytes) -> Event:
    """``Name: value`` lines, values percent-decoded; the first occurrence of a name wins."""
    out: Event = {}
    for line in block.decode("utf-8", "replace").split("\n"):
        name, sep, value = line.partition(": ")
        if sep and name not in out:
            out[name] = urllib.parse.unquote(value)
    return out


class FsProbe:
    def __init__(self, host: str, port: int, password: str, timeout: float = 10.0,
                 events: str = "ALL", tap: BinaryIO | None = None) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.settimeout(None)
        self._buf = b""
        self._tap = tap
        self._cond = threading.Condition()
        self._replies: queue.Queue[tuple[Event, bytes]] = queue.Queue()
        self.events: list[tuple[float, Event]] = []
        self.disconnect_notice: Event | None = None
        self._closed = False
        greeting, _ = self._read_frame()
        if greeting.get("Content-Type") != "auth/request":
            self._sock.close()
            raise ConnectionError(f"no ESL auth/request greeting: {greeting}")
        self._reader = threading.Thread(target=self._read_loop, name="esl-probe", daemon=True)
        self._reader.start()
        reply = self.command(f"auth {password}", timeout)
        if reply[0].get("Reply-Text") != "+OK accepted":
            self.close()
            raise ConnectionError(f"ESL auth refused: {reply[0].get('Reply-Text')}")
        if events:
            self.command(f"event plain {events}", timeout)

    def _recv(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("ESL connection closed")
        if self._tap is not None:
            self._tap.write(chunk)
        self._buf += chunk

    def _read_frame(self) -> tuple[Event, bytes]:
        while b"\n\n" not in self._buf:
            self._recv()
        head, self._buf = self._buf.split(b"\n\n", 1)
        headers = parse_headers(head)
        length = int(headers.get("Content-Length", "0") or 0)
        while len(self._buf) < length:
            self._recv()
        body, self._buf = self._buf[:length], self._buf[length:]
        return headers, body

    def _read_loop(self) -> None:
        try:
            while True:
                headers, body = self._read_frame()
                kind = headers.get("Content-Type", "")
                if kind == "text/event-plain":
                    event = parse_headers(body.split(b"\n\n", 1)[0])
                    with self._cond:
                        self.events.append((time.monotonic(), event))
                        self._cond.notify_all()
                elif kind == "text/disconnect-notice":
                    self.disconnect_notice = headers
                elif kind in ("command/reply", "api/response"):
                    self._replies.put((headers, body))
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def command(self, line: str, timeout: float = 10.0) -> tuple[Event, bytes]:
        if "\n" in line or "\r" in line:
            raise ValueError("one ESL command line, no CR/LF")
        self._sock.sendall(line.encode() + b"\n\n")
        try:
            return self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no ESL reply to {line.split()[0]!r}") from None

    def api(self, line: str, timeout: float = 30.0) -> str:
        _, body = self.command(f"api {line}", timeout)
        return body.decode("utf-8", "replace").strip()

    def wait_event(self, match: Callable[[Event], bool], timeout: float, since: int = 0) -> Event:
        """First event (from index ``since``) for which ``match`` is true, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for _, event in self.events[since:]:
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise TimeoutError("ESL event not seen in time")
                self._cond.wait(left)

    def find(self, match: Callable[[Event], bool]) -> list[tuple[float, Event]]:
        with self._cond:
            return [(t, e) for t, e in self.events if match(e)]

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    @property
    def local_port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        try:
            self._sock.sendall(b"exit\n\n")
        except OSError:
            pass
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(timeout=2)
