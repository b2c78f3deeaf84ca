"""The daemon's heartbeat: what the health page reads to say "up" (catalog ``catalog_settings``).

Every ``INTERVAL_S`` the daemon writes one row per node, ``daemon.heartbeat.<node>``, holding a
small JSON state: when, its pid, whether the PBX connection (AMI or ESL) is logged in, how many
calls it follows, the spool backlog and the age of its oldest item.  Counts and ages only: no
call id, number or file name, so the IT role may see it.  A graceful stop writes a last row with
``"stopped": true``.  The write is one portable ``INSERT ... ON CONFLICT`` (SQLite and
PostgreSQL).  :func:`is_up` is the pure reading: a beat younger than ``STALE_AFTER`` intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any

from pbx_recorder.lifecycle.journal import Tx

log = logging.getLogger(__name__)

PREFIX = "daemon.heartbeat."
INTERVAL_S = 10.0
STALE_AFTER = 3  # intervals without a beat: the daemon is not up


def write(conn: Any, node: str, state: dict[str, Any], now: float) -> None:
    text = json.dumps({**state, "at": now, "node": node}, sort_keys=True)
    with Tx(conn):
        conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) ON CONFLICT (name) "
                     "DO UPDATE SET value = excluded.value", (PREFIX + node, text))


def read_all(conn: Any) -> list[dict[str, Any]]:
    """Every node's last beat (a prefix range, no LIKE: the same on both engines)."""
    rows = conn.execute("SELECT name, value FROM catalog_settings WHERE name >= ? AND name < ? ORDER BY name",
                        (PREFIX, PREFIX[:-1] + chr(ord(PREFIX[-1]) + 1))).fetchall()
    beats = []
    for _, value in rows:
        with contextlib.suppress(ValueError, TypeError):
            beat = json.loads(value)
            if isinstance(beat, dict):
                beats.append(beat)
    return beats


def is_up(beat: dict[str, Any], now: float, interval_s: float = INTERVAL_S) -> bool:
    if beat.get("stopped"):
        return False
    try:
        return now - float(beat.get("at", 0)) <= STALE_AFTER * interval_s
    except (TypeError, ValueError):
        return False


def _state(daemon: Any) -> dict[str, Any]:
    """Blocking (the spool is read): run in a thread."""
    app = daemon.app
    state: dict[str, Any] = {"pid": os.getpid(), "pbx": str(app.config.pbx.type),
                             "pbx_connected": bool(getattr(app.ami, "connected", False)),
                             "live_calls": len(app.callbook.live_call_ids())}
    try:
        entries = app.spool.pending()
    except OSError as exc:
        log.warning("heartbeat: cannot read the spool: %s", exc)
        return state
    created = [float(e.manifest.created_at) for e in entries if e.manifest.created_at]
    state["spool_pending"] = len(entries)
    state["spool_oldest_at"] = min(created) if created else None
    return state


def _beat(daemon: Any, **extra: Any) -> None:
    app = daemon.app
    try:
        write(app.catalog.connection(), str(app.node), {**_state(daemon), **extra}, daemon.clock())
    finally:  # on PostgreSQL the worker thread's connection goes back to the pool at once: the
        app.catalog.release()  # daemon's own writers must never wait for one a heartbeat holds


async def run(daemon: Any, stop: asyncio.Event, every_s: float | None = None) -> None:
    """The daemon's heartbeat task, until ``stop``; then one last beat saying it stopped."""
    every_s = every_s or INTERVAL_S
    while not stop.is_set():
        try:
            await asyncio.to_thread(_beat, daemon)
        except Exception:  # noqa: BLE001 - a heartbeat must never stop the recorder
            log.exception("heartbeat not written")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
    with contextlib.suppress(Exception):
        await asyncio.to_thread(_beat, daemon, stopped=True)
