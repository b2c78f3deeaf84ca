"""``verify`` over the number index of calls: every number a call names can be found by.

Erasure and holds by number find a call through its own ``caller_bi`` / ``callee_bi`` and its
``call_numbers`` rows (``catalog.named_rows``).  ``check_calls`` already checks the row's own two
against its sealed numbers; a ``call_numbers`` row deleted (by hand, by a hostile edit of the
database, by a bug) would silently take the call out of an erasure or a hold by that number.
This checks, for a batch of opened call rows, that each number they name (their sealed caller,
callee and CDR: ``NumberProtection.row_digits``) and each number sealed in ``call_extra_numbers``
for them has an index row or is the row's own, and that each such token opens (AES-GCM: altered,
moved to another call or under a key no longer in the ring).  While a blind-index key rotation
runs, a value under either key counts.

:func:`orphans` names the index rows of calls that no longer exist: a keyed hash of a number tied
to a removed call tells whoever holds the index key that the number called (``marks.forget_call``
removes them with the call).  Nothing here logs or reports a number: only call ids and counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pbx_recorder.catalog import extra_numbers
from pbx_recorder.catalog.number_protection import is_token
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.errors import CryptoError

#: (call id, its stored row, its opened row or None when it could not be opened)
Checked = tuple[str, Mapping[str, Any], Mapping[str, Any] | None]


def _index_rows(conn: Any, call_ids: list[str]) -> dict[str, set[str]]:
    marks = ",".join("?" * len(call_ids))
    have: dict[str, set[str]] = {}
    for call_id, bi in conn.execute(f"SELECT call_id, bi FROM call_numbers WHERE call_id IN ({marks})",
                                    call_ids):
        have.setdefault(str(call_id), set()).add(str(bi))
    return have


def missing(conn: Any, numbers: NumberProtection, calls: Sequence[Checked]) -> list[tuple[str, str]]:
    """(call id, what) for each call of the batch a number lookup would miss for some number it
    names, or whose sealed extra numbers do not open."""
    if not calls:
        return []
    ids = [c for c, _, _ in calls]
    have, tokens = _index_rows(conn, ids), extra_numbers.tokens_of(conn, ids)
    out: list[tuple[str, str]] = []
    for call_id, stored, plain in calls:
        digits: set[str] = set()
        if plain is not None and is_token(stored.get("numbers")):
            digits |= numbers.row_digits(plain)
        token = tokens.get(call_id)
        if token is not None:
            try:
                digits |= extra_numbers.open_token(numbers, call_id, token)
            except CryptoError as exc:
                out.append((call_id, f"sealed extra numbers (call_extra_numbers) do not open: {exc}"))
        found_by = have.get(call_id, set()) | {str(stored.get(c) or "") for c in ("caller_bi", "callee_bi")}
        lost = sum(1 for d in digits if found_by.isdisjoint(numbers.index.fulls(d)))
        if lost:
            out.append((call_id, f"{lost} number(s) the call names have no index row: an erasure or a hold "
                                 "by that number would miss this call (call_numbers rows removed?)"))
    return out


def orphans(conn: Any, limit: int = 20) -> tuple[int, list[str]]:
    """(how many calls that no longer exist still have index rows or sealed extra numbers, the
    first ``limit`` of their ids)."""
    sql = ("SELECT call_id FROM call_numbers n WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = "
           "n.call_id) UNION SELECT call_id FROM call_extra_numbers x WHERE NOT EXISTS "
           "(SELECT 1 FROM calls c WHERE c.call_id = x.call_id)")
    ids = sorted(str(r[0]) for r in conn.execute(sql))
    return len(ids), ids[:limit]


def orphan_notes(conn: Any) -> list[str]:
    """:func:`orphans` as a ``verify`` note (not a mismatch: a crash between a recording's index
    rows and its call's stand-in row leaves one too); none when there are none."""
    count, first = orphans(conn)
    if not count:
        return []
    return [f"{count} call(s) that no longer exist keep number index rows or sealed extra numbers (keyed "
            f"hashes of numbers tied to a call id, left by an interrupted write; first: {', '.join(first)})"]
