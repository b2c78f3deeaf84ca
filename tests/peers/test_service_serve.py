"""``pbx-recorder serve`` for real: uvicorn on a local port, the config's catalog and tier, a login
and a ranged audio read over TCP; the command's refusals; the shipped systemd unit."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner

from pbx_recorder.cli import cli
from pbx_recorder.cli.cmd_serve import build_server
from pbx_recorder.config import load_config
from pbx_recorder.errors import AccessDenied, ConfigError
from pbx_recorder.service import access_seal
from pbx_recorder.service.secret_box import create_key_file
from tests.peers.service_support import PASSWORD, seed

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, port: int | None, web_extra: str = "") -> str:
    """A service on ``port`` whose web.secret_key_file is ``keys/web.key`` (made by :func:`_keyed`),
    or what ``web_extra`` says instead."""
    (tmp_path / "hmac.key").write_text("0123456789abcdef0123456789abcdef")
    cfg = tmp_path / "c.yaml"
    extra = web_extra or f"secret_key_file: {tmp_path}/keys/web.key"
    web = f"web: {{host: 127.0.0.1, port: {port}, {extra}}}\n" if port else ""
    cfg.write_text(f"""
catalog: {{path: {tmp_path}/catalog.db}}
storage:
  hot: hot
  tiers:
    hot: {{type: local, path: {tmp_path}/hot}}
privacy: {{hash_key_file: {tmp_path}/hmac.key}}
{web}""")
    return str(cfg)


def _keyed(tmp_path: Path) -> Any:
    """The catalog of the service tests, its access rows sealed with ``keys/web.key`` (made here)."""
    key = create_key_file(tmp_path / "keys" / "web.key")
    return seed(tmp_path, access_seal.from_file(key))


def test_serve_answers_over_tcp_with_the_configured_catalog(tmp_path) -> None:  # type: ignore[no-untyped-def]
    seeded = _keyed(tmp_path)
    port = _free_port()
    server = build_server(load_config(_config(tmp_path, port)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}") as client:
            login = client.post("/api/login", json={"name": "lead-red", "password": PASSWORD})
            assert login.status_code == 200 and "server" not in login.headers
            audio = client.get("/api/recordings/r-c-red-2/audio", headers={"Range": "bytes=10-19"})
            assert audio.status_code == 206 and audio.content == seeded.audio["r-c-red-2"][10:20]
            assert client.get("/api/calls/c-blue-1").status_code == 404
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_serve_refuses_to_run_without_a_secret_key_unless_told(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """Without web.secret_key_file no access row is sealed and no audit row keyed: a production
    service refuses; ``web.allow_unsealed: true`` (a bench, a demo) runs, warning at each start."""
    seed(tmp_path)
    port = _free_port()
    with pytest.raises(ConfigError, match=r"web\.secret_key_file.*allow_unsealed"):
        build_server(load_config(_config(tmp_path, port, "allow_unsealed: false")))
    server = build_server(load_config(_config(tmp_path, port, "allow_unsealed: true")))
    assert server.config.port == port
    assert any("WITHOUT web.secret_key_file" in r.getMessage() for r in caplog.records)


def test_serve_needs_a_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="web.port"):
        build_server(load_config(_config(tmp_path, None)))


def test_serve_refuses_root_without_allow_root(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("os.geteuid", lambda: 0)
    result = CliRunner().invoke(cli, ["--config", _config(tmp_path, _free_port()), "serve"])
    assert isinstance(result.exception, AccessDenied)


def test_the_shipped_unit_runs_serve_as_the_service_user_hardened() -> None:
    text = (REPO / "etc" / "pbx-recorder-web.service").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if "=" in line and not line.startswith("#")]
    values = {k: v for k, v in (line.split("=", 1) for line in lines)}
    assert values["User"] == "pbx-recorder" and values["ExecStart"].endswith(" serve")
    assert values["NoNewPrivileges"] == "yes" and values["ProtectSystem"] == "strict"
    assert values["CapabilityBoundingSet"] == "" and values["UMask"] == "0077"


def test_a_tls_certificate_needs_its_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = Path(_config(tmp_path, _free_port()))
    cfg.write_text(cfg.read_text().replace("port:", f"tls_cert: {tmp_path}/c.pem, port:"))
    with pytest.raises(ConfigError, match="tls_key"):
        load_config(str(cfg))
