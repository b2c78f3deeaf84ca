"""Follow the classes a bucket lifecycle rule gives objects (tiers with ``class_transition: lifecycle``).

On such a tier the recorder never asks for the cold class itself (the server may refuse a
direct write into it); the bucket's rule moves each object later.  ``follow`` reads where
each recording's primary object really is (HEAD, through a delete marker a transition may
leave on a versioned bucket) and brings the catalog's ``storage_class`` up to date, so
``recordings get`` / ``restore`` and reports name the class the object is in.  One
recording that cannot be read is logged and skipped; the rest go on.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping

from pbx_recorder.errors import StorageError
from pbx_recorder.lifecycle.journal import Tx, rows
from pbx_recorder.recording.recording_objects import version_of
from storage.base import Tier

log = logging.getLogger(__name__)
LIVE_STATES = ("stored", "verified", "migrated")


def lifecycle_tiers(tiers: Mapping[str, Tier]) -> list[str]:
    return [name for name, t in tiers.items() if getattr(t, "class_transition", "direct") == "lifecycle"]


def follow(conn: sqlite3.Connection, tiers: Mapping[str, Tier]) -> list[str]:
    """Update ``recordings.storage_class`` from the objects; returns "rid: old -> new" per change."""
    changes: list[str] = []
    for name in lifecycle_tiers(tiers):
        tier = tiers[name]
        marks = ",".join("?" * len(LIVE_STATES))
        for rec in rows(conn, f"SELECT * FROM recordings WHERE tier=? AND state IN ({marks})",
                        (name, *LIVE_STATES)):
            key = rec["storage_key"]
            try:
                info = tier.stat(key, version_of(rec, key))  # type: ignore[call-arg]
            except StorageError as exc:
                log.warning("class of rec=%s on %s not followed: %s", rec["recording_id"], name, exc)
                continue
            if info is None or info.storage_class == rec["storage_class"]:
                continue
            with Tx(conn):
                conn.execute("UPDATE recordings SET storage_class=?, restore_state=? WHERE recording_id=?",
                             (info.storage_class, info.restore_state, rec["recording_id"]))
            log.info("rec=%s on %s: class %s -> %s (bucket lifecycle rule)", rec["recording_id"], name,
                     rec["storage_class"] or "?", info.storage_class)
            changes.append(f"{rec['recording_id']}: {rec['storage_class'] or '?'} -> {info.storage_class}")
    return changes
