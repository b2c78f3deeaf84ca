"""``PrivateFreeSWITCH``: one throw-away FreeSWITCH in its own directory, on its own ports.

    with PrivateFreeSWITCH(workdir, socket_port=18084, agent_ports=(5070,)) as fs:
        fs.api("show channels")

The binary comes from the per-machine build (``scripts/setup`` runs the shared
``freeswitch-src/build.sh`` into ``$HOME/.cache/pbxr-freeswitch/1.11.1``; ``PBXR_FREESWITCH_PREFIX``
overrides).  Start-up is bounded: it waits for an ESL login, ``status`` saying "ready", every
module of :data:`freeswitch_conf.MODULES` loaded and the SIP profile RUNNING; stop sends SIGTERM
and kills after a bound.  ``restart`` keeps the ports, directories and password (a crash and
recovery of the PBX, as a test sees it).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from pbx_recorder.testbed import freeswitch_conf
from pbx_recorder.testbed.asterisk import SandboxError
from pbx_recorder.testbed.freeswitch_probe import FsProbe
from pbx_recorder.testbed.ports import DEFAULT_ALLOCATOR, PortAllocator, free_tcp_port, free_udp_port

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
FS_VERSION = "1.11.1"
RTP_PORTS = 400  # 2 per leg: 50 concurrent calls with a b-leg each, and room to spare


def free_sip_port(attempts: int = 50) -> int:
    """A port free for UDP AND TCP: the sofia profile binds both (a busy TCP twin makes it fail
    with "Error Creating SIP UA", seen on a machine shared with other test beds)."""
    for _ in range(attempts):
        port = free_udp_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise SandboxError("no port free for both UDP and TCP")


def freeswitch_prefix() -> Path:
    env = os.environ.get("PBXR_FREESWITCH_PREFIX")
    return Path(env) if env else Path.home() / ".cache" / "pbxr-freeswitch" / FS_VERSION


class PrivateFreeSWITCH:
    def __init__(self, workdir: str | Path, *, sip_port: int | None = None, esl_port: int | None = None,
                 socket_host: str = "127.0.0.1", socket_port: int | None = None,
                 agent_ports: tuple[int, ...] = (), extra_globals: dict[str, str] | None = None,
                 boot_timeout: float = 60.0, prefix: Path | None = None,
                 ports: PortAllocator = DEFAULT_ALLOCATOR) -> None:
        self.workdir = Path(workdir).resolve()
        self.prefix = prefix or freeswitch_prefix()
        self.binary = self.prefix / "bin" / "freeswitch"
        self.sip_port = sip_port or free_sip_port()
        self.esl_port = esl_port or free_tcp_port()
        self.socket_host = socket_host
        # each test's recorder listens on it in turn: outside the ephemeral range, where no
        # outgoing connection takes it between two tests
        self._own_socket_port = socket_port is None
        self.socket_port = socket_port or ports.tcp_port()
        self.agent_ports = tuple(agent_ports)
        self.esl_password = secrets.token_hex(16)
        self.password_file = self.workdir / "conf" / "esl.password"
        self.boot_timeout = boot_timeout
        self._ports = ports
        rtp = ports.udp_range(RTP_PORTS)
        conf = self.workdir / "conf"
        self.layout = freeswitch_conf.FsLayout(
            workdir=str(self.workdir), sip_port=self.sip_port, esl_port=self.esl_port,
            socket_host=socket_host, socket_port=self.socket_port, rtp_range=(rtp, rtp + RTP_PORTS - 1),
            dialplan_snippet=str(REPO_ROOT / "dialplan" / "freeswitch" / "pbx-recorder.xml"),
            acl_snippet=str(REPO_ROOT / "etc" / "freeswitch" / "acl-pbx-recorder.xml"),
            cdr_csv_conf=str(REPO_ROOT / "etc" / "freeswitch" / "cdr_csv.conf.xml"),
            event_socket_conf=str(conf / "event_socket.conf.xml"),
            agent_ports=self.agent_ports, extra_globals=dict(extra_globals or {}))
        self.recordings_dir = Path(self.layout.recordings_dir)
        self.selftest_dir = Path(self.layout.selftest_dir)
        self.log_dir = self.workdir / "log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: object | None = None

    # -- config --------------------------------------------------------------------------
    def write_config(self) -> None:
        if not self.binary.is_file():
            raise SandboxError(
                f"no FreeSWITCH build at {self.prefix}: run scripts/setup (it runs the shared "
                "freeswitch-src/build.sh) or set PBXR_FREESWITCH_PREFIX")
        for snippet in (self.layout.dialplan_snippet, self.layout.acl_snippet, self.layout.cdr_csv_conf):
            if not Path(snippet).is_file():
                raise SandboxError(f"product file missing: {snippet}")
        for sub in ("conf", "log", "db", "run", "storage", "cache", "recordings", "sounds", "selftest"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.password_file.write_text(self.esl_password + "\n")
        self.password_file.chmod(0o600)
        example = (REPO_ROOT / "etc" / "freeswitch" / "event_socket.conf.xml").read_text()
        Path(self.layout.event_socket_conf).write_text(
            freeswitch_conf.render_event_socket(example, self.esl_port, str(self.password_file)))
        (self.workdir / "conf" / "freeswitch.xml").write_text(freeswitch_conf.freeswitch_xml(self.layout))

    def command_line(self) -> list[str]:
        w = str(self.workdir)
        return [str(self.binary), "-nonat", "-nc", "-nf", "-base", w, "-conf", f"{w}/conf",
                "-log", f"{w}/log",
                "-db", f"{w}/db", "-run", f"{w}/run", "-storage", f"{w}/storage", "-cache", f"{w}/cache",
                "-recordings", f"{w}/recordings", "-sounds", f"{w}/sounds", "-mod", str(self.prefix / "mod")]

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> PrivateFreeSWITCH:
        self.write_config()
        self._console = open(self.log_dir / "console.log", "ab")  # noqa: SIM115
        self._proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL, stdout=self._console,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("private freeswitch up: sip=%s esl=%s socket=%s", self.sip_port, self.esl_port,
                 self.socket_port)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.boot_timeout
        probe: FsProbe | None = None
        while probe is None:
            if self._proc is None or self._proc.poll() is not None:
                raise SandboxError(
                    f"freeswitch exited during start-up; see {self.log_dir}:\n{self.log_tail()}")
            try:
                probe = self.probe(timeout=2.0, events="")
            except (OSError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise SandboxError(f"ESL did not accept a login in time:\n{self.log_tail()}") from None
                time.sleep(0.25)
        try:
            while "is ready" not in probe.api("status"):
                if time.monotonic() > deadline:
                    raise SandboxError("freeswitch did not become ready in time")
                time.sleep(0.25)
            missing = [m for m in freeswitch_conf.MODULES if probe.api(f"module_exists {m}") != "true"]
            if missing:
                raise SandboxError(f"modules not loaded: {', '.join(missing)}; see {self.log_dir}")
            while not self._profile_running(probe.api("sofia status")):
                if time.monotonic() > deadline:
                    raise SandboxError(f"SIP profile not RUNNING on {self.sip_port}:\n{self.log_tail()}")
                time.sleep(0.25)
        finally:
            probe.close()

    def _profile_running(self, status: str) -> bool:
        return any("internal" in line and "RUNNING" in line and f":{self.sip_port}" in line
                   for line in status.splitlines())

    def probe(self, timeout: float = 10.0, events: str = "ALL", tap: object | None = None) -> FsProbe:
        return FsProbe("127.0.0.1", self.esl_port, self.esl_password, timeout=timeout, events=events,
                       tap=tap)  # type: ignore[arg-type]

    def api(self, command: str, timeout: float = 15.0) -> str:
        probe = self.probe(timeout=timeout, events="")
        try:
            return probe.api(command, timeout)
        finally:
            probe.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        """Stop (SIGTERM: clean shutdown; SIGKILL: a crash), bounded; kill after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._console is not None:
            self._console.close()  # type: ignore[attr-defined]
            self._console = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop and start again on the same ports, directories and ESL password."""
        self.stop(sig=sig)
        self.start()

    def close(self) -> None:
        self.stop()
        self._ports.release(self.layout.rtp_range[0], RTP_PORTS)
        if self._own_socket_port:
            self._ports.release(self.socket_port, 1)

    def __enter__(self) -> PrivateFreeSWITCH:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def drop_esl_connections(self, keep_local_ports: tuple[int, ...] = ()) -> str:
        """Cut every inbound ESL TCP connection (both ends, ``ss -K``) except those from
        ``keep_local_ports`` (the test's own probe): what a network blip looks like."""
        keep = "".join(f" and not sport = :{p}" for p in keep_local_ports)
        keep_srv = "".join(f" and not dport = :{p}" for p in keep_local_ports)
        out = []
        for flt in (f"dport = :{self.esl_port}{keep}", f"sport = :{self.esl_port}{keep_srv}"):
            done = subprocess.run(["ss", "-K", "-t", "state", "established", flt], capture_output=True,
                                  text=True, timeout=10, check=False)
            out.append(done.stdout)
        return "".join(out)

    def esl_clients(self, exclude_local_ports: tuple[int, ...] = ()) -> int:
        """How many established inbound ESL connections there are (``ss``), minus excluded ones."""
        done = subprocess.run(["ss", "-H", "-t", "-n", "state", "established", f"dport = :{self.esl_port}"],
                              capture_output=True, text=True, timeout=10, check=False)
        ports = [line.split()[-2].rsplit(":", 1)[-1] for line in done.stdout.splitlines() if line.strip()]
        return sum(1 for p in ports if p.isdigit() and int(p) not in exclude_local_ports)

    def log_tail(self, lines: int = 60) -> str:
        path = self.log_dir / "freeswitch.log"
        if not path.exists():
            path = self.log_dir / "console.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
