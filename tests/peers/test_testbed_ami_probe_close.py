"""The test bed's AMI probe releases its socket on close (CI found a ``ResourceWarning: unclosed
socket [closed]`` raised much later, in an unrelated test, when the garbage collector met a probe
whose line reader still held the socket open)."""

from __future__ import annotations

import socket
import threading

from pbx_recorder.testbed.ami_probe import AmiProbe


def _fake_ami(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        conn.sendall(b"Asterisk Call Manager/5.0.0\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        action_id = next(line.split(b":", 1)[1].strip() for line in data.split(b"\r\n")
                         if line.startswith(b"ActionID:"))
        conn.sendall(b"Response: Success\r\nActionID: " + action_id + b"\r\n\r\n")
        while conn.recv(4096):
            pass


def test_close_releases_the_socket_descriptor() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = threading.Thread(target=_fake_ami, args=(server,), daemon=True)
        peer.start()
        probe = AmiProbe("127.0.0.1", server.getsockname()[1], "u", "s", timeout=5)
        sock = probe._sock
        probe.close()
        peer.join(timeout=5)
    assert probe.closed
    assert sock.fileno() == -1, "the socket is still open behind the probe's line reader"


def _silent_ami(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        conn.sendall(b"Asterisk Call Manager/5.0.0\r\n")
        while conn.recv(4096):  # reads the login, never answers it (a PBX still booting)
            pass


def test_a_login_without_answer_releases_the_socket(monkeypatch) -> None:
    made: list[socket.socket] = []
    connect = socket.create_connection

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(connect(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(socket, "create_connection", recording)
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = threading.Thread(target=_silent_ami, args=(server,), daemon=True)
        peer.start()
        try:
            AmiProbe("127.0.0.1", server.getsockname()[1], "u", "s", timeout=0.3)
        except TimeoutError:
            pass
        else:
            raise AssertionError("a login without an answer was taken for a login")
        peer.join(timeout=5)
    assert made and made[0].fileno() == -1, "the socket of a failed login is still open"
