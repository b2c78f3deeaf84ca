"""The data step that masks the stored filters and report figures older versions kept in clear.

Since this version every field of an export job's stored filter is masked when it is written
(``exports.stored_filter.masked``): a keyword typed as a number (``keyword=13800138000``), an
agent's dial string.  Before, only ``caller`` and ``callee`` were: the others stayed in clear in
``export_jobs.filter``, a row that outlives an erasure.  Likewise a report stored before QA agents
were masked keeps a remote agent's dial string (a mobile number) in ``reports.data``; it is masked
when read, not at rest.  :func:`run` (``pbx-recorder catalog migrate``) rewrites those rows
through the same masking:

* ``export_jobs.filter`` and ``report_schedules.filter`` by ``stored_filter.masked_again`` (a value
  that shows no number, masked already or a date, is kept as it is);
* ``reports.data`` by ``reports.figures.masked_at_rest`` (each QA agent by ``mask_channel``).

Masking, not a blind index, because nothing runs on these copies: an export runs on the filter
parsed from its request and held in memory by its thread (a row left ``queued`` or ``running`` by a
stopped service is failed at start-up, never resumed from the row); a report schedule's
``filter`` is written ``{}`` and never read (``reports run`` computes a period's figures from the
schedule's period and team); a stored report is only shown.

A saved search is run again, so it is not masked but encrypted under the catalog key
(``catalog.saved_search_rows``): given the catalog's number protection, :func:`run` also seals
every ``saved_searches.query`` still in clear (state ``saved_searches_sealed``, its own: a catalog
that ran the masking before runs only this); without keys it leaves them.

A saved search's name is its key, in clear; older versions accepted one holding a number
(``complaint 4915112345678``).  :func:`run` renames each such row to its masked form
(``saved_search_rows.masked_name``, `` (2)`` ... added when the owner has that name already), its
query sealed again under the new name (the token's associated data), with one audit row
(``searches.rename``: the owner and the new name) each, and logs the count per owner, never a
name (state ``saved_search_names_masked``, with or without keys).  A row whose query token does
not open is left as it is and counted per owner (``Report.names_unreadable``): delete it by hand.

Idempotent: a row is written only when its masked form differs, and masking a masked value gives
that value.  Resumable and bounded: each table is walked by its key in batches, one transaction
each (read and written together), the cursor saved in ``catalog_settings`` (``stored_filters_pass``)
with each batch.  Once done it is not run again, unless ``--force``.  On SQLite the replaced cells
are zeroed (``secure_delete``) and the WAL is checkpointed at the end, so no page keeps the value
written before.  Nothing here logs a value.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pbx_recorder import audit_trail
from pbx_recorder.catalog import engine, saved_search_rows, step_state
from pbx_recorder.catalog.number_protection import is_token, token_key_id
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.errors import CryptoError
from pbx_recorder.exports import stored_filter
from pbx_recorder.reports import figures

log = logging.getLogger(__name__)

STATE = "stored_filters_pass"
SAVED_STATE = "saved_searches_sealed"
SAVED = "saved_searches"
NAMES_STATE = "saved_search_names_masked"
RENAME_ACTION = "searches.rename"
DEFAULT_BATCH = 500

Masker = Callable[[Mapping[str, Any]], dict[str, Any]]
#: (table, key column, JSON column, how its object is masked), walked in this order
TABLES: tuple[tuple[str, str, str, Masker], ...] = (
    ("export_jobs", "id", "filter", stored_filter.masked_again),
    ("report_schedules", "id", "filter", stored_filter.masked_again),
    ("reports", "id", "data", figures.masked_at_rest),
)


@dataclass
class Report:
    read: dict[str, int] = field(default_factory=dict)  # table -> rows read
    masked: dict[str, int] = field(default_factory=dict)  # table -> rows rewritten
    errors: list[str] = field(default_factory=list)  # saved searches whose token did not open
    #: owner -> saved searches renamed (their name held a number)
    renamed: dict[str, int] = field(default_factory=dict)
    #: owner -> such rows left as they are (their query token did not open)
    names_unreadable: dict[str, int] = field(default_factory=dict)
    done: bool = False
    skipped: bool = False  # done by an earlier run


def load_state(conn: Any, name: str = STATE) -> dict[str, Any] | None:
    return step_state.load(conn, name)


def pending(conn: Any, numbers: NumberProtection | None = None) -> bool:
    """Has this step still to run over this catalog (with ``numbers``: or the sealing of the
    saved searches, which needs them)?"""
    names = (STATE, SAVED_STATE, NAMES_STATE) if numbers is not None else (STATE, NAMES_STATE)
    return any(state is None or not state.get("done") for state in (load_state(conn, n) for n in names))


def _save(conn: Any, state: dict[str, Any], name: str = STATE) -> None:
    step_state.save(conn, name, state)


def rewritten(raw: Any, mask: Masker) -> str | None:
    """The cell's new text, or None when it is to stay as it is.  A cell that is not a JSON object
    is read by nothing as one (an export job's filter reads as ``{}``): it becomes ``{}`` when it
    shows a number."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw or "")
    try:
        doc = json.loads(text or "{}")
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        new = mask(doc)
        return json.dumps(new, sort_keys=True) if new != doc else None
    return "{}" if stored_filter.shows_a_number(text) else None


def _batch(conn: Any, table: str, key: str, column: str, mask: Masker, cursor: Any,
           batch: int) -> tuple[list[Any], int]:
    """One batch of ``table`` after ``cursor`` (None: from the start) rewritten in the caller's
    transaction: (the keys read, how many rows were rewritten)."""
    if cursor is None:
        rows = conn.execute(f"SELECT {key}, {column} FROM {table} ORDER BY {key} LIMIT ?",
                            (batch,)).fetchall()
    else:
        rows = conn.execute(f"SELECT {key}, {column} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?",
                            (cursor, batch)).fetchall()
    changed = [(new, row[0]) for row in rows if (new := rewritten(row[1], mask)) is not None]
    if changed:
        conn.executemany(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", changed)
    return [row[0] for row in rows], len(changed)


def run(conn: Any, *, batch: int = DEFAULT_BATCH, force: bool = False,
        progress: Callable[[str, int], None] | None = None,
        numbers: NumberProtection | None = None, actor: str = "catalog-migrate", role: str = "") -> Report:
    """Mask what older versions kept in clear in stored filters and reports, and seal the saved
    searches in clear when ``numbers`` is given; see the module doc."""
    report = Report()
    state = load_state(conn)
    if state is not None and state.get("done") and not force:
        report.done = report.skipped = True
    else:
        _mask_tables(conn, state, batch, progress, report)
    saved = load_state(conn, SAVED_STATE)
    if numbers is not None and (force or saved is None or not saved.get("done")):
        report.skipped = False
        _seal_saved_searches(conn, numbers, batch, report)
    names = load_state(conn, NAMES_STATE)
    if force or names is None or not names.get("done"):
        report.skipped = False
        _mask_saved_names(conn, numbers, batch, report, actor, role)
    if any(report.masked.values()) or report.renamed:
        engine.compact(conn)  # (SQLite: the WAL loses the pages before; secure_delete zeroed the cells)
    log.info("stored filters data step: rows read %s, rows masked %s",
             json.dumps(report.read, sort_keys=True), json.dumps(report.masked, sort_keys=True))
    return report


def seal_saved_searches(conn: Any, numbers: NumberProtection, *, batch: int = DEFAULT_BATCH) -> Report:
    """Every saved search under the current catalog key: ``keys rotate`` runs this before an old
    key may be retired (``recording.rekey`` counts ``saved_searches.query`` tokens under other keys)."""
    report = Report()
    _seal_saved_searches(conn, numbers, batch, report)
    return report


def _saved_after(conn: Any, cursor: tuple[str, str] | None, batch: int) -> list[Any]:
    """The next ``batch`` saved searches (owner, name, stored query) after ``cursor`` in key order."""
    if cursor is None:
        return list(conn.execute("SELECT user_name, name, query FROM saved_searches "
                                 "ORDER BY user_name, name LIMIT ?", (batch,)).fetchall())
    return list(conn.execute("SELECT user_name, name, query FROM saved_searches WHERE user_name > ? "
                             "OR (user_name = ? AND name > ?) ORDER BY user_name, name LIMIT ?",
                             (cursor[0], cursor[0], cursor[1], batch)).fetchall())


def _sealed_now(numbers: NumberProtection, user: str, name: str, stored: str, report: Report) -> str | None:
    """What to store instead of ``stored``: the query sealed under the current key; None when it
    already is (or when its token does not open: named in ``report.errors``, left as it is, and an
    old key it needs is then never retired)."""
    if is_token(stored) and token_key_id(stored) == numbers.cipher.current_key_id:
        return None
    try:
        query = saved_search_rows.opened(numbers, user, name, stored)
    except CryptoError as exc:
        report.errors.append(f"saved search of {user!r}: {exc}")
        return None
    return saved_search_rows.sealed(numbers, user, name, query)


def _seal_saved_searches(conn: Any, numbers: NumberProtection, batch: int, report: Report) -> None:
    """Every ``saved_searches.query`` in clear, or sealed under another catalog key than the
    current one, sealed under it; walked by its key (owner, name) in batches, one transaction each
    (a stopped run is simply run again)."""
    cursor: tuple[str, str] | None = None
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = _saved_after(conn, cursor, batch)
            changed = [(new, r[0], r[1]) for r in rows
                       if (new := _sealed_now(numbers, str(r[0]), str(r[1]), str(r[2]), report)) is not None]
            if changed:
                conn.executemany("UPDATE saved_searches SET query = ? WHERE user_name = ? AND name = ?",
                                 changed)
            if not rows:
                _save(conn, {"done": True}, SAVED_STATE)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if not rows:
            return
        cursor = (str(rows[-1][0]), str(rows[-1][1]))
        report.read[SAVED] = report.read.get(SAVED, 0) + len(rows)
        report.masked[SAVED] = report.masked.get(SAVED, 0) + len(changed)


def _mask_saved_names(conn: Any, numbers: NumberProtection | None, batch: int, report: Report, actor: str,
                      role: str) -> None:
    """Every saved search whose name holds a number renamed to its masked form (see the module
    doc); walked by (owner, name) in batches, one transaction each, the renames audited in it."""
    cursor: tuple[str, str] | None = None
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = _saved_after(conn, cursor, batch)
            for user, name, stored in ((str(r[0]), str(r[1]), str(r[2])) for r in rows):
                if saved_search_rows.name_names_a_number(name):
                    _rename(conn, numbers, user, name, stored, report, actor, role)
            if not rows:
                _save(conn, {"done": True}, NAMES_STATE)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if not rows:
            break
        cursor = (str(rows[-1][0]), str(rows[-1][1]))
    for user, count in sorted(report.renamed.items()):
        log.warning("saved searches of %s: %d name(s) held a number, renamed to the masked form", user, count)
    for user, count in sorted(report.names_unreadable.items()):
        log.error("saved searches of %s: %d name(s) hold a number and the query does not open: left as they "
                  "are (delete them)", user, count)


def _rename(conn: Any, numbers: NumberProtection | None, user: str, name: str, stored: str, report: Report,
            actor: str, role: str) -> None:
    """One saved search renamed to its masked name, its query sealed under the new name (in the
    caller's transaction)."""
    try:
        query = saved_search_rows.opened(numbers, user, name, stored)
    except CryptoError:
        report.names_unreadable[user] = report.names_unreadable.get(user, 0) + 1
        return
    taken = [str(r[0]) for r in conn.execute("SELECT name FROM saved_searches WHERE user_name = ?", (user,))]
    new = saved_search_rows.unique_name(saved_search_rows.masked_name(name), taken)
    # without keys the query stays as it was stored (in clear: sealing it would refuse a number)
    kept = stored if numbers is None else saved_search_rows.sealed(numbers, user, new, query)
    conn.execute("UPDATE saved_searches SET name = ?, query = ? WHERE user_name = ? AND name = ?",
                 (new, kept, user, name))
    audit_trail.record(conn, actor=actor, role=role, action=RENAME_ACTION, target=user,
                       detail={"renamed_to": new, "why": "the name held a number (catalog migrate)"},
                       now=time.time())
    report.renamed[user] = report.renamed.get(user, 0) + 1


def _mask_tables(conn: Any, state: dict[str, Any] | None, batch: int,
                 progress: Callable[[str, int], None] | None, report: Report) -> None:
    """The export and report tables masked, resumed from ``state`` (see the module doc)."""
    if state is None or state.get("done"):  # a new walk
        state = {"table": TABLES[0][0], "cursor": None, "done": False}
    names = [t[0] for t in TABLES]
    for table, key, column, mask in TABLES[names.index(state["table"]):]:
        cursor = state["cursor"] if state["table"] == table else None
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                keys, changed = _batch(conn, table, key, column, mask, cursor, batch)
                if keys:
                    cursor = keys[-1]
                    state = {"table": table, "cursor": cursor, "done": False}
                else:  # this table walked: the next one, or done
                    after = names.index(table) + 1
                    state = ({"table": names[after], "cursor": None, "done": False} if after < len(names)
                             else {"table": table, "cursor": None, "done": True})
                _save(conn, state)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if not keys:
                break
            report.read[table] = report.read.get(table, 0) + len(keys)
            report.masked[table] = report.masked.get(table, 0) + changed
            if progress is not None:
                progress(table, report.read[table])
    report.done = True
