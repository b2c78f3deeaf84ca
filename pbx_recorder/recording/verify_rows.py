"""The catalog side of ``verify``: the recording rows it checks, where the ledger says a
recording's objects were, the recordings erased or parked, and the hashes a row expects."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pbx_recorder.catalog import engine
from pbx_recorder.errors import CatalogError
from pbx_recorder.recording import manifest_copy
from pbx_recorder.recording.recording_objects import objects_of
from pbx_recorder.recording.verify_bindings import ledger_object_keys, locations_of
from pbx_recorder.recording.verify_report import Mismatch

LIVE_STATES = ("stored", "verified", "migrated")
GONE_STATES = ("expired", "erased", "deleted")
#: a row before its audio is stored (recording, spool, a file the PBX never wrote, an orphan
#: adopted, a refusal parked): no tier holds it yet, so no ``stored`` ledger entry names it
BEFORE_STORE_STATES = ("recording", "paused", "stopped", "spooled", "missing", "orphaned", "ship_failed")
COLUMNS = ("recording_id", "call_id", "state", "size", "sha256", "audio_sha256", "tier", "storage_key",
           "encrypted", "key_id", "wrapped_key", "manifest", "signature",
           "retention_class", "retain_until",  # (these two: verify_bindings.retention_binding)
           "created_at")  # (what retention counts from: bound to the ledger and the signed manifest)
OPTIONAL_COLUMNS = ("objects", "manifest_sha256")  # schema migrations 3 and 11


def catalog_connection(path: str | Path, *, read_only: bool = True) -> sqlite3.Connection:
    """Open an existing catalog database (read-only by default)."""
    if not engine.is_url(path) and not Path(path).is_file():
        raise CatalogError(f"catalog {path} does not exist")
    return engine.connect(path, read_only=read_only, legacy=True)  # type: ignore[no-any-return]


def recording_rows(conn: sqlite3.Connection, recording_id: str | None = None) -> Iterator[dict[str, Any]]:
    present = set(engine.table_columns(conn, "recordings"))
    columns = COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if c in present)  # older catalogs lack them
    sql = f"SELECT {', '.join(columns)} FROM recordings"
    params: tuple[Any, ...] = ()
    if recording_id is not None:
        sql, params = sql + " WHERE recording_id = ?", (recording_id,)
    for row in conn.execute(sql + " ORDER BY created_at, recording_id", params):
        yield dict(zip(columns, row, strict=True))


def _gone_locations(conn: sqlite3.Connection, recording_id: str) -> set[tuple[str, str]]:
    """Ledger locations plus, on each of their tiers, the objects derived from the key (manifest
    sidecar, legs) by naming and those the ``stored`` entry recorded (legs, kept original, the
    sealed sidecar: named by the ledger, not guessed)."""
    return _gone_places(recording_id, conn.execute(
        "SELECT event, payload FROM ledger WHERE recording_id = ? AND event IN ('stored', 'migrated')"
        " ORDER BY seq", (recording_id,)).fetchall())


def _gone_places(recording_id: str, entries: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """:func:`_gone_locations` from entries already read."""
    entries = list(entries)
    recorded = ledger_object_keys(entries)
    places = set()
    for tier, key in locations_of(entries):
        places |= {(tier, o.key) for o in objects_of({"recording_id": recording_id, "storage_key": key})}
        places |= {(tier, other) for other in recorded}
    return places


def _removed_ids(conn: sqlite3.Connection, present: set[str], only: str | None) -> list[str]:
    sql = "SELECT DISTINCT recording_id FROM ledger WHERE event IN ('deleted', 'erased')"
    found = [r[0] for r in conn.execute(sql + " ORDER BY recording_id")]
    return [rid for rid in found if rid not in present and (only is None or rid == only)]


def _refused(conn: sqlite3.Connection, only: str | None) -> list[str]:
    """Recordings the shipper parked after a permanent refusal (state ship_failed), with why."""
    out = []
    for rid, flags in conn.execute("SELECT recording_id, flags FROM recordings WHERE state='ship_failed'"
                                   " ORDER BY created_at, recording_id"):
        if only is not None and rid != only:
            continue
        try:
            why = [str(f) for f in json.loads(flags or "[]") if str(f).startswith("ship_refused")]
        except ValueError:
            why = []
        out.append(f"{rid}: {why[-1] if why else 'ship_refused'} (waiting in the spool, not retried)")
    return out


def vanished_mismatch(rid: str) -> Mismatch:
    return Mismatch(rid, "catalog row removed without a deletion or erasure ledger entry", "catalog row",
                    "absent")


def expected_plaintext_sha256(row: Mapping[str, Any]) -> str:
    """What the primary object decrypts to: ``manifest.processing.plaintext_sha256`` (set by
    EncryptStage; differs from ``audio_sha256`` after transcoding), else ``audio_sha256``."""
    processing = manifest_copy.parse(row.get("manifest")).get("processing")
    if isinstance(processing, Mapping) and processing.get("plaintext_sha256"):
        return str(processing["plaintext_sha256"])
    return str(row.get("audio_sha256") or "")


def _manifest_audio_hash(manifest: Any) -> str:
    files = manifest.get("files") if isinstance(manifest, Mapping) else None
    if files and isinstance(files[0], Mapping):
        return str(files[0].get("sha256", ""))
    return ""
