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

**Several nodes** (one PostgreSQL catalog): each node keeps its own backup keys, and the hourly
backup runs on whichever node holds the lifecycle lease, so backups of one catalog lie under
several nodes' keys.  Every node that takes a backup is listed here (``backup_node:<node>``,
:func:`register`).  The first backup after an erasure, on any node, is the fresh one and destroys
that node's older keys; every other listed node destroys all of its backup keys at its next
``catalog backup`` run -- also when another node holds the lease, before it gives way
(:func:`share`) -- since a fresh backup of the erased catalog exists.  Each node's part is a row
``backup_shred_done:["<request>","<node>"]``; a request is done (its receipt completed, its
marker gone) once every listed node has done its part (:func:`complete_ready`), and until then
``erase status`` names the nodes it waits for.  A node taken out of service is struck off with
``catalog backup-nodes --forget NODE`` (its keys must be destroyed where it was).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from pbx_recorder.lifecycle.journal import Tx, json_object

log = logging.getLogger(__name__)

PREFIX = "backup_shred_pending:"
#: a node that takes catalog backups under keys of its own
NODE_PREFIX = "backup_node:"
#: one node's part of one request's shred: its older backup keys destroyed
DONE_PREFIX = "backup_shred_done:"
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


def _prefixed(conn: sqlite3.Connection, prefix: str) -> list[tuple[str, str]]:
    """(name after ``prefix``, value) of the ``catalog_settings`` rows named with ``prefix``: a key
    range (LIKE's escape character differs between the engines)."""
    rows = conn.execute("SELECT name, value FROM catalog_settings WHERE name >= ? AND name < ? ORDER BY name",
                        (prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)))
    return [(str(name)[len(prefix):], str(value)) for name, value in rows]


def pending(conn: sqlite3.Connection) -> dict[str, float]:
    """Request id -> when its erasure asked, for every request whose backups are not shredded yet."""
    out = {}
    for request_id, value in _prefixed(conn, PREFIX):
        try:
            since = float(json_object(value).get("since", 0.0))
        except (ValueError, TypeError):
            since = 0.0  # a damaged marker still asks for the shred
        out[request_id] = since
    return out


def register(conn: sqlite3.Connection, node: str, now: float) -> None:
    """``node`` takes catalog backups under its own keys (before it takes one): every later erasure
    waits for its part.  Idempotent."""
    with Tx(conn):
        conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                     (NODE_PREFIX + node, json.dumps({"since": now})))


def nodes(conn: sqlite3.Connection) -> dict[str, float]:
    """The nodes listed as taking backups -> since when."""
    return {node: float(json_object(value).get("since") or 0.0)
            for node, value in _prefixed(conn, NODE_PREFIX)}


def forget_node(conn: sqlite3.Connection, node: str) -> bool:
    """Strike ``node`` off the list (a node taken out of service, its keys destroyed there): no
    erasure waits for it any more.  False when it was not listed."""
    with Tx(conn):
        gone = conn.execute("DELETE FROM catalog_settings WHERE name = ?", (NODE_PREFIX + node,)).rowcount
    return bool(gone)


def parts(conn: sqlite3.Connection) -> dict[str, dict[str, dict[str, Any]]]:
    """Request id -> node -> that node's part done (``fresh``: it took the fresh backup)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, value in _prefixed(conn, DONE_PREFIX):
        try:
            request_id, node = json.loads(name)
        except (ValueError, TypeError):
            continue  # not a row this module wrote
        out.setdefault(str(request_id), {})[str(node)] = json_object(value)
    return out


def _has_fresh(mine: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether one request's parts (node -> part) include the fresh backup."""
    return any(p.get("fresh") for p in mine.values())


def _record_part(conn: sqlite3.Connection, request_id: str, node: str, part: Mapping[str, Any]) -> None:
    conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                 (DONE_PREFIX + json.dumps([request_id, node]), json.dumps(dict(part), sort_keys=True)))


