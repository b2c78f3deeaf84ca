"""Erasure tombstones in the catalog too: every node sharing a catalog knows every erasure.

The tombstone file (:mod:`pbx_recorder.lifecycle.tombstones`) lives beside the privacy key on
the host where ``erase`` ran, outside every backup, so that a restored backup is scrubbed.  With
several recorder nodes on one PostgreSQL catalog, another node's late-copy guard never sees that
file: a call of the erased subject still live on node B would be stored when it ended.  So each
tombstone is also written into the shared catalog (``catalog_settings``, one row per keyed hash
and request: ``tombstone:<hmac>:<request id>`` -> ``{"at", "kind", "restore"}``; keyed hashes
only, never a number), and the guard asks both.  ``catalog restore`` applies both as well: the
file of the host it runs on and every entry of the live catalog (:func:`restore_hashes`; a backup
older than the erasure does not hold the newer rows, and the erasure may have run on another node).

Lookups are key ranges on the primary key, the same on both engines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

PREFIX = "tombstone:"


def _name(hmac: str, request_id: str) -> str:
    return f"{PREFIX}{hmac}:{request_id}"


def record(conn: Any, pairs: Iterable[tuple[str, str]], *, request_id: str, now: float,
           restore: bool = True) -> int:
    """Write ``(kind, hmac)`` pairs erased at ``now`` by ``request_id`` (in the caller's
    transaction if one is open).  A restore-applied entry is never turned into a live-only one."""
    n = 0
    for kind, hmac in dict.fromkeys(pairs):
        if not str(hmac).startswith("hmac-sha256:"):
            raise ValueError("a tombstone holds keyed hashes only")
        name = _name(hmac, request_id)
        old = conn.execute("SELECT value FROM catalog_settings WHERE name = ?", (name,)).fetchone()
        keep_restore = restore or (old is not None and bool(json.loads(old[0]).get("restore", True)))
        value = json.dumps({"at": float(now), "kind": kind, "restore": keep_restore}, sort_keys=True)
        conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) ON CONFLICT (name) "
                     "DO UPDATE SET value = excluded.value", (name, value))
        n += 1
    return n


def any_recorded(conn: Any) -> bool:
    """Was anything ever erased (one index probe: the guard asks on every call update)."""
    row = conn.execute("SELECT 1 FROM catalog_settings WHERE name >= ? AND name < ? LIMIT 1",
                       (PREFIX, PREFIX[:-1] + ";")).fetchone()
    return row is not None


def erasures(conn: Any, hashes: Iterable[str]) -> list[tuple[float, str, str]]:
    """``(erased at, request id, kind)`` of every erasure of one of ``hashes``, latest first."""
    found: set[tuple[float, str, str]] = set()
    for h in dict.fromkeys(hashes):
        low = f"{PREFIX}{h}:"
        for name, value in conn.execute("SELECT name, value FROM catalog_settings WHERE name >= ? AND "
                                         "name < ?", (low, low[:-1] + ";")):
            body = json.loads(value)
            found.add((float(body["at"]), str(name)[len(low):], str(body["kind"])))
    return sorted(found, reverse=True)



def restore_hashes(conn: Any, *, batch: int = 1000) -> set[str]:
    """The keyed hashes a restored catalog is scrubbed of: every entry not marked live-only
    (``restore`` false: the subject of a partial erasure), read in key ranges of ``batch`` rows.
    A catalog without the table (a backup from before schema 6) has none."""
    from pbx_recorder.catalog import engine

    found: set[str] = set()
    if not engine.table_columns(conn, "catalog_settings"):
        return found
    low, high = PREFIX, PREFIX[:-1] + ";"
    while True:
        rows = conn.execute("SELECT name, value FROM catalog_settings WHERE name > ? AND name < ? "
                            "ORDER BY name LIMIT ?", (low, high, batch)).fetchall()
        for name, value in rows:
            kind, digest, _request = str(name)[len(PREFIX):].split(":", 2)  # hmac-sha256:<hex>:<request>
            if json.loads(value).get("restore", True):
                found.add(f"{kind}:{digest}")
        if len(rows) < batch:
            return found
        low = str(rows[-1][0])
