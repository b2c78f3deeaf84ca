"""The recorder daemon under test, driven as a subprocess against a :class:`PrivateAsterisk`.

``write_recorder_config`` writes a YAML config (local tiers and SQLite under the workdir,
the sandbox's AMI/AGI ports, test rules by DID); ``RecorderProcess`` runs
``pbx-recorder --config <yaml> run`` and stops it with SIGTERM or SIGKILL; ``CatalogReader``
reads the SQLite catalog read-only.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pbx_recorder.testbed.asterisk import PrivateAsterisk, SandboxError
from pbx_recorder.testbed.ports import tcp_listening
from storage import atomic, file_modes

# DIDs of the sandbox dialplan (see asterisk_conf) -> what the recorder's rules say.
TEST_RULES: list[dict[str, Any]] = [
    {"name": "no-record-did", "match": {"dialed": ["8003"]}, "action": {"record": "never"}},
    {"name": "explicit-consent", "match": {"dialed": ["8002", "8005", "8006"]},
     "action": {"record": "yes", "consent": "explicit", "prompt": "consent-question",
                "refusal": {"goto": "pbxrec-unrecorded,s,1"}}},
    {"name": "support-queue", "match": {"queue": ["support"]},
     "action": {"record": "yes", "consent": "notify", "prompt": "recording-notice", "start_on": "bridge"}},
    {"name": "notify", "match": {"direction": ["inbound"]},
     "action": {"record": "yes", "consent": "notify", "prompt": "recording-notice"}},
]


def write_recorder_config(workdir: str | Path, pbx: PrivateAsterisk, prompts_dir: str | Path,
                          redis_url: str | None = None, node: str = "sandbox",
                          rules: list[dict[str, Any]] | None = None,
                          consent_timeout_s: float = 3.0, max_attempts: int = 2,
                          encryption: bool = False, catalog_url: str | None = None,
                          pause_max_s: float | None = None) -> Path:
    """``encryption``: the envelope with keys under ``<workdir>/keys`` (made at the daemon's first
    start).  Off by default for the real-server tests, which analyse the stored audio directly;
    the demo turns it on, as the example config does."""
    work = file_modes.private_dir(workdir)  # catalog, spool, tiers and keys live under it
    config = {
        "node": node,
        "timezone": "UTC",
        "pbx": {"type": "asterisk", "monitor_dir": str(pbx.monitor_dir),
                "ami": {"host": "127.0.0.1", "port": pbx.ami_port, "username": pbx.daemon_ami_user,
                        "secret": pbx.daemon_ami_secret, "reconnect_min_s": 0.2, "reconnect_max_s": 2},
                "agi": {"host": pbx.agi_host, "port": pbx.agi_port},
                **({} if pause_max_s is None else {"pause_max_s": pause_max_s})},
        "spool": {"dir": str(work / "spool"), "min_free_mb": 1, "closure_timeout_s": 15, "stable_ms": 300},
        "catalog": {"path": str(work / "catalog.db"), **({"url": catalog_url} if catalog_url else {})},
        "redis": {"url": redis_url},
        "consent": {"prompts_dir": str(prompts_dir), "timeout_s": consent_timeout_s,
                    "max_attempts": max_attempts, "languages": {"cn": "zh", "default": "en"}},
        "rules": rules if rules is not None else TEST_RULES,
        "retention": {"default_class": "standard", "classes": {"standard": {"days": 180}}},
        "storage": {"tiers": {"hot": {"type": "local", "path": str(work / "hot")}},
                    "hot": "hot", "cold": None, "archive": None},
        "signing": {"key_file": str(work / "keys" / "signing.ed25519")},
        "privacy": {"hash_key_file": str(work / "keys" / "subject-hmac.key")},
        "encryption": {"enabled": encryption, "master_key_file": str(work / "keys" / "master" / "demo.key")},
        "logging": {"level": "DEBUG"},
    }
    path = work / "pbx-recorder.yaml"
    atomic.write_bytes(path, yaml.safe_dump(config, sort_keys=False).encode())  # 0600: holds the AMI secret
    return path


def recorder_command() -> list[str]:
    venv_bin = Path(sys.executable).parent / "pbx-recorder"
    return [str(venv_bin)] if venv_bin.exists() else [sys.executable, "-m", "pbx_recorder.cli"]


class RecorderProcess:
    def __init__(self, config_path: str | Path, pbx: PrivateAsterisk, log_path: str | Path,
                 verbosity: str = "-vv") -> None:
        self.config_path = Path(config_path)
        self.verbosity = verbosity  # "-v": INFO, as a production daemon logs (benchmarks)
        self.pbx = pbx
        self.log_path = Path(log_path)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 20.0) -> RecorderProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [*recorder_command(), self.verbosity, "--config", str(self.config_path), "run"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SandboxError(f"recorder exited with {self._proc.returncode}: {self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.2)
        self.kill()
        raise SandboxError(f"recorder not ready within {ready_timeout}s: {self.log_tail()}")

    def ready(self) -> bool:
        """The daemon serves FastAGI and has its AMI session (a FreeSWITCH variant overrides this)."""
        return tcp_listening(self.pbx.agi_host, self.pbx.agi_port) and \
            self.pbx.ami_sessions(self.pbx.daemon_ami_user) > 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait (bounded), then SIGKILL.  Returns the exit code."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                return self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def kill(self) -> int:
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
        return self._proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class CatalogReader:
    """Read-only view of the recorder's catalog (the SQLite file at ``path``, or with ``url`` the
    PostgreSQL catalog; ``path`` is then the node's catalog.path, beside which its config lies);
    rows come back with their numbers in clear (opened with the keys of the recorder's config, as
    the CLI does)."""

    def __init__(self, path: str | Path, url: str | None = None) -> None:
        self.path = Path(path)
        self.url = url
        self._numbers: Any = None

    def _open(self, row: dict[str, Any]) -> dict[str, Any]:
        from pbx_recorder.catalog.number_protection import is_token
        from pbx_recorder.catalog.protected_rows import MANIFEST_TOKEN

        manifest = row.get("manifest")
        sealed_manifest = isinstance(manifest, str) and MANIFEST_TOKEN in manifest
        if not is_token(row.get("numbers")) and not sealed_manifest:
            return row
        numbers = self._protection()
        if "call_id" in row and is_token(row.get("numbers")):
            row = numbers.open_call(row)
        if sealed_manifest and row.get("recording_id"):
            row["manifest"] = json.dumps(numbers.open_manifest(str(row["recording_id"]), manifest),
                                         sort_keys=True)
        return row

    def _protection(self) -> Any:
        """The recorder's number protection, loaded on first need: only once the recorder has
        written (and so made its keys)."""
        if self._numbers is None:
            from pbx_recorder.catalog.number_keys import protection_for
            from pbx_recorder.config import load_config

            self._numbers = protection_for(load_config(self.path.parent / "pbx-recorder.yaml"))
        return self._numbers

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        if self.url:
            return self._query_url(sql, params)
        if not self.path.exists():
            return []
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
            try:
                conn.row_factory = sqlite3.Row
                return [self._open(dict(row)) for row in conn.execute(sql, params)]
            except sqlite3.OperationalError as exc:
                if _schema_missing(exc):
                    return []  # schema not created yet
                # a read-only reader can be told 'locked' / 'busy' while the daemon checkpoints:
                # that is no answer, never "no rows" (an assertion on the audit log once read [])
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
            finally:
                conn.close()
            time.sleep(0.05)

    def _query_url(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        from pbx_recorder.catalog import engine

        assert self.url is not None
        conn = engine.connect(self.url, read_only=True)
        try:
            return [self._open(dict(row)) for row in conn.execute(sql, params)]
        except engine.db_errors() as exc:
            if _schema_missing(exc):
                return []  # schema not created yet
            raise
        finally:
            conn.close()

    def live_calls(self) -> list[tuple[str, dict[str, Any]]]:
        """(call id, snapshot) of every live call, snapshots opened as the daemon reads them."""
        out = []
        for row in self.query("SELECT call_id, state FROM live_calls ORDER BY call_id"):
            text = str(row["state"])
            if not text.startswith("{"):  # sealed under the catalog key (schema 6)
                text = self._protection().open_text("live_calls", str(row["call_id"]), text)
            out.append((str(row["call_id"]), json.loads(text)))
        return out

    def call_by_linkedid(self, linkedid: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM calls WHERE linkedid = ?", (linkedid,))
        return rows[0] if rows else None

    def recordings(self, call_id: str) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM recordings WHERE call_id = ? ORDER BY created_at", (call_id,))

    def wait_for(self, probe: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
        """Poll ``probe`` until it returns something truthy; bounded."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                return value
            time.sleep(interval)

    @staticmethod
    def consent(call: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(json.loads(call.get("consent") or "{}"))
        except ValueError:
            return {}


#: how long a catalog read of the test bed retries while SQLite says the file is locked or busy
BUSY_WAIT_S = 10.0


def _schema_missing(exc: BaseException) -> bool:
    """The recorder has not made the table (or the schema) yet: no rows, not an error."""
    text = str(exc).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "unable to open" in text
