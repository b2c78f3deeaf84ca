"""The recorder daemon under test against a :class:`PrivateFreeSWITCH`.

``write_fs_recorder_config`` writes the YAML (``pbx.type: freeswitch``, the keys of
``esl/CONTRACT.md``: inbound ESL with a password file, the outbound-socket server, the monitor
dir FreeSWITCH records into; local tiers and SQLite under the workdir; the test rules by DID).
``FsRecorderProcess`` is :class:`RecorderProcess` whose readiness is "the outbound-socket
server listens and the daemon holds an inbound ESL connection".
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.ports import tcp_listening
from pbx_recorder.testbed.recorder import TEST_RULES, RecorderProcess
from storage import atomic, file_modes

# The Asterisk test rules (same DIDs, same refusal route: on FreeSWITCH the goto
# "pbxrec-unrecorded,s,1" becomes `transfer s XML pbxrec-unrecorded`), plus a stereo DID and
# DIDs recorded without any consent dialogue (8009: the same, started in band; 8010: stereo).
FS_TEST_RULES: list[dict[str, Any]] = [
    {"name": "no-consent-did", "match": {"dialed": ["8008", "8009"]},
     "action": {"record": "yes", "consent": "none"}},
    {"name": "no-consent-stereo", "match": {"dialed": ["8010"]},
     "action": {"record": "yes", "consent": "none", "mode": "stereo"}},
    {"name": "stereo-did", "match": {"dialed": ["8007"]},
     "action": {"record": "yes", "consent": "notify", "prompt": "recording-notice", "mode": "stereo"}},
    *copy.deepcopy(TEST_RULES),
]


def write_fs_recorder_config(workdir: str | Path, pbx: PrivateFreeSWITCH, prompts_dir: str | Path,
                             redis_url: str | None = None, node: str = "sandbox",
                             rules: list[dict[str, Any]] | None = None,
                             consent_timeout_s: float = 3.0, max_attempts: int = 2,
                             encryption: bool = False, catalog_url: str | None = None,
                             pause_max_s: float | None = None) -> Path:
    """As :func:`pbx_recorder.testbed.recorder.write_recorder_config`, for ``pbx.type: freeswitch``."""
    work = file_modes.private_dir(workdir)  # catalog, spool, tiers and keys live under it
    config = {
        "node": node,
        "timezone": "UTC",
        "pbx": {"type": "freeswitch", "monitor_dir": str(pbx.recordings_dir),
                "esl": {"host": "127.0.0.1", "port": pbx.esl_port, "password_file": str(pbx.password_file),
                        "reconnect_min_s": 0.2, "reconnect_max_s": 2,
                        "outbound": {"host": pbx.socket_host, "port": pbx.socket_port}},
                **({} if pause_max_s is None else {"pause_max_s": pause_max_s})},
        "spool": {"dir": str(work / "spool"), "min_free_mb": 1, "closure_timeout_s": 15, "stable_ms": 300},
        "catalog": {"path": str(work / "catalog.db"), **({"url": catalog_url} if catalog_url else {})},
        "redis": {"url": redis_url},
        "consent": {"prompts_dir": str(prompts_dir), "timeout_s": consent_timeout_s,
                    "max_attempts": max_attempts, "languages": {"cn": "zh", "default": "en"}},
        "rules": rules if rules is not None else FS_TEST_RULES,
        "retention": {"default_class": "standard", "classes": {"standard": {"days": 180}}},
        "storage": {"tiers": {"hot": {"type": "local", "path": str(work / "hot")}},
                    "hot": "hot", "cold": None, "archive": None},
        "signing": {"key_file": str(work / "keys" / "signing.ed25519")},
        "privacy": {"hash_key_file": str(work / "keys" / "subject-hmac.key")},
        "encryption": {"enabled": encryption, "master_key_file": str(work / "keys" / "master" / "demo.key")},
        "logging": {"level": "DEBUG"},
    }
    path = work / "pbx-recorder.yaml"
    atomic.write_bytes(path, yaml.safe_dump(config, sort_keys=False).encode())  # owner-only
    return path


class FsRecorderProcess(RecorderProcess):
    def __init__(self, config_path: str | Path, pbx: PrivateFreeSWITCH, log_path: str | Path,
                 probe_ports: tuple[int, ...] = ()) -> None:
        super().__init__(config_path, pbx, log_path)  # type: ignore[arg-type]
        self.fs = pbx
        self.probe_ports = probe_ports  # the test's own ESL connections, not the daemon's

    def ready(self) -> bool:
        return tcp_listening(self.fs.socket_host, self.fs.socket_port) and \
            self.fs.esl_clients(exclude_local_ports=self.probe_ports) > 0
