"""bench_catalog's footprint of the SQLite catalog: bytes per call against the ``cdr`` table, each
table and index (``dbstat``), and what is stored twice."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

#: rows the footprint's "stored twice" averages read (the first ones of each table)
STORED_TWICE_ROWS = 200_000


def sqlite_footprint(conn: sqlite3.Connection, cdr: sqlite3.Connection, root: Path, n: int) -> None:
    """Print the catalog's bytes per call (``root/catalog.db``, ``n`` calls) against the cdr table's."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cdr.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = os.path.getsize(root / "catalog.db")
    cdr_size = os.path.getsize(root / "cdr.db")
    print(
        f"\nsqlite catalog: {size / n:,.0f} bytes per call "
        f"({size / 2**20:,.0f} MiB for {n:,} calls with recording and ledger rows); "
        "cdr table + calldate index: "
        f"{cdr_size / n:,.0f} bytes per call "
        f"(ratio {size / cdr_size:.1f}x)"
    )
    try:  # every table and index (pages in use: a page's free space counts where it is)
        parts = conn.execute(
            "SELECT d.name, COALESCE(m.type, 'table'), COALESCE(m.tbl_name, d.name), SUM(d.pgsize) "
            "FROM dbstat d LEFT JOIN sqlite_schema m ON m.name = d.name GROUP BY d.name ORDER BY 4 DESC"
        ).fetchall()
    except sqlite3.OperationalError:
        parts = []
    for name, kind, table, nbytes in parts:
        if nbytes / n >= 1:
            print(f"  {name:32} {kind:5} of {table:14} {nbytes / n:8,.0f} B/call")
    # averages over the first rows only: each is a read of a whole table, minutes at 10 M calls
    first = min(n, STORED_TWICE_ROWS)
    print(f"  stored twice (average bytes per call, first {first:,} rows of each table):")
    calls = f"(SELECT cdr, consent FROM calls ORDER BY rowid LIMIT {first})"
    recs = f"(SELECT * FROM recordings ORDER BY rowid LIMIT {first})"
    for label, sql in (
        ("calls.cdr JSON (also columns)", f"SELECT AVG(length(cdr)) FROM {calls}"),
        ("calls.consent JSON", f"SELECT AVG(length(consent)) FROM {calls}"),
        ("recordings.manifest JSON", f"SELECT AVG(length(manifest)) FROM {recs}"),
        ("recordings.signature + hashes", "SELECT AVG(length(signature) + length(sha256) + "
         f"length(audio_sha256)) FROM {recs}"),
        (
            "  of which cdr + consent again",
            "SELECT AVG(length(json_extract(manifest, '$.cdr')) + "
            f"length(json_extract(manifest, '$.consent'))) FROM {recs}",
        ),
        ("recordings.objects JSON", f"SELECT AVG(length(objects)) FROM {recs}"),
        (  # the bench writes 2 ledger entries a call
            "ledger rows (payload + 2 hashes)",
            f"SELECT AVG(length(payload) + 128) * 2 FROM (SELECT payload FROM ledger "
            f"ORDER BY rowid LIMIT {2 * first})",
        ),
    ):
        print(f"    {label:34} {conn.execute(sql).fetchone()[0] or 0:8,.0f}")
