"""Catalog access shared by the lifecycle jobs: connection, ledger events, audit rows.

The lifecycle jobs take a plain ``sqlite3.Connection`` (the pipeline helper's Catalog
exposes one); ``open_catalog`` makes one for the CLI and tests.  Ledger events go
through the crypto helper's hash-chained ``pbx_recorder.recording.ledger.append``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pbx_recorder.catalog import engine
from pbx_recorder.catalog.schema import ensure_schema
from pbx_recorder.errors import CatalogError
from pbx_recorder.recording import recording_objects
from pbx_recorder.recording.verify_bindings import ledger_object_keys, locations_of
from storage import file_modes

log = logging.getLogger(__name__)

LedgerAppend = Callable[[sqlite3.Connection, str, str, Mapping[str, Any], float], Any]


def open_catalog(path: str | Path) -> sqlite3.Connection:
    """A writable autocommit connection to the catalog at ``path`` (a file or a postgresql:// URL),
    its schema brought up to date."""
    if not engine.is_url(path):
        try:
            file_modes.prepare_sqlite(path)  # 0600 before SQLite creates it (and its WAL)
        except OSError as exc:
            raise CatalogError(f"cannot create catalog {path}: {exc.strerror}") from exc
    conn = engine.connect(path, timeout=30)
    try:
        ensure_schema(conn, path)
    except engine.db_errors() as exc:
        conn.close()
        raise CatalogError(f"cannot open catalog {engine.describe(path)}: {exc}") from exc
    return conn  # type: ignore[no-any-return]


class Tx:
    """``with Tx(conn):`` one explicit transaction (works with isolation_level=None too)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self._own = True
        else:
            self._own = False
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._own:
            return
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def json_object(text: str) -> dict[str, Any]:
    """``text`` read as a JSON object; {} for anything else (a damaged or edited value)."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def default_ledger() -> LedgerAppend:
    from pbx_recorder.recording import ledger  # crypto helper's module, imported lazily

    return ledger.append


def rows(
    conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] | list[Any] = ()
) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def audit(
    conn: sqlite3.Connection,
    *,
    actor: str,
    role: str,
    action: str,
    target: str,
    detail: Mapping[str, Any],
    now: float,
) -> None:
    from pbx_recorder import audit_trail  # the one audit writer (chained, numbers masked)

    audit_trail.record(conn, actor=actor, role=role, action=action, target=target, detail=detail, now=now)


def copies(
    conn: sqlite3.Connection, tiers: Mapping[str, Any], rec: Mapping[str, Any]
) -> set[tuple[str, str]]:
    """Every (tier, key) that may hold any of a recording's objects (``recording_objects.objects_of``:
    primary audio, legs, kept original, manifest sidecar): the catalog's tier, both ends of an
    unfinished move (``lifecycle_moves``; a move keeps every key), and the same keys on any other
    configured tier.  The keys are the row's and those the ledger recorded for it (``stored`` and
    ``migrated`` entries: a leg struck off the row by hand is deleted all the same)."""
    entries = conn.execute("SELECT event, payload FROM ledger WHERE recording_id = ? AND event IN "
                           "('stored', 'migrated') ORDER BY seq", (rec["recording_id"],)).fetchall()
    keys = list(dict.fromkeys([*recording_objects.keys_of(rec), *sorted(ledger_object_keys(entries)),
                               *sorted(k for _, k in locations_of(entries))]))
    places = {(rec["tier"], k) for k in keys}
    for m in rows(conn, "SELECT * FROM lifecycle_moves WHERE recording_id=?", (rec["recording_id"],)):
        places |= {(m["src_tier"], m["src_key"]), (m["dst_tier"], m["dst_key"])}
        places |= {(t, k) for k in keys for t in (m["src_tier"], m["dst_tier"])}
    for name, tier in tiers.items():
        for k in keys:
            if (name, k) not in places and tier.stat(k) is not None:
                places.add((name, k))
    return {(n, k) for n, k in places if k and n in tiers}
