"""A TCP relay between Asterisk's AMI and the recorder that cuts every read inside multi-byte
UTF-8 characters: what TCP may do to a caller name like ``张三`` on a busy link, made certain.

Bytes from Asterisk are forwarded in pieces that end just after each lead byte of a
multi-byte character (``>= 0xC0``), with a pause between pieces so the recorder gets each
piece in its own read.  Bytes from the recorder go through unchanged.
"""

from __future__ import annotations

import socket
import threading
import time

PIECE_GAP_S = 0.02


def cut_points(chunk: bytes) -> list[int]:
    """Offsets just after each multi-byte lead byte (each splits a character in two)."""
    return [i + 1 for i, b in enumerate(chunk) if b >= 0xC0]


class SplittingRelay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._socks: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="ami-splitter", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            upstream.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socks += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, split: bool) -> None:
        try:
            while chunk := src.recv(65536):
                start = 0
                for cut in (cut_points(chunk) if split else []):
                    dst.sendall(chunk[start:cut])
                    self.cuts += 1
                    start = cut
                    time.sleep(PIECE_GAP_S)
                dst.sendall(chunk[start:])
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._socks:
            sock.close()
