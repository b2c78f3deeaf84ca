"""Fixtures for the real FreeSWITCH tests: one private FreeSWITCH per session (built once per
machine by scripts/setup), the test's own ESL probe, and the recorder daemon per test.

The parent conftest gives ``prompts_dir`` and ``redis_url``.  Everything binds 127.0.0.1 on
ports chosen at run time and is stopped in ``finally``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from recorder_checks import Recorder, catalog_reader, daemon_catalog_url, recorder_settings

from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_probe import FsProbe
from pbx_recorder.testbed.freeswitch_recorder import FsRecorderProcess, write_fs_recorder_config
from pbx_recorder.testbed.ports import free_udp_port


@pytest.fixture(scope="session")
def fs_agent_port() -> int:
    return free_udp_port()


@pytest.fixture(scope="session")
def freeswitch(fs_agent_port: int) -> Iterator[PrivateFreeSWITCH]:
    workdir = Path(tempfile.mkdtemp(prefix="pbxrec-fs-"))
    pbx = PrivateFreeSWITCH(workdir, agent_ports=(fs_agent_port,))
    try:
        pbx.start()
        yield pbx
    finally:
        pbx.close()
        if os.environ.get("PBXREC_KEEP_FS") != "1":  # set it to keep FreeSWITCH's logs for a post-mortem
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def esl(freeswitch: PrivateFreeSWITCH) -> Iterator[FsProbe]:
    """The test's own ESL connection (``event plain ALL``), per test: a FreeSWITCH restart in one
    test cannot leave the next one with a dead probe."""
    probe = freeswitch.probe()
    try:
        yield probe
    finally:
        probe.close()


@pytest.fixture
def fs_recorder(freeswitch: PrivateFreeSWITCH, esl: FsProbe, prompts_dir: Path, tmp_path: Path,
                request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """The daemon on the private FreeSWITCH (``recorder_config`` marker: as the Asterisk one's)."""
    work = tmp_path / "recorder"
    config = write_fs_recorder_config(work, freeswitch, prompts_dir, catalog_url=daemon_catalog_url(work),
                                      **recorder_settings(request))
    process = FsRecorderProcess(config, freeswitch, tmp_path / "recorder.log", probe_ports=(esl.local_port,))
    try:
        process.start()
        yield Recorder(process, config, work, catalog_reader(config))
    finally:
        process.terminate()
