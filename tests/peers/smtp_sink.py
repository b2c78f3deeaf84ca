"""An in-process SMTP server (stdlib socketserver) that keeps what it is sent: enough of RFC 5321
(EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) for smtplib's client, plus
STARTTLS (when given a server ``ssl.SSLContext``) and AUTH PLAIN, remembering whether the
credentials came over TLS."""

from __future__ import annotations

import base64
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class Sink:
    messages: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)  #: (user, password, over TLS)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tls: ssl.SSLContext | None = None


class _Handler(socketserver.StreamRequestHandler):
    sink: Sink
    secured: ssl.SSLSocket | None = None

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.secured is not None:
                self.secured.close()

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 sink ESMTP")
        sender, rcpts, secure = "", [], False
        while True:
            raw = self.rfile.readline(4096)
            if not raw:
                return
            verb, _, arg = raw.decode("ascii", "replace").strip().partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self._say("250-sink")
                if self.sink.tls is not None and not secure:
                    self._say("250-STARTTLS")
                self._say("250-AUTH PLAIN")
                self._say("250 8BITMIME")
            elif verb == "STARTTLS" and self.sink.tls is not None and not secure:
                self._say("220 go ahead")
                try:
                    self.secured = self.sink.tls.wrap_socket(self.connection, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client refused the certificate: nothing more on this connection
                self.rfile.close()
                self.wfile.close()
                self.connection = self.secured
                self.rfile = self.connection.makefile("rb")
                self.wfile = self.connection.makefile("wb", buffering=0)
                secure = True
            elif verb == "AUTH" and arg.upper().startswith("PLAIN "):
                _, user, password = base64.b64decode(arg[6:]).decode().split("\x00")
                with self.sink.lock:
                    self.sink.logins.append((user, password, secure))
                self._say("235 ok")
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

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.state = Sink(tls=tls)
        handler = type("Handler", (_Handler,), {"sink": self.state})
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def messages(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.messages)

    @property
    def logins(self) -> list[tuple[str, str, bool]]:
        with self.state.lock:
            return list(self.state.logins)

    def __enter__(self) -> SmtpSink:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def tls_pair(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts over a fresh self-signed certificate for 127.0.0.1."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "smtp.crt", tmp / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client
