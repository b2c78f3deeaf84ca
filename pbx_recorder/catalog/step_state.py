"""The saved progress of a resumable catalog step: one JSON document in ``catalog_settings``.

``catalog migrate``'s data passes and ``keys rotate-index`` keep their cursor and counts under
their own name, written in the same transaction as the batch they describe, so a crash loses at
most the batch under way and the next run resumes where it stopped.  Both engines: the upsert is
SQLite's and PostgreSQL's ``ON CONFLICT``.
"""

from __future__ import annotations

import json
from typing import Any


def load(conn: Any, name: str) -> dict[str, Any] | None:
    """The step's saved state, or None before its first batch."""
    row = conn.execute("SELECT value FROM catalog_settings WHERE name = ?", (name,)).fetchone()
    return json.loads(row[0]) if row else None


def save(conn: Any, name: str, state: dict[str, Any]) -> None:
    """Write the step's state (in the caller's transaction)."""
    conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                 "SET value = excluded.value", (name, json.dumps(state, sort_keys=True)))
