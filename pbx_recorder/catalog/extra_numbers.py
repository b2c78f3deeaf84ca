"""The numbers ``call_numbers`` indexes for a call that the call's own sealed row does not hold
(schema 12, table ``call_extra_numbers``).

``call_numbers`` holds the full-number blind index of every number a call names besides its own
caller and callee (``named_rows``); erasure by number finds calls through it and the row's own
two.  An index cannot be inverted, so ``keys rotate-index`` re-makes each one from a number the
catalog can open: the call's sealed numbers (``calls.numbers``: caller, callee,
CDR) and, for rows written before schema 11, the manifest copy's sealed numbers.  At write time two
kinds of numbers reach ``call_numbers`` that neither holds:

* **a number only a recording's signed manifest names** (its CDR's ``src``/``dst``, its
  ``callee_num``): since schema 11 the catalog keeps no copy of a manifest's numbers.  The manifest
  is made when the call ends, with the CDR in at that moment; a later CDR (``cdr_late``: the
  first ANSWERED one becomes the call's CDR) or the dialed number it carries changes the call row,
  never the signed manifest;
* **a number an earlier version of the call row named**: a later write of the row (that same
  late CDR) replaces its CDR, while the index rows written for the first one stay.

Those are kept here: one AES-256-GCM token per call (the catalog key and cipher of
``calls.numbers``, associated data ``call_extra_numbers/<call id>``: a token moved to another call
does not open) holding the sorted digit strings.  Only a call that has such numbers has a row.  It
is written in the transaction that writes the call's ``call_numbers`` rows, goes with the call
(``marks.forget_call``), is re-encrypted by ``keys rotate`` (``number_migration.protect``) and read
by ``keys rotate-index`` (``index_rotation``).  Nothing here logs a number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pbx_recorder.catalog import named_rows
from pbx_recorder.catalog.json_columns import COMPACT
from pbx_recorder.catalog.number_protection import is_token
from pbx_recorder.catalog.protected_rows import NumberProtection

TABLE = "call_extra_numbers"


def _aad(call_id: str) -> str:
    return f"{TABLE}/{call_id}"


def open_token(numbers: NumberProtection, call_id: str, token: str) -> set[str]:
    """The digits a stored token holds (CryptoError: altered, moved, or under a missing key)."""
    return {str(d) for d in json.loads(numbers.cipher.decrypt(token, _aad(call_id)))}


def seal(numbers: NumberProtection, call_id: str, digits: Iterable[str]) -> str:
    return numbers.cipher.encrypt(json.dumps(sorted(set(digits)), separators=COMPACT), _aad(call_id))


def of_call(conn: Any, numbers: NumberProtection, call_id: str) -> set[str]:
    row = conn.execute(f"SELECT numbers FROM {TABLE} WHERE call_id = ?", (call_id,)).fetchone()
    return open_token(numbers, call_id, str(row[0])) if row else set()


def tokens_of(conn: Any, call_ids: list[str]) -> dict[str, str]:
    """Call id -> its stored token, for a batch of calls (one query; opened by the caller, so one
    token that does not open is reported for its call alone)."""
    if not call_ids:
        return {}
    marks = ",".join("?" * len(call_ids))
    rows = conn.execute(f"SELECT call_id, numbers FROM {TABLE} WHERE call_id IN ({marks})", call_ids)
    return {str(c): str(t) for c, t in rows.fetchall()}


def _write(conn: Any, numbers: NumberProtection, call_id: str, digits: set[str]) -> None:
    if not digits:
        conn.execute(f"DELETE FROM {TABLE} WHERE call_id = ?", (call_id,))
        return
    conn.execute(f"INSERT INTO {TABLE} (call_id, numbers) VALUES (?, ?) ON CONFLICT (call_id) DO UPDATE "
                 "SET numbers = excluded.numbers", (call_id, seal(numbers, call_id, digits)))


def add(conn: Any, numbers: NumberProtection, call_id: str, digits: Iterable[str]) -> None:
    """Keep ``digits`` among the call's extra numbers (in the caller's transaction)."""
    want = set(digits)
    if not want:
        return
    kept = of_call(conn, numbers, call_id)
    if not want <= kept:
        _write(conn, numbers, call_id, kept | want)


def row_digits(conn: Any, numbers: NumberProtection, call_id: str) -> set[str]:
    """The numbers the call's stored row names (its sealed caller, callee and CDR)."""
    row = conn.execute("SELECT numbers FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    if row is None or not is_token(row[0]):
        return set()
    return numbers.row_digits(numbers.open_call({"call_id": call_id, "numbers": row[0]}))


def lacking(conn: Any, numbers: NumberProtection, call_id: str,
            manifest: Mapping[str, Any]) -> tuple[dict[str, str], set[str]]:
    """For a recording's signed ``manifest``: the numbers it names (its CDR, its ``callee_num``)
    that the call is not found by yet (not its own caller or callee, no ``call_numbers`` row:
    digits -> full-number index, the rows to write), and of those the ones the call's stored row
    does not name (to keep here).  A number the call is found by already is named by its row or
    kept here already (every write keeps that so); the call's token is opened only when there are
    new ones, which are rare (a late CDR; a recording stored before its call's row)."""
    index = numbers.named_index(manifest.get("cdr"), manifest.get("callee_num"))
    if not index:
        return {}, set()
    have = named_rows.indexed(conn, call_id)  # its own caller and callee, and its index rows
    new = {d: bi for d, bi in index.items() if bi not in have}
    return new, (set(new) - row_digits(conn, numbers, call_id) if new else set())


def after_call_write(conn: Any, numbers: NumberProtection, call_id: str, before: Mapping[str, Any],
                     after: Mapping[str, Any]) -> None:
    """An existing call row's numbers replaced: what ``before`` (its opened stored row) named and
    ``after`` (the fields now written) does not stays indexed, so it is kept here; kept numbers the
    new row names are dropped from here (the row holds them now)."""
    now = numbers.row_digits(after)
    dropped = numbers.row_digits(before) - now if is_token(before.get("numbers")) else set()
    kept = of_call(conn, numbers, call_id)
    want = (kept | dropped) - now
    if want != kept:
        _write(conn, numbers, call_id, want)
