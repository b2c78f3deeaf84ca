"""Which calls a number belongs to, for erasure and legal holds: blind-index lookups.

Since schema 6 the catalog holds no number in clear (``catalog.protected_rows``); a call is
found by the keyed index of the full number: ``calls.caller_bi`` / ``callee_bi`` (each one range
of the last 4 digits' index, which carries it: schema 15) and ``call_numbers`` (every other number
the call names: CDR transfer targets, the dialed number, the signed manifest's numbers;
``catalog.named_rows``).  The index key is the
privacy HMAC key, the same one holds, erasure requests and tombstones hash subjects with, so no
catalog key is needed here.

Rows still in clear (written before the data step, ``catalog migrate``, has run) are matched as
before, by their clear columns; once the data step has finished (``catalog_settings``) that
scan is skipped.  Erasure and holds never match on the last 4 digits: only the full number.

``call_ids_for_number`` returns ids only, so callers can stream the rows in batches;
``calls_with_number`` (a stored caller hold) and ``calls_naming`` (erasure) are the streaming
forms the lifecycle jobs use: index lookups, plus (until the data step has run) the clear rows
read through a cursor, never a whole table in memory.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pbx_recorder.catalog.number_migration import DONE_SETTING
from pbx_recorder.catalog.number_protection import BlindIndex, digits_of, lookup_keys
from pbx_recorder.catalog.protected_rows import equals_any, side_clause, stored_side_clause
from pbx_recorder.lifecycle import policy

SUBJECT_SEPARATOR = "|"


def all_protected(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM catalog_settings WHERE name = ?", (DONE_SETTING,)).fetchone()
    return row is not None


def index_clause(index: BlindIndex, number: str, params: list[Any],
                 sides: tuple[str, ...] = ("caller", "callee")) -> str:
    """SQL over ``calls``: caller or callee is ``number`` (full number only, even when it is 4
    digits long), one index range each."""
    return "(" + " OR ".join(side_clause(index, side, number, params, full=True) for side in sides) + ")"


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
        named_params: list[Any] = []
        where = equals_any("bi", index.fulls(number), named_params)
        found |= {r[0] for r in conn.execute(f"SELECT call_id FROM call_numbers WHERE {where}", named_params)}
    if not all_protected(conn):
        want = digits_of(number)
        cur = conn.execute("SELECT call_id, caller_num, callee_num, cdr FROM calls WHERE numbers = ''")
        found |= {r[0] for r in cur if _clear_matches(
            {"caller_num": r[1], "callee_num": r[2], "cdr": r[3]}, want, sides, named)}
    return sorted(found)


def row_has_number(row: Mapping[str, Any], hash_key: bytes, subject: str) -> bool:
    """Does a calls row (stored form) have ``subject`` (a full-number index / number hash) as its
    caller or callee?  Protected rows by their index, clear rows by hashing their numbers."""
    subjects = subjects_of(subject)
    if row.get("caller_bi") or row.get("callee_bi"):
        return any(s in (row.get("caller_bi"), row.get("callee_bi")) for s in subjects)
    keys = lookup_keys(hash_key)
    return any(row.get(f) and any(s in {*(policy.number_hash(k, str(row[f])) for k in keys),
                                        *BlindIndex(hash_key).fulls(str(row[f]))} for s in subjects)
               for f in ("caller_num", "callee_num"))


def subjects_of(stored: str) -> list[str]:
    """The hashes a stored caller-hold value stands for: one, or ``new|old`` while a blind-index
    key rotation runs (``catalog.index_rotation`` re-keys holds before the calls)."""
    return [part for part in str(stored).split(SUBJECT_SEPARATOR) if part]


Tick = Callable[[int], None] | None  # told how many rows were read (a progress bar)


def calls_with_number(conn: sqlite3.Connection, hash_key: bytes, subject: str, *,
                      tick: Tick = None, subject4: str = "") -> Iterator[str]:
    """Call ids whose caller or callee has the full-number index ``subject`` (what a caller hold
    stores in ``value``, its last-4 index in ``value4``: ``subject4``): one index range each side;
    without ``subject4`` (a hold whose number no call had when schema 15 came) every call is read.
    Rows still in clear are hashed as the cursor reads them."""
    seen: set[str] = set()
    params: list[Any] = []
    subjects, last4s = subjects_of(subject), subjects_of(subject4)
    where = " OR ".join(stored_side_clause(side, subjects, last4s, params) for side in ("caller", "callee"))
    for (call_id,) in conn.execute(f"SELECT call_id FROM calls WHERE {where}", params):
        seen.add(str(call_id))
        yield str(call_id)
    read = len(seen)
    if not all_protected(conn):
        cur = conn.execute("SELECT call_id, caller_num, callee_num FROM calls WHERE numbers = ''")
        for call_id, caller, callee in cur:
            read += 1
            if tick is not None and read % 1000 == 0:
                tick(1000)
                read = 0
            row = {"caller_num": caller, "callee_num": callee}
            if str(call_id) not in seen and row_has_number(row, hash_key, subject):
                yield str(call_id)
    if tick is not None and read:
        tick(read)


def manifest_numbers(text: Any) -> set[str]:
    """The normalized numbers a (clear, pre-schema-6) manifest names: CDR src/dst, callee, DID."""
    try:
        manifest = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return set()
    if not isinstance(manifest, Mapping):
        return set()
    cdr = manifest.get("cdr")
    if not isinstance(cdr, Mapping):
        cdr = {}
    values = (cdr.get("src"), cdr.get("dst"), manifest.get("callee_num"), manifest.get("did"))
    return {policy.normalize_number(str(v)) for v in values if v}


def calls_naming(conn: sqlite3.Connection, hash_key: bytes, number: str, *, tick: Tick = None) -> set[str]:
    """Every call id the number took part in (erasure): caller, callee, every number the CDR or
    the signed manifest names.  Index lookups; until the data step has run, clear manifests are
    read through a cursor (memory: the subject's own calls, never the table)."""
    found = set(call_ids_for_number(conn, hash_key, number, named=True))
    read = len(found)
    if not all_protected(conn):
        read = conn.execute("SELECT count(*) FROM calls WHERE numbers = ''").fetchone()[0]  # clear rows read
        want = policy.normalize_number(number)
        cur = conn.execute("SELECT call_id, manifest FROM recordings")  # a cursor: row by row
        found |= {str(r[0]) for r in cur if want in manifest_numbers(r[1])}
    if tick is not None:
        tick(int(read))
    return found
