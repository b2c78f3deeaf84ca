"""Which calls a number belongs to, for erasure and legal holds: blind-index lookups.

Since schema 6 the catalog holds no number in clear (``catalog.protected_rows``); a call is
found by the keyed index of the full number: ``calls.caller_bi`` / ``callee_bi`` (each an index
lookup) and ``call_numbers`` (every number the call names: CDR transfer targets, the dialed
number, the signed manifest's numbers).  The index key is the privacy HMAC key, the same one
holds, erasure requests and tombstones hash subjects with, so no catalog key is needed here.

Rows still in clear (written before the data step, ``catalog migrate``, has run) are matched as
before, by their clear columns; once the data step has finished (``catalog_settings``) that
scan is skipped.  Erasure and holds never match on the last 4 digits: only the full number.

``call_ids_for_number`` returns ids only, so callers can stream the rows in batches.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from typing import Any

from pbx_recorder.catalog.number_migration import DONE_SETTING
from pbx_recorder.catalog.number_protection import BlindIndex, digits_of
from pbx_recorder.lifecycle import policy


def all_protected(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM catalog_settings WHERE name = ?", (DONE_SETTING,)).fetchone()
    return row is not None


def index_clause(index: BlindIndex, number: str, params: list[Any],
                 sides: tuple[str, ...] = ("caller", "callee")) -> str:
    """SQL over ``calls``: caller or callee is ``number`` (full number only), one index lookup each."""
    value = index.full(number)
    params.extend([value] * len(sides))
    return "(" + " OR ".join(f"{side}_bi = ?" for side in sides) + ")"


def _clear_matches(row: Mapping[str, Any], want: str, sides: tuple[str, ...], named: bool) -> bool:
    if any(want and policy.normalize_number(str(row[f"{s}_num"] or "")).lstrip("+") == want for s in sides):
        return True
    if named and len(want) >= 5:
        pattern = re.compile(rf"(?<!\d){re.escape(want)}(?!\d)")
        return pattern.search(str(row["cdr"] or "")) is not None
    return False


def call_ids_for_number(conn: sqlite3.Connection, hash_key: bytes, number: str, *,
                        sides: tuple[str, ...] = ("caller", "callee"), named: bool = False) -> list[str]:
    """Ids of the calls whose caller or callee is ``number``; ``named``: also every call whose CDR
    or signed manifest names it (what erasure needs), sorted."""
    index = BlindIndex(hash_key)
    params: list[Any] = []
    clause = index_clause(index, number, params, sides)
    found = {r[0] for r in conn.execute(f"SELECT call_id FROM calls WHERE {clause}", params)}
    if named:
        bi = index.full(number)
        found |= {r[0] for r in conn.execute("SELECT call_id FROM call_numbers WHERE bi = ?", (bi,))}
    if not all_protected(conn):
        want = digits_of(number)
        cur = conn.execute("SELECT call_id, caller_num, callee_num, cdr FROM calls WHERE numbers = ''")
        found |= {r[0] for r in cur if _clear_matches(
            {"caller_num": r[1], "callee_num": r[2], "cdr": r[3]}, want, sides, named)}
    return sorted(found)


def row_has_number(row: Mapping[str, Any], hash_key: bytes, subject: str) -> bool:
    """Does a calls row (stored form) have ``subject`` (a full-number index / number hash) as its
    caller or callee?  Protected rows by their index, clear rows by hashing their numbers."""
    if row.get("caller_bi") or row.get("callee_bi"):
        return subject in (row.get("caller_bi"), row.get("callee_bi"))
    return any(row.get(f) and subject in (policy.number_hash(hash_key, str(row[f])),
                                          BlindIndex(hash_key).full(str(row[f])))
               for f in ("caller_num", "callee_num"))
