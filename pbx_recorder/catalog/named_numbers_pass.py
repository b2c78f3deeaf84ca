"""The data step that indexes the numbers older versions left out of ``call_numbers``.

Until this version the number finder (``protected_rows.named_digits``) took a run such as
``SIP/4915199999999-00000001``, ``SIP/4915199999999/30`` or ``4915199999999 12345`` as one glued
number (``491519999999900000001``), and read a CDR as JSON with non-ASCII escaped, so a number
written right after a CJK character was glued to the escape's digits (``\\u6237`` + the number).
The subject's own number got no ``call_numbers`` row: ``erase --caller`` did not find the call
and reported ``done``.  The finder now names the number itself too; this step gives the calls
written before it the index rows they lack.

:func:`run` (``pbx-recorder catalog migrate``) walks ``calls`` in ``call_id`` batches, one
transaction each (read and written together: a call erased meanwhile gets no row back): each
call's sealed numbers (``calls.numbers``: caller, callee, CDR), the sealed manifest copies of its
recordings written before schema 11 and its sealed extra numbers (``catalog.extra_numbers``) are
opened with the catalog key, the numbers they name re-derived, and the ``call_numbers`` rows that
are missing inserted (never one for the row's own caller or callee; a row it has stays).  Only
rows are added: an erasure or a hold finds a call by more numbers, never by fewer.

Resumable: the cursor is saved in ``catalog_settings`` (``named_numbers_pass``) with each batch.
Memory: one batch.  A call whose tokens do not open (altered, or under a key no longer in the
ring) is counted and named (its id only); the walk goes on, and the step is marked done only when
a walk ended with none (the next run walks again).  Once done it is not run again, unless
``--force``.  A number that only a recording's signed manifest in storage names is kept in the
catalog (``call_extra_numbers``) as the digits the finder of its day found: they are indexed as
kept, and ``catalog.manifest_named_pass`` (run next) reads those manifests back and indexes what
today's finder names in them.  Nothing here logs a number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pbx_recorder.catalog import extra_numbers, named_rows, step_state
from pbx_recorder.catalog.number_protection import is_token
from pbx_recorder.catalog.protected_rows import MANIFEST_TOKEN, NumberProtection, named_digits
from pbx_recorder.errors import CryptoError

log = logging.getLogger(__name__)

STATE = "named_numbers_pass"
DEFAULT_BATCH = 500
MAX_NAMED_ERRORS = 20


@dataclass
class Report:
    calls: int = 0  # calls read
    indexed: int = 0  # calls that got index rows they lacked
    rows: int = 0  # index rows added
    errors: list[str] = field(default_factory=list)  # "<call id>: why" (at most MAX_NAMED_ERRORS)
    failed: int = 0  # calls whose tokens did not open
    done: bool = False
    skipped: bool = False  # done by an earlier run


def load_state(conn: Any) -> dict[str, Any] | None:
    return step_state.load(conn, STATE)


def pending(conn: Any) -> bool:
    """Has this step still to run over this catalog?"""
    state = load_state(conn)
    return state is None or not state.get("done")


def _save(conn: Any, state: dict[str, Any]) -> None:
    step_state.save(conn, STATE, state)


def _grouped(conn: Any, sql: str, ids: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    marks = ",".join("?" * len(ids))
    out: dict[str, list[tuple[Any, ...]]] = {}
    for row in conn.execute(sql.format(marks=marks), ids):
        out.setdefault(str(row[0]), []).append(tuple(row[1:]))
    return out


def call_digits(numbers: NumberProtection, call_id: str, token: Any, manifests: list[tuple[Any, ...]],
                extras: str | None) -> set[str]:
    """The numbers (digits) a call names in what the catalog holds of it, re-derived by today's
    finder: its sealed row, its sealed manifest copies (rows written before schema 11), its sealed
    extra numbers.  CryptoError when one of them does not open."""
    digits: set[str] = set()
    if is_token(token):
        digits |= numbers.row_digits(numbers.open_call({"call_id": call_id, "numbers": token}))
    for rid, manifest in manifests:
        if MANIFEST_TOKEN not in str(manifest or ""):
            continue  # a copy without numbers (schema 11 on), or one in clear (the protect step's)
        opened = numbers.open_manifest(str(rid), manifest)
        if isinstance(opened, dict):
            digits |= named_digits(opened.get("cdr"), opened.get("callee_num"))
    if extras is not None:
        digits |= extra_numbers.open_token(numbers, call_id, extras)
    return digits


def _batch(conn: Any, numbers: NumberProtection, rows: list[Any], report: Report) -> None:
    """Insert the index rows the calls of ``rows`` lack (in the caller's transaction)."""
    ids = [str(r[0]) for r in rows]
    manifests = _grouped(conn, "SELECT call_id, recording_id, manifest FROM recordings "
                               "WHERE call_id IN ({marks})", ids)
    have = {c: {str(r[0]) for r in found} for c, found in
            _grouped(conn, "SELECT call_id, bi FROM call_numbers WHERE call_id IN ({marks})", ids).items()}
    extras = extra_numbers.tokens_of(conn, ids)
    for call_id, token, caller_bi, callee_bi in ((str(r[0]), r[1], r[2], r[3]) for r in rows):
        try:
            digits = call_digits(numbers, call_id, token, manifests.get(call_id, []), extras.get(call_id))
        except CryptoError as exc:  # one altered row must not stop the others
            report.failed += 1
            if len(report.errors) < MAX_NAMED_ERRORS:
                report.errors.append(f"{call_id}: {exc}")
            continue
        own = {str(v) for v in (caller_bi, callee_bi) if v}
        found_by = have.get(call_id, set()) | own
        # (while a blind-index key rotation runs, a number indexed under either key is found)
        lacking = {numbers.index.full_of_digits(d) for d in digits
                   if found_by.isdisjoint(numbers.index.fulls(d))}
        if lacking:
            named_rows.insert(conn, call_id, lacking, own)
            report.indexed += 1
            report.rows += len(lacking)


def run(conn: Any, numbers: NumberProtection, *, batch: int = DEFAULT_BATCH, force: bool = False,
        progress: Callable[[str, int], None] | None = None) -> Report:
    """Add the ``call_numbers`` rows older versions left out; see the module doc."""
    report = Report()
    state = load_state(conn)
    if state is not None and state.get("done") and not force:
        report.done = report.skipped = True
        return report
    if state is None or state.get("done") or state.get("walked"):  # a new walk
        state = {"cursor": "", "failed": 0, "done": False}
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute("SELECT call_id, numbers, caller_bi, callee_bi FROM calls WHERE call_id > ? "
                                "ORDER BY call_id LIMIT ?", (state["cursor"], batch)).fetchall()
            failed_before = report.failed
            if rows:
                _batch(conn, numbers, rows, report)
                state = {**state, "cursor": str(rows[-1][0]),
                         "failed": int(state.get("failed", 0)) + report.failed - failed_before}
            else:  # the walk ended: done when every call opened
                state = {**state, "cursor": "", "walked": True, "done": not state["failed"]}
            _save(conn, state)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if not rows:
            break
        report.calls += len(rows)
        if progress is not None:
            progress("call numbers", report.calls)
    report.done = bool(state["done"])
    for line in report.errors:
        log.warning("call numbers not re-derived: %s", line)
    log.info("call numbers data step: %d calls read, %d got %d index rows, %d not opened, done=%s",
             report.calls, report.indexed, report.rows, report.failed, report.done)
    return report
