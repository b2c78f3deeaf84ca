"""A private PostgreSQL cluster for the tests (Debian's postgresql-15 binaries, no system cluster).

``PostgresServer.start(base)`` runs ``initdb`` and ``pg_ctl start`` in ``base`` on a free
loopback port, as the ``postgres`` OS user when the tests run as root (PostgreSQL refuses to run
as root).  ``url(schema)`` gives a URL whose ``search_path`` is a fresh schema: each test gets
an empty catalog without the cost of a database per test.  Test clusters trust loopback
connections; nothing here is a production setting.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

BIN_DIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15)]


def bin_dir() -> Path | None:
    env = os.environ.get("PBXR_PG_BIN")
    if env:
        return Path(env)
    return next((d for d in BIN_DIRS if (d / "postgres").exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PostgresServer:
    base: Path
    port: int
    bindir: Path
    database: str = "pbxr"
    user: str = "pbxr"

    @classmethod
    def start(cls, base: Path, *, durable: bool = False) -> PostgresServer:
        """``durable``: keep fsync, full-page writes and synchronous commit on, as a production
        server runs (the benchmarks); the tests turn them off for speed."""
        bindir = bin_dir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries not found (.ci/install-system.sh installs postgresql-15)")
        # the cluster lives in a folder of its own that the postgres account can reach (a pytest
        # tmp folder of root's is 0700); ``base`` gets a link to it for the logs
        base.mkdir(parents=True, exist_ok=True)
        own = Path(tempfile.mkdtemp(prefix="pbxr-pg-"))
        if os.geteuid() == 0:
            shutil.chown(own, "postgres", "postgres")
        (base / "cluster").symlink_to(own)
        base = own
        data, sockets = base / "data", base / "sockets"
        server = cls(base=base, port=_free_port(), bindir=bindir)
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", server.user,
                                     "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(sockets, "postgres", "postgres")
        opts = f"-p {server.port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=300"
        if not durable:
            opts += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                     str(base / "postgres.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, timeout=90)
        server.psql(f"CREATE DATABASE {server.database}", database="postgres")
        return server

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), "-m",
                                     "immediate", "-w", "stop"]), capture_output=True, timeout=60)
        # a test run's cluster holds a schema per catalog (hundreds of thousands of files): removing
        # it took each worker's last test ~20 s; it is renamed away and removed in the background
        gone = self.base.with_name(self.base.name + ".removing")
        try:
            self.base.rename(gone)
        except OSError:
            shutil.rmtree(self.base, ignore_errors=True)
            return
        quiet = subprocess.DEVNULL  # (the shell leaves rm running and returns at once)
        subprocess.run(["sh", "-c", 'nice -n 19 rm -rf -- "$1" &', "sh", str(gone)],
                       stdin=quiet, stdout=quiet, stderr=quiet, start_new_session=True, timeout=30)

    def psql(self, sql: str, *, database: str | None = None) -> None:
        import psycopg

        with psycopg.connect(self.url(database=database), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def url(self, schema: str | None = None, *, database: str | None = None) -> str:
        url = f"postgresql://{self.user}@127.0.0.1:{self.port}/{database or self.database}"
        if schema:
            url += "?options=" + quote(f"-csearch_path={schema}")
        return url

    def fresh_schema(self) -> str:
        """A new empty schema; the URL of a catalog that lives in it."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE SCHEMA {name}")
        return self.url(name)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.psql("SELECT 1")
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("PostgreSQL did not answer")
