"""The data step of schema 6: numbers already in the catalog encrypted, their indexes filled.

Schema 6 only adds columns; the rows written before it hold their numbers in clear, and rows
written under an older catalog key (``keys rotate``) hold tokens of that key. ``protect`` walks
``calls``, ``recordings`` (manifest), ``live_calls`` and ``call_extra_numbers`` in key order, in
batches of one transaction each, and rewrites every row that is clear or under another key than
the current one; a row already right is only read. Resumable: an interrupted run leaves whole
batches done, and the next run skips them. When something changed it clears what the old values
left: ``secure_delete`` zeroes freed cells, a WAL checkpoint moves the pages into the file, and
``VACUUM`` rewrites the file so no old page keeps a digit. Seals stay valid: they are over the
plaintext canonical row (``pbx_recorder.recording.call_seal``), which the step does not change.

Run at daemon start and by ``pbx-recorder catalog migrate``.  ``catalog_settings`` remembers
the key id a full pass finished under, so a start after that costs one lookup.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pbx_recorder.catalog import engine, extra_numbers, named_rows
from pbx_recorder.catalog.number_protection import is_token, token_key_id
from pbx_recorder.catalog.protected_rows import (
    CALL_FIELDS,
    CLEAR_DEFAULTS,
    MANIFEST_FIELDS,
    MANIFEST_TOKEN,
    NumberProtection,
)
from pbx_recorder.errors import CatalogError, CryptoError

log = logging.getLogger(__name__)

DONE_SETTING = "numbers_protected"
DEFAULT_BATCH = 500
_CLEAR = {f: json.dumps(v) if isinstance(v, dict) else v for f, v in CLEAR_DEFAULTS.items()}


@dataclass
class ProtectReport:
    calls: int = 0
    manifests: int = 0
    live_calls: int = 0
    extra_numbers: int = 0
    vacuumed: bool = False
    skipped: bool = False  # a full pass had already finished under the current key
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.calls + self.manifests + self.live_calls + self.extra_numbers


def is_done(conn: sqlite3.Connection, numbers: NumberProtection) -> bool:
    row = conn.execute("SELECT value FROM catalog_settings WHERE name = ?", (DONE_SETTING,)).fetchone()
    return row is not None and row[0] == numbers.cipher.current_key_id


def _rows(conn: sqlite3.Connection, table: str, key: str, after: str, batch: int) -> list[dict[str, Any]]:
    cur = conn.execute(f"SELECT * FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?", (after, batch))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]


def _stale(token: Any, current: str) -> bool:
    return is_token(token) and token_key_id(str(token)) != current


def _call_needs(row: dict[str, Any], current: str) -> bool:
    clear = any(str(row.get(f) or "") not in ("", _CLEAR[f]) for f in CALL_FIELDS)
    return clear or _stale(row.get("numbers"), current)


def _manifest_needs(stored: Any, current: str) -> bool:
    try:
        m = json.loads(stored) if isinstance(stored, str) else stored
    except ValueError:
        return False
    if not isinstance(m, dict):
        return False
    return any(f in m for f in MANIFEST_FIELDS) or _stale(m.get(MANIFEST_TOKEN), current)


def _walk(conn: sqlite3.Connection, table: str, key: str, batch: int,
          one: Callable[[dict[str, Any]], bool], errors: list[str]) -> int:
    after, changed = "", 0
    while True:
        rows = _rows(conn, table, key, after, batch)
        if not rows:
            return changed
        conn.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                try:
                    changed += one(row)
                except CryptoError as exc:  # one altered row must not stop the others
                    errors.append(f"{table} {row[key]}: {exc}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        after = str(rows[-1][key])


def protect(conn: sqlite3.Connection, numbers: NumberProtection, *, batch: int = DEFAULT_BATCH,
            force: bool = False, progress: Callable[[str, int], None] | None = None) -> ProtectReport:
    """Encrypt every clear (or old-key) number of the catalog behind ``conn``; see the module doc."""
    report = ProtectReport()
    if not force and is_done(conn, numbers):
        report.skipped = True
        return report
    current = numbers.cipher.current_key_id
    engine.secure_delete(conn)

    def call(row: dict[str, Any]) -> bool:
        if not _call_needs(row, current):
            return False
        plain = numbers.open_call(row)
        cdr = json.loads(plain["cdr"]) if isinstance(plain["cdr"], str) and plain["cdr"] else plain["cdr"]
        stored = numbers.seal_call(str(row["call_id"]), {**plain, "cdr": cdr})
        stored = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in stored.items()}
        conn.execute(f"UPDATE calls SET {', '.join(c + '=?' for c in stored)} WHERE call_id = ?",
                     [*stored.values(), row["call_id"]])
        named_rows.insert(conn, str(row["call_id"]),
                          numbers.named_numbers(plain["caller_num"], plain["callee_num"], cdr),
                          (str(stored["caller_bi"]), str(stored["callee_bi"])))
        report.calls += 1
        if progress:
            progress("calls", report.calls)
        return True

    def recording(row: dict[str, Any]) -> bool:
        if not _manifest_needs(row.get("manifest"), current):
            return False
        rid = str(row["recording_id"])
        plain = numbers.open_manifest(rid, row["manifest"])
        sealed = numbers.seal_manifest(rid, {k: v for k, v in plain.items()})
        conn.execute("UPDATE recordings SET manifest = ? WHERE recording_id = ?",
                     (json.dumps(sealed, sort_keys=True, default=list), rid))
        named_rows.insert(conn, str(row["call_id"]),
                          numbers.named_numbers(plain.get("cdr"), plain.get("callee_num")))
        report.manifests += 1
        return True

    def extra(row: dict[str, Any]) -> bool:  # a call's sealed extra numbers (schema 12)
        if not _stale(row["numbers"], current):
            return False
        call_id = str(row["call_id"])
        digits = extra_numbers.open_token(numbers, call_id, str(row["numbers"]))
        conn.execute("UPDATE call_extra_numbers SET numbers = ? WHERE call_id = ?",
                     (extra_numbers.seal(numbers, call_id, digits), call_id))
        report.extra_numbers += 1
        return True

    def live(row: dict[str, Any]) -> bool:
        state = str(row["state"])
        if is_token(state) and not _stale(state, current):
            return False
        text = numbers.open_text("live_calls", row["call_id"], state)
        conn.execute("UPDATE live_calls SET state = ? WHERE call_id = ?",
                     (numbers.seal_text("live_calls", row["call_id"], text), row["call_id"]))
        report.live_calls += 1
        return True

    try:
        _walk(conn, "calls", "call_id", batch, call, report.errors)
        _walk(conn, "recordings", "recording_id", batch, recording, report.errors)
        _walk(conn, "live_calls", "call_id", batch, live, report.errors)
        _walk(conn, "call_extra_numbers", "call_id", batch, extra, report.errors)
        if report.changed:
            engine.compact(conn)
            conn.execute("VACUUM")  # no page of the file keeps an old clear value
            engine.compact(conn)
            report.vacuumed = True
        if not report.errors:  # a row left as it was is retried by the next run
            conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) ON CONFLICT(name) "
                         "DO UPDATE SET value = excluded.value", (DONE_SETTING, current))
    except engine.db_errors() as exc:
        raise CatalogError(f"encrypting the catalog's numbers failed (run `pbx-recorder catalog migrate` "
                           f"again: it resumes): {exc}") from exc
    for line in report.errors:
        log.error("catalog numbers not re-encrypted: %s", line)
    log.info("catalog numbers protected under key %s: %d calls, %d manifests, %d live calls",
             current, report.calls, report.manifests, report.live_calls)
    return report
