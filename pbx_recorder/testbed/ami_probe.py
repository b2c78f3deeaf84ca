"""A tiny blocking AMI client for the test bed (not the product's AMI adapter).

It logs in, collects every event on a background thread, and lets a test or benchmark
wait for an event matching a predicate, with a bound.  Values are kept as sent.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable

Event = dict[str, str]


class AmiProbe:
    def __init__(self, host: str, port: int, username: str, secret: str, timeout: float = 10.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._file = self._sock.makefile("rb")
        self._cond = threading.Condition()
        self.events: list[tuple[float, Event]] = []
        self._responses: dict[str, Event] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name="ami-probe", daemon=True)
        try:  # (Asterisk still booting: a refused or silent login must not leave the socket open)
            self._file.readline()  # banner: "Asterisk Call Manager/x.y", within ``timeout``
            self._sock.settimeout(None)
            self._reader.start()
            reply = self.action({"Action": "Login", "Username": username, "Secret": secret}, timeout)
            if reply.get("Response") != "Success":
                raise ConnectionError(f"AMI login refused: {reply.get('Message', '')}")
        except BaseException:
            self.close()
            raise

    def _read_loop(self) -> None:
        frame: Event = {}
        try:
            for raw in self._file:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line:
                    key, _, value = line.partition(":")
                    frame.setdefault(key.strip(), value.strip())
                    continue
                if not frame:
                    continue
                with self._cond:
                    if "Event" in frame:
                        self.events.append((time.monotonic(), frame))
                    elif "ActionID" in frame:
                        self._responses[frame["ActionID"]] = frame
                    self._cond.notify_all()
                frame = {}
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def action(self, fields: dict[str, str], timeout: float = 10.0) -> Event:
        action_id = f"probe-{next(self._ids)}"
        lines = [f"{k}: {v}" for k, v in fields.items()] + [f"ActionID: {action_id}", "", ""]
        self._sock.sendall("\r\n".join(lines).encode())
        deadline = time.monotonic() + timeout
        with self._cond:
            while action_id not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise TimeoutError(f"no AMI response to {fields.get('Action')}")
                self._cond.wait(left)
            return self._responses.pop(action_id)

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
                    raise TimeoutError("AMI event not seen in time")
                self._cond.wait(left)

    def find(self, match: Callable[[Event], bool]) -> list[tuple[float, Event]]:
        with self._cond:
            return [(t, e) for t, e in self.events if match(e)]

    @property
    def local_port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        try:
            self._sock.sendall(b"Action: Logoff\r\n\r\n")
        except OSError:
            pass
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self._reader.is_alive():
            self._reader.join(timeout=2)
        # The line reader holds a reference to the socket: without closing it too the descriptor
        # stays open until the garbage collector finds it (a ResourceWarning in whichever test runs).
        self._file.close()
