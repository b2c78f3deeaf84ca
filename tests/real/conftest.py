"""Fixtures for real-server tests: one private Asterisk per session, redis-server,
prompts rendered once, and the recorder daemon as a subprocess (per test).

All servers bind 127.0.0.1 on ports chosen at run time and are stopped in ``finally``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from recorder_checks import Recorder

from consent.generate_prompts import generate
from pbx_recorder.sandbox import PrivateAsterisk, free_tcp_port, free_udp_port
from pbx_recorder.sandbox.ami_probe import AmiProbe
from pbx_recorder.sandbox.recorder import CatalogReader, RecorderProcess, write_recorder_config


@pytest.fixture(scope="session")
def prompts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("prompts")
    generate(target)
    return target


@pytest.fixture(scope="session")
def agent_port() -> int:
    return free_udp_port()


@pytest.fixture(scope="session")
def asterisk(agent_port: int) -> Iterator[PrivateAsterisk]:
    # A short directory: Asterisk's control socket path must stay under 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="pbxrec-ast-"))
    pbx = PrivateAsterisk(workdir, agent_ports=(agent_port,))
    try:
        pbx.start()
        yield pbx
    finally:
        pbx.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def ami(asterisk: PrivateAsterisk) -> Iterator[AmiProbe]:
    """The test's own AMI connection (separate user from the recorder's); collects all events."""
    probe = asterisk.ami_probe()
    try:
        yield probe
    finally:
        probe.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("redis")
    port = free_tcp_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True,
                                  timeout=5, check=False)
            if ping.stdout.strip() == "PONG":
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def recorder(asterisk: PrivateAsterisk, prompts_dir: Path, tmp_path: Path) -> Iterator[Recorder]:
    config = write_recorder_config(tmp_path / "recorder", asterisk, prompts_dir)
    process = RecorderProcess(config, asterisk, tmp_path / "recorder.log")
    try:
        process.start()
        work = tmp_path / "recorder"
        yield Recorder(process, config, work, CatalogReader(work / "catalog.db"))
    finally:
        process.terminate()
