"""The Asterisk 22 chroot leaves nothing mounted on the host: its mounts live in the instance's
own mount namespace, and a test process killed mid-run takes the instance with it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from pbx_recorder.testbed import PrivateAsterisk
from pbx_recorder.testbed.installs import install_for

pytestmark = [pytest.mark.real, pytest.mark.asterisk("22"), pytest.mark.timeout(120)]


def host_mounts_under(root: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line]


def gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        try:  # a zombie of ours counts as gone
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.2)
    return False


def test_chroot_mounts_are_seen_by_the_instance_only() -> None:
    install = install_for("22")
    workdir = Path(tempfile.mkdtemp(prefix="pbxrec-ast-"))
    pbx = PrivateAsterisk(workdir, install=install)
    pbx.start()
    try:
        assert pbx.version.startswith("22.") and pbx.pid is not None
        inside = Path(f"/proc/{pbx.pid}/mountinfo").read_text()
        assert f" {workdir} " in inside  # the work folder, at its host path inside the chroot
        assert not host_mounts_under(install.root)  # type: ignore[arg-type]
        assert (workdir / "run" / "asterisk.ctl").exists()  # what Asterisk writes, the host sees
        assert "fully booted" in pbx.rx("core waitfullybooted").lower()
    finally:
        pbx.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert not host_mounts_under(install.root)  # type: ignore[arg-type]


CHILD = textwrap.dedent("""
    import sys, tempfile, time
    from pathlib import Path
    from pbx_recorder.testbed import PrivateAsterisk
    from pbx_recorder.testbed.installs import install_for
    pbx = PrivateAsterisk(Path(tempfile.mkdtemp(prefix="pbxrec-ast-")), install=install_for("22")).start()
    print(pbx.pid, pbx.workdir, flush=True)
    time.sleep(120)
""")


def test_a_killed_test_process_leaves_no_asterisk_and_no_mount() -> None:
    root = install_for("22").root
    assert root is not None
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        pid_text, _, workdir = child.stdout.readline().strip().partition(" ")
        assert pid_text.isdigit(), pid_text
        pid = int(pid_text)
        assert Path(f"/proc/{pid}").exists()
    finally:
        os.kill(child.pid, signal.SIGKILL)  # the test process crashes: no finally, no stop()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    try:
        assert gone(pid), f"asterisk {pid} outlived the killed test process"
        assert not host_mounts_under(root)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
