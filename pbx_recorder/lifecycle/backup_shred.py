"""Catalog backups after an erasure: shredded by the next catalog backup, one for all erasures.

An erased number is still in every catalog backup taken before the erasure.  Those backups are
shredded by starting a new backup-key epoch, taking a fresh backup under it and destroying every
older backup key (``lifecycle.backup_keys``; ``Runtime.shred_backups``).  That fresh backup is a
copy of the whole catalog: 42 GB at 10 million calls, minutes of work and the catalog's size in
free space, per erasure -- and an erasure started from the console would wait for it.

So an erasure (``erase``, the console's erasure) leaves a marker here, in ``catalog_settings``
(``backup_shred_pending:<request id>``, written with the erasure's last rows), and says so in its
receipt (``backups.shred`` ``pending``).  The next ``catalog backup`` -- the lifecycle timer runs
one every hour -- sees the markers, makes its backup the fresh one of a new epoch, destroys the
older backup keys, and completes every request it covered: their receipts get the report
(``backups.shred`` ``done``, the fresh backup, the destroyed key ids), their markers go, and one
audit row names them.  Until then the older backups are readable by whoever holds the backup
keys; a restore from one removes the erased calls again (the tombstones), and ``erase status``
lists the request as waiting for it (overdue past the request's deadline).  ``erase
--shred-backups-now`` keeps the former behaviour: the fresh backup inside the erasure.

A marker written while a backup runs is left for the next one: the backup completes only the
requests it read before its epoch began, whose rows were gone before its snapshot.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from pbx_recorder.lifecycle.journal import Tx

log = logging.getLogger(__name__)

PREFIX = "backup_shred_pending:"
#: what a request's receipt says about the backups until the next catalog backup
PENDING = "pending"


def schedule(conn: sqlite3.Connection, request_id: str, now: float) -> dict[str, Any]:
    """Mark ``request_id``'s backups for shredding by the next catalog backup; the receipt's
    ``backups`` part.  Idempotent (a request run again keeps its first time)."""
    conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                 (PREFIX + request_id, json.dumps({"since": now})))
    return {"shred": PENDING, "since": now,
            "by": "the next `pbx-recorder catalog backup` (the lifecycle timer's, hourly): a new "
                  "backup-key epoch, a fresh backup, every older backup key destroyed"}


def pending(conn: sqlite3.Connection) -> dict[str, float]:
    """Request id -> when its erasure asked, for every request whose backups are not shredded yet."""
    out = {}
    # the prefix as a key range (LIKE's escape character differs between the engines)
    for name, value in conn.execute("SELECT name, value FROM catalog_settings WHERE name >= ? AND name < ?",
                                    (PREFIX, PREFIX[:-1] + chr(ord(PREFIX[-1]) + 1))):
        try:
            since = float(json.loads(value).get("since", 0.0))
        except (ValueError, TypeError, AttributeError):
            since = 0.0  # a damaged marker still asks for the shred
        out[str(name)[len(PREFIX):]] = since
    return out


def complete(conn: sqlite3.Connection, request_ids: list[str], report: Mapping[str, Any],
             now: float) -> list[str]:
    """Record ``report`` (``Runtime.shred_backups``'s) in each request's receipt and drop its
    marker, in one transaction; returns the requests completed."""
    done = []
    with Tx(conn):
        for request_id in request_ids:
            row = conn.execute("SELECT receipt FROM erasure_requests WHERE request_id = ?",
                               (request_id,)).fetchone()
            if row is not None and row[0]:
                try:
                    receipt = json.loads(row[0])
                    if not isinstance(receipt, dict):
                        raise ValueError("not an object")
                except ValueError as exc:  # an edited receipt: left as it is, the request waits on
                    log.error("erasure %s: its receipt is not readable JSON (%s): backups shredded, "
                              "not recorded in it; the request stays listed as waiting", request_id, exc)
                    continue
                receipt["backups"] = {**dict(report), "shred": "done", "shredded_at": now,
                                      "asked_at": (receipt.get("backups") or {}).get("since")}
                conn.execute("UPDATE erasure_requests SET receipt = ? WHERE request_id = ?",
                             (json.dumps(receipt, sort_keys=True), request_id))
            conn.execute("DELETE FROM catalog_settings WHERE name = ?", (PREFIX + request_id,))
            done.append(request_id)
    return done


def backup_then_shred(conn: sqlite3.Connection, shred: Callable[[float], Mapping[str, Any]],
                      now: float) -> tuple[Mapping[str, Any], list[str]] | None:
    """When erasures wait: ``shred(now)`` (a new epoch, the fresh backup, older keys destroyed)
    and the waiting requests completed; None when none waits (the caller takes a plain backup).
    A failure of ``shred`` propagates with every marker kept."""
    waiting = sorted(pending(conn))
    if not waiting:
        return None
    report = shred(now)
    return report, complete(conn, waiting, report, now)