def waiting_nodes(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Request id -> the listed nodes whose part is still to do, for the requests whose fresh
    backup exists (a request without one waits for the next backup on any node)."""
    listed, done = nodes(conn), parts(conn)
    out = {}
    for request_id in pending(conn):
        mine = done.get(request_id, {})
        if _has_fresh(mine):
            out[request_id] = sorted(set(listed) - set(mine))
    return out


def share(conn: sqlite3.Connection, node: str, destroy_all: Callable[[], list[str]],
          now: float) -> list[str]:
    """``node``'s part of the requests another node took the fresh backup for: every backup key of
    ``node`` destroyed (``destroy_all``), its part recorded; returns those requests.  Nothing for a
    node not listed (it never took a backup) or a request without its fresh backup yet."""
    if node not in nodes(conn):
        return []
    done = parts(conn)
    owed = [r for r in sorted(pending(conn))
            if node not in done.get(r, {}) and _has_fresh(done.get(r, {}))]
    if not owed:
        return []
    destroyed = destroy_all()
    with Tx(conn):
        for request_id in owed:
            _record_part(conn, request_id, node, {"fresh": False, "at": now,
                                                  "destroyed_backup_keys": destroyed})
    log.warning("node %s: backup keys destroyed (%d) for erasure request(s) %s", node, len(destroyed),
                ", ".join(owed))
    return owed


def complete(conn: sqlite3.Connection, reports: Mapping[str, Mapping[str, Any]], now: float) -> list[str]:
    """Record each request's report in its receipt and drop its marker and parts, in one
    transaction; returns the requests completed."""
    done = []
    with Tx(conn):
        nodes_of = {r: list(mine) for r, mine in parts(conn).items()}
        for request_id, report in sorted(reports.items()):
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
            for node in nodes_of.get(request_id, []):
                conn.execute("DELETE FROM catalog_settings WHERE name = ?",
                             (DONE_PREFIX + json.dumps([request_id, node]),))
            done.append(request_id)
    return done


def complete_ready(conn: sqlite3.Connection, now: float) -> list[str]:
    """Complete every request whose fresh backup exists and whose every listed node has done its
    part: its receipt gets the fresh backup's report and each node's destroyed keys."""
    listed, done = set(nodes(conn)), parts(conn)
    reports = {}
    for request_id in pending(conn):
        mine = done.get(request_id, {})
        fresh = next((p for p in mine.values() if p.get("fresh")), None)
        if fresh is None or not listed <= set(mine):
            continue
        reports[request_id] = {**(fresh.get("report") or {}),
                               "nodes": {n: {"fresh_backup": bool(p.get("fresh")), "at": p.get("at"),
                                             "destroyed_backup_keys": p.get("destroyed_backup_keys", [])}
                                         for n, p in sorted(mine.items())}}
    return complete(conn, reports, now) if reports else []


def record_fresh(conn: sqlite3.Connection, request_ids: list[str], node: str,
                 report: Mapping[str, Any], now: float) -> None:
    """``node`` took the fresh backup for ``request_ids`` and destroyed its older keys
    (``report``: ``Runtime.shred_backups``'s)."""
    with Tx(conn):
        for request_id in request_ids:
            _record_part(conn, request_id, node,
                         {"fresh": True, "at": now, "report": dict(report),
                          "destroyed_backup_keys": report.get("destroyed_backup_keys", [])})


def backup_then_shred(conn: sqlite3.Connection, shred: Callable[[float], Mapping[str, Any]],
                      now: float, node: str) -> tuple[Mapping[str, Any], list[str], list[str]] | None:
    """When an erasure waits for its fresh backup: ``shred(now)`` (a new epoch, the fresh backup,
    this node's older keys destroyed), this node's part recorded for every waiting request, and
    the requests every listed node has done completed: ``(report, requests covered, requests
    completed)``.  None when every waiting request has its fresh backup already (the caller takes a
    plain backup; this node's part is :func:`share`'s).  A failure of ``shred`` propagates with
    every marker kept."""
    done = parts(conn)
    waiting = sorted(pending(conn))
    if all(_has_fresh(done.get(r, {})) for r in waiting):
        return None
    report = shred(now)
    covered = [r for r in waiting if node not in done.get(r, {})]
    record_fresh(conn, covered, node, report, now)
    return report, covered, complete_ready(conn, now)
