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
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pbx_recorder import scan
from pbx_recorder.lifecycle import policy

Tick = Callable[[int], None] | None  # told how many rows were read (a progress bar)
_SEPARATORS = (" ", "-", "(", ")", ".", "/")


def _stripped(expr: str) -> str:
    """SQL: ``expr`` as text without the usual separators (what ``policy.normalize_number``
    drops first)."""
    expr = f"CAST(coalesce({expr}, '') AS TEXT)"
    for sep in _SEPARATORS:
        expr = f"replace({expr}, '{sep}', '')"
    return expr


def _same_number(column: str) -> str:
    """SQL over a stripped ``column``, one ``?`` (the normalized number): true when it is that
    number, or when it holds anything besides digits and a leading '+' -- then Python decides
    (``policy.normalize_number``), so SQLite only narrows and never decides a doubtful value."""
    return (f"({column} = ? OR substr({column}, 2) GLOB '*[^0-9]*' "
            f"OR substr({column}, 1, 1) GLOB '[^0-9+]')")


def _narrowed(conn: sqlite3.Connection, table: str, columns: Sequence[str], computed: Sequence[str],
              want: str, batch: int, tick: Tick = None) -> Iterator[dict[str, Any]]:
    """Rows of ``table`` any of whose ``computed`` SQL values may normalize to ``want``: the table
    is read in rowid windows of ``batch`` rows, each window's values computed once (a
    materialized CTE) and filtered by SQLite; only candidates reach Python."""
    cols = ", ".join(columns)
    values = ", ".join(f"{_stripped(expr)} AS v{i}" for i, expr in enumerate(computed))
    cond = " OR ".join(_same_number(f"v{i}") for i in range(len(computed)))
    sql = (f"WITH w AS MATERIALIZED (SELECT {cols}, {values} FROM {table} WHERE rowid > ? AND rowid <= ?) "
           f"SELECT {cols} FROM w WHERE {cond}")
    after = 0
    while True:
        last = conn.execute(f"SELECT max(rowid) FROM (SELECT rowid FROM {table} WHERE rowid > ? "
                            "ORDER BY rowid LIMIT ?)", (after, max(1, batch))).fetchone()[0]
        if last is None:
            return
        for row in conn.execute(sql, (after, last, *([want] * len(computed)))).fetchall():
            yield dict(zip(columns, row, strict=True))
        if tick is not None:
            tick(int(last) - after)  # rows read (rowids, so roughly: gaps count too)
        after = int(last)


def calls_with_number(conn: sqlite3.Connection, hash_key: bytes, number_hash: str, *,
                      number: str | None = None, batch: int = scan.DEFAULT_BATCH,
                      tick: Tick = None) -> Iterator[str]:
    """Call ids whose caller or callee number has the keyed hash ``number_hash``
    (``policy.number_hash``), in rowid order.  With the clear ``number`` (hold add, erasure)
    SQLite compares normalized columns and hands over only candidates; without it (a stored
    hold) each row's numbers are hashed.  Either way the keyed hash has the last word."""
    names = ("call_id", "caller_num", "callee_num")
    found = _every(conn, names, batch, tick) if number is None else _narrowed(
        conn, "calls", names, ("caller_num", "callee_num"), policy.normalize_number(number), batch, tick)
    for row in found:
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


def _every(conn: sqlite3.Connection, names: Sequence[str], batch: int,
           tick: Tick) -> Iterator[dict[str, Any]]:
    for chunk in scan.batches(conn, "calls", names, batch=batch):
        yield from (row for _, row in chunk)
        if tick is not None:
            tick(len(chunk))


def calls_naming(conn: sqlite3.Connection, hash_key: bytes, number: str, *,
                 batch: int = scan.DEFAULT_BATCH, tick: Tick = None) -> set[str]:
    """Every call id the number took part in: its calls rows, the signed manifests, the CDR text.
    Memory: O(batch) plus the subject's own calls."""
    want = policy.normalize_number(number)
    found = set(calls_with_number(conn, hash_key, policy.number_hash(hash_key, number), number=number,
                                  batch=batch, tick=tick))
    fields = [f"CASE WHEN json_valid(manifest) THEN json_extract(manifest, '$.{path}') END"
              for path in _MANIFEST_PATHS]
    for row in _narrowed(conn, "recordings", ("call_id", "manifest"), fields, want, batch, tick):
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
