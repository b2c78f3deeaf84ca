"""An in-process SMTP server (stdlib socketserver) that keeps what it is sent: enough of RFC 5321
(EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) for smtplib's client."""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field
from types import TracebackType


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class Sink:
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(socketserver.StreamRequestHandler):
    sink: Sink

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 sink ESMTP")
        sender, rcpts = "", []
        while True:
            raw = self.rfile.readline(4096)
            if not raw:
                return
            verb, _, arg = raw.decode("ascii", "replace").strip().partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self._say("250-sink")
                self._say("250 8BITMIME")
            elif verb == "HELO" or verb in ("NOOP", "RSET"):
                self._say("250 ok")
            elif verb == "MAIL":
                sender, rcpts = arg.partition(":")[2].strip(" <>"), []
                self._say("250 ok")
            elif verb == "RCPT":
                rcpts.append(arg.partition(":")[2].strip(" <>"))
                self._say("250 ok")
            elif verb == "DATA":
                self._say("354 go on")
                lines = []
                while True:
                    line = self.rfile.readline(1 << 20)
                    if line in (b".\r\n", b".\n", b""):
                        break
                    lines.append(line[1:] if line.startswith(b"..") else line)
                with self.sink.lock:
                    self.sink.messages.append(Received(sender, rcpts, b"".join(lines)))
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("502 not implemented")


class SmtpSink:
    """``with SmtpSink() as sink:`` a server on 127.0.0.1:``sink.port``; ``sink.messages``."""

    def __init__(self) -> None:
        self.state = Sink()
        handler = type("Handler", (_Handler,), {"sink": self.state})
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def messages(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.messages)

    def __enter__(self) -> SmtpSink:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
