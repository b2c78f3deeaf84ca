"""The one place that finds calls by phone number (erasure and holds by caller).

``calls_with_number`` is deliberately small: how a number is looked up is about to change
(numbers encrypted in the catalog, found through keyed blind indexes), and only its body
should have to.  Today it reads ``calls`` in keyset batches of three narrow columns
(``pbx_recorder.scan``: memory O(batch), never the table), lets SQLite narrow the rows when
the clear number is known, and decides by keyed hash.

``calls_naming`` adds what a calls row alone could hide: the signed manifests (an edited
calls row must not hide a subject) and the CDR text (a transfer target, a dialed DNID).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any, cast

from pbx_recorder import scan
from pbx_recorder.lifecycle import policy

_SEPARATORS = (" ", "-", "(", ")", ".", "/")


def _stripped(expr: str) -> str:
    """SQL: ``expr`` without the usual separators (what ``policy.normalize_number`` drops first)."""
    for sep in _SEPARATORS:
        expr = f"replace({expr}, '{sep}', '')"
    return expr


def _same_number(expr: str) -> str:
    """SQL, one ``?`` (the normalized number): true when ``expr`` normalizes to it, or when it
    holds anything besides digits, a leading '+' and separators -- then Python decides
    (``policy.normalize_number``), so SQLite only narrows and never decides a doubtful value."""
    s = _stripped(f"CAST(coalesce({expr}, '') AS TEXT)")
    return f"({s} = ? OR substr({s}, 2) GLOB '*[^0-9]*' OR substr({s}, 1, 1) GLOB '[^0-9+]')"


def calls_with_number(conn: sqlite3.Connection, hash_key: bytes, number_hash: str, *,
                      number: str | None = None, batch: int = scan.DEFAULT_BATCH) -> Iterator[str]:
    """Call ids whose caller or callee number has the keyed hash ``number_hash``
    (``policy.number_hash``), in rowid order.  With the clear ``number`` (hold add, erasure)
    SQLite compares normalized columns and hands over only candidates; without it (a stored
    hold) each row's numbers are hashed.  Either way the keyed hash has the last word."""
    where, params = "", cast(tuple[Any, ...], ())
    if number is not None:
        want = policy.normalize_number(number)
        where, params = f"{_same_number('caller_num')} OR {_same_number('callee_num')}", (want, want)
    for row in scan.rows(conn, "calls", ("call_id", "caller_num", "callee_num"), where=where, params=params,
                         batch=batch):
        for field in ("caller_num", "callee_num"):
            if row[field] and policy.number_hash(hash_key, row[field]) == number_hash:
                yield str(row["call_id"])
                break


_MANIFEST_PATHS = ("cdr.src", "cdr.dst", "callee_num", "did")  # what manifest_numbers reads


def manifest_numbers(text: Any) -> set[str]:
    """The normalized numbers a manifest names (CDR src/dst, callee, DID)."""
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


def calls_naming(conn: sqlite3.Connection, hash_key: bytes, number: str, *,
                 batch: int = scan.DEFAULT_BATCH) -> set[str]:
    """Every call id the number took part in: its calls rows, the signed manifests, the CDR text.
    Memory: O(batch) plus the subject's own calls."""
    want = policy.normalize_number(number)
    found = set(calls_with_number(conn, hash_key, policy.number_hash(hash_key, number), number=number,
                                  batch=batch))
    fields = [f"json_extract(manifest, '$.{path}')" for path in _MANIFEST_PATHS]
    where = f"json_valid(manifest) AND ({' OR '.join(_same_number(f) for f in fields)})"
    for row in scan.rows(conn, "recordings", ("call_id", "manifest"), where=where,
                         params=(want,) * len(fields), batch=batch):
        if want in manifest_numbers(row["manifest"]):
            found.add(str(row["call_id"]))
    # a number the CDR alone names (a transfer target in lastdata/dstchannel, the dialed
    # pbxrecdnid): the subject took part in that call as surely as a callee does
    digits = "".join(ch for ch in want if ch.isdigit())
    if len(digits) >= 5:
        in_cdr = re.compile(rf"(?<!\d){re.escape(digits)}(?!\d)")
        rows = scan.rows(conn, "calls", ("call_id", "cdr"), where="instr(cdr, ?) > 0", params=(digits,),
                         batch=batch)
        found |= {str(r["call_id"]) for r in rows if in_cdr.search(str(r["cdr"] or "")) is not None}
    return found
