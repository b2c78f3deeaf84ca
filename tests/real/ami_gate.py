"""A TCP forwarder the test can open and close: the recorder's AMI link, cut on demand, or
held (Asterisk's frames wait in the gate, as they wait in a busy recorder's socket) and released."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import yaml
from recorder_checks import Recorder, catalog_reader, daemon_catalog_url

from pbx_recorder.testbed import PrivateAsterisk, free_tcp_port
from pbx_recorder.testbed.recorder import RecorderProcess, write_recorder_config


class AmiGate:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_tcp_port()
        self._open = threading.Event()
        self._flowing = threading.Event()  # cleared by hold(): Asterisk -> recorder waits
        self._flowing.set()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def open(self) -> None:
        self._open.set()

    def hold(self) -> None:
        """Stop passing Asterisk's frames to the recorder (they queue here) until :meth:`release`."""
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def close_link(self) -> None:
        """Cut every forwarded connection and refuse new ones until :meth:`open`."""
        self._open.clear()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def stop(self) -> None:
        self._stop.set()
        self.close_link()
        self._thread.join(2)
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for src, dst, gate in ((client, upstream, None), (upstream, client, self._flowing)):
                threading.Thread(target=self._pump, args=(src, dst, gate), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, gate: threading.Event | None) -> None:
        with contextlib.suppress(OSError):
            src.settimeout(None)
            while data := src.recv(65536):
                if gate is not None:
                    gate.wait()
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def gated_recorder(asterisk: PrivateAsterisk, prompts_dir: Path,
                   tmp_path: Path) -> Iterator[tuple[Recorder, AmiGate]]:
    """A recorder (sandbox config) whose AMI link runs through a gate the test can cut or hold."""
    gate = AmiGate(asterisk.ami_port)
    gate.open()
    config = write_recorder_config(tmp_path / "recorder", asterisk, prompts_dir,
                                   catalog_url=daemon_catalog_url(tmp_path / "recorder"))
    data = yaml.safe_load(config.read_text())
    data["pbx"]["ami"]["port"] = gate.port
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    process = RecorderProcess(config, asterisk, tmp_path / "recorder.log").start()
    work = tmp_path / "recorder"
    try:
        yield Recorder(process, config, work, catalog_reader(config)), gate
    finally:
        process.terminate()
        gate.stop()
