"""``PrivateAsterisk``: one throw-away Asterisk in its own directory, on its own ports.

    with PrivateAsterisk(workdir, agi_port=4573, agent_ports=(5070,)) as pbx:
        pbx.rx("core show channels")

Start-up waits (bounded) for an AMI login and the ``FullyBooted`` event, then checks that
every module the sandbox loads is running (``module show``): an Asterisk that answers AMI
with no modules is a broken test bed, not a passing one.  Stop sends ``core stop now`` and
kills after a bound.  The config tree is written from :mod:`pbx_recorder.testbed.asterisk_conf`;
the product's dialplan snippet is ``#include``d.

``install`` picks the Asterisk (:mod:`pbx_recorder.testbed.installs`): the host's (16) or
the sid chroot's (22), which sees ``workdir`` and the ``shared`` folders at their host paths.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from pbx_recorder.errors import RecorderError
from pbx_recorder.testbed import asterisk_conf
from pbx_recorder.testbed.ami_probe import AmiProbe
from pbx_recorder.testbed.installs import AsteriskInstall, InstallError
from pbx_recorder.testbed.ports import DEFAULT_ALLOCATOR, PortAllocator, free_tcp_port, free_udp_port
from storage import file_modes

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DIALPLAN_DIR = REPO_ROOT / "dialplan" / "asterisk"
SYSTEM_DATA = Path("/usr/share/asterisk")


class SandboxError(RecorderError):
    """The private Asterisk could not be started or driven."""


def running_modules(listing: str) -> set[str]:
    """Module names (without ``.so``) that ``module show`` lists as ``Running``."""
    names = set()
    for line in listing.splitlines():
        words = line.split()
        running = [i for i, w in enumerate(words) if w == "Running" and words[i - 1] != "Not"]
        if words and words[0].endswith(".so") and running:
            names.add(words[0].removesuffix(".so"))
    return names


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: no dlopen in a forked child
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies (prctl PR_SET_PDEATHSIG),
    so a crashed test leaves no Asterisk (nor, for a chroot, its mount namespace) behind."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class PrivateAsterisk:
    def __init__(self, workdir: str | Path, ami_port: int | None = None, sip_port: int | None = None,
                 agi_host: str = "127.0.0.1", agi_port: int | None = None,
                 agent_ports: tuple[int, ...] = (), extra_globals: dict[str, str] | None = None,
                 boot_timeout: float = 30.0, install: AsteriskInstall | None = None,
                 shared: tuple[Path, ...] = (), ports: PortAllocator = DEFAULT_ALLOCATOR) -> None:
        self.workdir = Path(workdir).resolve()
        self.install = install or AsteriskInstall()
        self.shared = tuple(Path(p).resolve() for p in shared)
        try:
            self.version = self.install.version()  # "16.28.0"; after start, from the running PBX
            module_dir = self.install.module_dir()
        except InstallError as exc:
            raise SandboxError(str(exc)) from exc
        self.major = int(self.version.split(".")[0])
        dialplan = DIALPLAN_DIR if self.install.root is None else self.workdir / "etc" / "dialplan"
        self.ami_port = ami_port or free_tcp_port()
        self.sip_port = sip_port or free_udp_port()
        self.agi_host = agi_host
        # each test's recorder listens on it in turn: outside the ephemeral range, where no
        # outgoing connection takes it between two tests (a CI run saw every test of one bed fail
        # with "cannot listen on 127.0.0.1:<agi port>: address already in use")
        self._ports = ports
        self._own_agi_port = agi_port is None
        self.agi_port = agi_port or ports.tcp_port()
        self.agent_ports = tuple(agent_ports)
        self.ami_user = "pbxrec"
        self.ami_secret = secrets.token_hex(12)
        self.daemon_ami_user = "recorder"  # a separate AMI user for the recorder under test
        self.daemon_ami_secret = secrets.token_hex(12)
        self.systemname = f"sbx{os.getpid()}x{secrets.token_hex(3)}"
        self.boot_timeout = boot_timeout
        self.layout = asterisk_conf.SandboxLayout(
            workdir=str(self.workdir), systemname=self.systemname, ami_port=self.ami_port,
            ami_user=self.ami_user, ami_secret=self.ami_secret, sip_port=self.sip_port,
            agi_host=agi_host, agi_port=self.agi_port,
            dialplan_snippet=str(dialplan / "pbx-recorder.conf"),
            globals_snippet=str(dialplan / "pbx-recorder-globals.conf"),
            agent_ports=self.agent_ports, daemon_user=self.daemon_ami_user,
            daemon_secret=self.daemon_ami_secret, extra_globals=dict(extra_globals or {}),
            module_dir=module_dir, major=self.major)
        self.conf_path = self.workdir / "etc" / "asterisk.conf"
        self.monitor_dir = Path(self.layout.monitor_dir)
        self.selftest_dir = Path(self.layout.selftest_dir)
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: object | None = None

    # -- config --------------------------------------------------------------------------
    def write_config(self) -> None:
        for sub in ("etc", "lib", "data", "spool", "run", "log", "monitor", "selftest"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        if self.install.root is not None:  # the chroot sees the work folder, not the repository
            copy = Path(self.layout.dialplan_snippet).parent
            copy.mkdir(exist_ok=True)
            for name in ("pbx-recorder.conf", "pbx-recorder-globals.conf"):
                shutil.copyfile(DIALPLAN_DIR / name, copy / name)
        for snippet in (self.layout.dialplan_snippet, self.layout.globals_snippet):
            if not Path(snippet).is_file():
                raise SandboxError(f"dialplan snippet missing: {snippet}")
        for name, text in asterisk_conf.all_files(self.layout).items():
            (self.workdir / "etc" / name).write_text(text)
        # it holds the AMI secrets (`pbx-recorder asterisk check` flags a world-readable one)
        file_modes.make_private(self.workdir / "etc" / "manager.conf")
        for link in ("documentation", "sounds"):
            target = self.workdir / "data" / link
            if not target.exists():
                target.symlink_to(SYSTEM_DATA / link)
        (self.workdir / "data" / "agi-bin").mkdir(exist_ok=True)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> PrivateAsterisk:
        self.write_config()
        self._console = open(self.workdir / "log" / "console.log", "ab")  # noqa: SIM115
        argv = self.install.launch(["asterisk", "-C", str(self.conf_path), "-f", "-n"],
                                   shared=[self.workdir, *self.shared])
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._console,
                                      stderr=subprocess.STDOUT, start_new_session=True,
                                      preexec_fn=_die_with_parent)
        try:
            self._wait_booted()
            self._check_running()
        except BaseException:
            self.stop()
            raise
        log.info("private asterisk %s %s up: ami=%s sip=%s", self.version, self.systemname, self.ami_port,
                 self.sip_port)
        return self

    def _check_running(self) -> None:
        """The version that answers, and every module the sandbox loads is running."""
        out = ""
        for _ in range(10):  # the control socket can lag the AMI's FullyBooted on a loaded host
            out = self.rx("core show version")
            shown = re.search(r"Asterisk (\d+\.\d+\.\d+)", out)
            if shown is not None:
                break
            time.sleep(0.5)
        else:
            raise SandboxError(f"no version from 'core show version' ({out.strip()[:200]!r}); "
                               f"see {self.workdir}/log")
        self.version = shown.group(1)
        listing = self.rx("module show like .so", timeout=20)
        missing = [m for m in asterisk_conf.modules_for(self.major) if m not in running_modules(listing)]
        if missing:
            raise SandboxError(
                f"Asterisk {self.version} did not load {len(missing)} module(s) the tests need: "
                f"{', '.join(missing)} (module folder {self.layout.module_dir}); see {self.workdir}/log")

    def _wait_booted(self) -> None:
        deadline = time.monotonic() + self.boot_timeout
        probe: AmiProbe | None = None
        while probe is None:
            if self._proc is None or self._proc.poll() is not None:
                raise SandboxError(f"asterisk exited during start-up; see {self.workdir}/log")
            try:
                probe = self.ami_probe(timeout=2.0)
            except (OSError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise SandboxError("AMI did not accept a login in time") from None
                time.sleep(0.2)
        try:
            left = max(0.5, deadline - time.monotonic())
            try:
                probe.wait_event(lambda e: e.get("Event") == "FullyBooted", timeout=left)
            except TimeoutError:
                out = self.rx("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
                if "fully booted" not in out.lower():
                    raise SandboxError("asterisk did not reach FullyBooted in time") from None
        finally:
            probe.close()

    def ami_probe(self, timeout: float = 10.0) -> AmiProbe:
        return AmiProbe("127.0.0.1", self.ami_port, self.ami_user, self.ami_secret, timeout=timeout)

    def rx(self, command: str, timeout: float = 10.0) -> str:
        try:
            argv = self.install.remote(self._proc.pid if self._proc is not None else None,
                                       ["asterisk", "-C", str(self.conf_path), "-rx", command])
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"asterisk -rx {command!r} timed out") from exc
        except InstallError as exc:
            raise SandboxError(str(exc)) from exc
        return done.stdout + done.stderr

    def seen_by_pbx(self, path: str | Path) -> Path:
        """Where the host sees what this Asterisk sees at ``path``: the path itself, or for a
        chroot the same path through ``/proc/<pid>/root`` (its private /tmp, its own /etc)."""
        if self.install.root is None:
            return Path(path)
        if self._proc is None:
            raise SandboxError("the chrooted Asterisk is not running")
        return Path(f"/proc/{self._proc.pid}/root") / str(path).lstrip("/")

    @property
    def pid(self) -> int | None:
        """The Asterisk process (for a chroot also its mount namespace), while started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 8.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                self.rx("core stop now", timeout=min(5.0, timeout))
            except SandboxError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._console is not None:
            self._console.close()  # type: ignore[attr-defined]
            self._console = None

    def __enter__(self) -> PrivateAsterisk:
        return self.start()

    def close(self) -> None:
        """Stop, and give the AGI port back (``stop`` alone keeps it for a ``start`` again)."""
        self.stop()
        if self._own_agi_port:
            self._own_agi_port = False
            self._ports.release(self.agi_port, 1)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def drop_ami_connections(self, keep_local_ports: tuple[int, ...] = ()) -> str:
        """Cut every AMI TCP connection (both ends, kernel SOCK_DESTROY via ``ss -K``) except
        those from ``keep_local_ports`` (e.g. the test's own probe).  Asterisk 16 has no CLI
        to kick one manager session; this is what a network blip looks like to the client."""
        keep = "".join(f" and not sport = :{p}" for p in keep_local_ports)
        keep_srv = "".join(f" and not dport = :{p}" for p in keep_local_ports)
        out = []
        for flt in (f"dport = :{self.ami_port}{keep}", f"sport = :{self.ami_port}{keep_srv}"):
            done = subprocess.run(["ss", "-K", "-t", "state", "established", flt], capture_output=True,
                                  text=True, timeout=10, check=False)
            out.append(done.stdout)
        return "".join(out)

    def ami_sessions(self, username: str) -> int:
        """How many AMI sessions ``username`` has open (``manager show connected``)."""
        return sum(1 for line in self.rx("manager show connected").splitlines()
                   if line.split()[:1] == [username])

    def log_tail(self, lines: int = 60) -> str:
        path = self.workdir / "log" / "messages"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
