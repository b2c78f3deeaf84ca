"""Shared helpers for the lifecycle tests: a catalog, local tiers, calls and recordings."""

from __future__ import annotations

import hashlib
import io
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.lifecycle.policy import DAY, RetentionClass
from pbx_recorder.recording import ledger
from storage.local import LocalTier

NOW = 1_800_000_000.0
KEY = b"k" * 32
CLASSES = {
    "standard": RetentionClass("standard", days=180, cold_after_days=30),
    "finance": RetentionClass("finance", days=1095, cold_after_days=30, protected=True),
    "short": RetentionClass("short", days=10, cold_after_days=None),
}


@dataclass
class Env:
    conn: sqlite3.Connection
    tiers: dict[str, LocalTier]
    db: Path


def make_env(tmp_path: Path, names: tuple[str, ...] = ("hot", "cold", "cold-eu")) -> Env:
    db = tmp_path / "catalog.db"
    tiers = {n: LocalTier(n, tmp_path / "tiers" / n) for n in names}
    return Env(open_catalog(db), tiers, db)


def add_call(
    env: Env,
    call_id: str,
    *,
    caller: str = "+15551230001",
    callee: str = "200",
    region: str = "",
    cls: str = "standard",
    started_at: float = NOW - 100 * DAY,
    queue: str = "",
) -> None:
    env.conn.execute(
        "INSERT INTO calls (call_id, caller_num, callee_num, region, retention_class, started_at, queue)"
        " VALUES (?,?,?,?,?,?,?)",
        (call_id, caller, callee, region, cls, started_at, queue),
    )


def add_recording(
    env: Env,
    call_id: str,
    rid: str,
    *,
    tier: str = "hot",
    age_days: float = 100,
    cls: str = "standard",
    region: str = "",
    data: bytes | None = None,
    protected: bool = False,
    state: str = "stored",
) -> str:
    data = data if data is not None else f"audio of {rid}".encode() * 10
    sha = hashlib.sha256(data).hexdigest()
    key = f"2027/01/{call_id}/{rid}.wav"
    env.tiers[tier].put(key, io.BytesIO(data), sha256=sha)
    created = NOW - age_days * DAY
    c = CLASSES.get(cls)
    until = created + c.days * DAY if c and c.days > 0 else None
    env.conn.execute(
        "INSERT INTO recordings (recording_id, call_id, state, size, sha256, tier, storage_key,"
        " retention_class,"
        " retain_until, protected, region, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (rid, call_id, state, len(data), sha, tier, key, cls, until, int(protected), region, created),
    )
    return key


def rec(env: Env, rid: str) -> dict | None:
    row = env.conn.execute("SELECT * FROM recordings WHERE recording_id=?", (rid,)).fetchone()
    return dict(row) if row else None


def ledger_events(env: Env, event: str) -> list[str]:
    return [
        r[0] for r in env.conn.execute("SELECT recording_id FROM ledger WHERE event=? ORDER BY seq", (event,))
    ]


def chain_ok(env: Env) -> bool:
    return ledger.verify_chain(env.conn) == []


def make_cli_env(tmp_path: Path, extra: str = "") -> tuple[Env, str]:
    """A config file for the lifecycle CLI (local hot + cold tiers, catalog, privacy key) plus
    the Env over the same catalog and tiers; ``extra`` is appended YAML (e.g. ``access:``)."""
    (tmp_path / "hmac.key").write_text("0123456789abcdef0123456789abcdef")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
catalog: {{path: {tmp_path}/catalog.db}}
storage:
  hot: hot
  cold: cold
  tiers:
    hot: {{type: local, path: {tmp_path}/hot}}
    cold: {{type: local, path: {tmp_path}/cold}}
privacy: {{hash_key_file: {tmp_path}/hmac.key}}
{extra}""")
    tiers = {n: LocalTier(n, tmp_path / n) for n in ("hot", "cold")}
    return Env(open_catalog(tmp_path / "catalog.db"), tiers, tmp_path / "catalog.db"), str(cfg)


def run_cli_as(monkeypatch: Any, capsys: Any, cfg: str, user: str | None, *argv: str) -> tuple[int, str]:
    """Run the CLI on the installation's configuration ``cfg`` as a root front end acting for
    ``user`` (``PBX_RECORDER_USER``), or as the host account itself (``user`` None); exit code and
    what it printed."""
    from pbx_recorder.cli import main

    if user is None:
        monkeypatch.delenv("PBX_RECORDER_USER", raising=False)
    else:
        monkeypatch.setenv("PBX_RECORDER_USER", user)
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    code = main(["--config", cfg, *argv])
    return code, capsys.readouterr().out
