"""A scripted outbound-socket server (what the dialplan's ``socket`` app connects to), for testing
the dialplan hand-off without the recorder daemon and for capturing real consent dialogues.

``FakeOutboundSocket(port, script)`` accepts connections on 127.0.0.1:port; for each it sends
``connect``, keeps the channel data of the reply in ``session.channel``, then runs
``script(session)``.  ``session.execute(app, arg)`` runs a dialplan application and waits for
its CHANNEL_EXECUTE_COMPLETE (after ``myevents``); ``session.command(line)`` sends one command.
Replies and events interleave on the socket and are told apart by Content-Type.  The bytes
FreeSWITCH sent are kept in ``session.raw`` (fixture capture).
"""

from __future__ import annotations

import queue
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable

from pbx_recorder.testbed.freeswitch_probe import Event, parse_headers


class OutboundSession:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.raw = bytearray()
        self.channel: Event = {}
        self.events: list[Event] = []
        self.replies: list[Event] = []
        self.disconnected: Event | None = None
        self.error = ""
        self._buf = b""
        self._cond = threading.Condition()
        self._reply_q: queue.Queue[Event] = queue.Queue()
        self._reader: threading.Thread | None = None

    # -- framing -------------------------------------------------------------------------
    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("socket closed by FreeSWITCH")
        self.raw += chunk
        self._buf += chunk

    def _frame(self) -> tuple[Event, bytes]:
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
                headers, body = self._frame()
                kind = headers.get("Content-Type", "")
                if kind == "text/event-plain":
                    with self._cond:
                        self.events.append(parse_headers(body.split(b"\n\n", 1)[0]))
                        self._cond.notify_all()
                elif kind == "text/disconnect-notice":
                    self.disconnected = headers
                elif kind in ("command/reply", "api/response"):
                    self.replies.append(headers)
                    self._reply_q.put(headers)
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            with self._cond:
                self._cond.notify_all()

    def start(self) -> None:
        self.sock.sendall(b"connect\n\n")
        self.channel, _ = self._frame()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # -- commands ------------------------------------------------------------------------
    def command(self, line: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> Event:
        extra = "".join(f"{k}: {v}\n" for k, v in (headers or {}).items())
        self.sock.sendall(f"{line}\n{extra}\n".encode())
        try:
            return self._reply_q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no reply to {line!r}") from None

    def execute(self, app: str, arg: str = "", timeout: float = 30.0) -> Event:
        """Run ``app`` on the channel and wait for its CHANNEL_EXECUTE_COMPLETE (needs myevents)."""
        event_uuid = str(uuid.uuid4())
        headers = {"call-command": "execute", "execute-app-name": app, "Event-UUID": event_uuid}
        if arg:
            headers["execute-app-arg"] = arg
        self.command("sendmsg", headers)
        return self.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE"
                               and e.get("Application-UUID") == event_uuid, timeout)

    def wait_event(self, match: Callable[[Event], bool], timeout: float) -> Event:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or (self._reader is not None and not self._reader.is_alive()):
                    raise TimeoutError("event not seen on the outbound socket")
                self._cond.wait(left)

    def close(self) -> None:
        try:
            self.sock.sendall(b"exit\n\n")
            if self._reader is not None:
                self._reader.join(timeout=5)
        except OSError:
            pass
        self.sock.close()


Script = Callable[[OutboundSession], None]


class FakeOutboundSocket:
    def __init__(self, port: int, script: Script, host: str = "127.0.0.1") -> None:
        self.sessions: list[OutboundSession] = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(60)
                session = OutboundSession(self.request)
                outer.sessions.append(session)
                try:
                    session.start()
                    script(session)
                except (TimeoutError, OSError, ConnectionError) as exc:
                    session.error = repr(exc)
                finally:
                    session.close()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def __enter__(self) -> FakeOutboundSocket:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def answer_with(result: str, answer: bool = True, **variables: str) -> Script:
    """A script that does what the recorder does for a decision: myevents, resume, mark the
    socket connected, answer the call (the snippet hands it over unanswered; ``answer=False`` is
    the recorder's decision before answer), set ``variables`` and ``PBXREC_RESULT``, close."""
    def script(session: OutboundSession) -> None:
        session.command("myevents")
        session.command("resume")
        session.execute("set", "PBXREC_SOCKET=connected")
        if answer:
            session.execute("answer")
        for name, value in variables.items():
            session.execute("set", f"{name}={value}")
        if result:
            session.execute("set", f"PBXREC_RESULT={result}")
    return script
