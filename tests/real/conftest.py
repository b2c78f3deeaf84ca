"""Fixtures for real-server tests: one private Asterisk per version and session, redis-server,
prompts rendered once, a private PostgreSQL (``postgres``), and the recorder daemon as a
subprocess (per test).

Every test that uses ``asterisk`` runs once per Asterisk version: ``16`` (the host's) and
``22`` (the sid chroot, pbx_recorder/testbed/installs.py).  ``PBXREC_ASTERISK=16`` (or ``22``)
limits a run to one; ``PBXREC_ASTERISK=newest`` runs each test once, on the newest version it
supports (the real tier's second pass on PostgreSQL: what it tests is the catalog engine, and the
first pass has run every test on both versions).  A test of one version's behaviour says so with
``@pytest.mark.asterisk("16")``; it is not collected for the other (never skipped).
The terminal summary names the versions that ran (under pytest-xdist the workers hand them to
the controller: tests/conftest.py).

All servers bind 127.0.0.1 on ports chosen at run time and are stopped in ``finally``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from recorder_checks import Recorder, catalog_reader, daemon_catalog_url, recorder_settings

from consent.generate_prompts import generate
from pbx_recorder.testbed import PrivateAsterisk, free_tcp_port, free_udp_port
from pbx_recorder.testbed.ami_probe import AmiProbe
from pbx_recorder.testbed.installs import install_for
from pbx_recorder.testbed.recorder import RecorderProcess, write_recorder_config
from tests.postgres_server import PostgresServer

VERSIONS = ("16", "22")
NEWEST = "newest"  # PBXREC_ASTERISK=newest: each test once, on the newest version it supports
TESTED: dict[str, str] = {}  # label -> full version of the Asterisk that ran


def wanted_versions() -> list[str]:
    spec = os.environ.get("PBXREC_ASTERISK", ",".join(VERSIONS))
    if spec.strip() == NEWEST:
        return list(VERSIONS)
    chosen = [v.strip() for v in spec.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(VERSIONS))
    if unknown or not chosen:
        raise pytest.UsageError(f"PBXREC_ASTERISK: unknown version(s) {unknown}; "
                                f"use {', '.join(VERSIONS)} or {NEWEST}")
    return chosen


def versions_for(supported: tuple[str, ...] | None) -> list[str]:
    """The versions a test runs on: those wanted that it supports (all when it names none),
    only the newest of them under ``PBXREC_ASTERISK=newest``."""
    versions = [v for v in wanted_versions() if supported is None or v in supported]
    if os.environ.get("PBXREC_ASTERISK", "").strip() == NEWEST:
        return versions[-1:]
    return versions


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "asterisk(*versions): runs only on these Asterisk versions (16, 22)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``asterisk`` (the session's PBX) and ``asterisk_version`` (a test that starts a PBX of its
    own) are parametrized over the versions under test."""
    for name in ("asterisk", "asterisk_version"):
        if name not in metafunc.fixturenames:
            continue
        marker = metafunc.definition.get_closest_marker("asterisk")
        versions = versions_for(None if marker is None else tuple(marker.args))
        # an empty list would make pytest skip the test: a test of one version's behaviour is
        # simply not collected when that version is not run (see pytest_collection_modifyitems)
        metafunc.parametrize(name, versions or ["none"], indirect=name == "asterisk",
                             scope="session" if name == "asterisk" else "function",
                             ids=[f"ast{v}" for v in versions] or ["none"])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = set(wanted_versions())

    def off(item: pytest.Item) -> bool:
        spec = getattr(item, "callspec", None)
        for name in ("asterisk", "asterisk_version"):
            if spec is not None and name in spec.params:
                return bool(spec.params[name] == "none")
        marker = item.get_closest_marker("asterisk")  # a version test without the fixture
        return marker is not None and not wanted & set(marker.args)

    dropped = [i for i in items if off(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller prints the summary line
        workeroutput["asterisks_tested"] = dict(TESTED)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TESTED:
        terminalreporter.write_line("Asterisk versions tested: "
                                    + ", ".join(TESTED[v] for v in VERSIONS if v in TESTED))


@pytest.fixture(scope="session")
def prompts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("prompts")
    generate(target)
    return target


@pytest.fixture(scope="session")
def agent_port() -> int:
    return free_udp_port()


@pytest.fixture(scope="session")
def asterisk(request: pytest.FixtureRequest, agent_port: int, prompts_dir: Path) -> Iterator[PrivateAsterisk]:
    # A short directory: Asterisk's control socket path must stay under 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="pbxrec-ast-"))
    # the prompts folder is shared: a chrooted Asterisk plays the recorder's prompts by host path
    pbx = PrivateAsterisk(workdir, agent_ports=(agent_port,), install=install_for(request.param),
                          shared=(prompts_dir,))
    try:
        pbx.start()
        TESTED[request.param] = pbx.version
        yield pbx
    finally:
        pbx.close()
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


@pytest.fixture(scope="session")
def postgres(_postgres_for_catalogs: PostgresServer) -> PostgresServer:
    """The session's private PostgreSQL cluster (tests/postgres_server.py, one per worker: the one
    ``PBXR_TEST_CATALOG=postgresql`` keeps every catalog in); a test takes a catalog of its own
    with ``postgres.fresh_schema()`` (a URL whose search_path is a new, empty schema)."""
    return _postgres_for_catalogs


@pytest.fixture
def recorder(asterisk: PrivateAsterisk, prompts_dir: Path, tmp_path: Path,
             request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """The daemon (sandbox config); with ``PBXR_TEST_CATALOG=postgresql`` its catalog is the
    PostgreSQL schema that ``tmp_path/recorder/catalog.db`` maps to (tests/catalog_redirect.py).
    ``@pytest.mark.recorder_config(pause_max_s=10)``: more settings for the config writer."""
    work = tmp_path / "recorder"
    config = write_recorder_config(work, asterisk, prompts_dir, catalog_url=daemon_catalog_url(work),
                                   **recorder_settings(request))
    process = RecorderProcess(config, asterisk, tmp_path / "recorder.log")
    try:
        process.start()
        yield Recorder(process, config, work, catalog_reader(config))
    finally:
        process.terminate()
