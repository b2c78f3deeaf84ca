"""What a restored SQLite catalog may hold: the objects the schema ladder defines, nothing else.

A SQLite file is not only data: a trigger or a view in it is code that runs on the restored
catalog's next write or read (a trigger that blanks ``wrapped_key`` on every new recording, say).
An encrypted backup is authenticated by its key; a legacy plaintext ``.db`` is not, so before a
restored file is scrubbed (the tombstones' DELETEs would already fire a planted trigger) its
``sqlite_master`` is compared with every object some version of the ladder
(``catalog.schema.MIGRATIONS``) defines: tables and indexes by name (an older backup lacks newer
columns, which the migrations add), triggers and views by name *and* exact SQL.  Anything else
refuses the restore.  Pure apart from one in-memory SQLite database built once.
"""

from __future__ import annotations

import functools
import sqlite3

from pbx_recorder.catalog.schema import MIGRATIONS

#: SQLite's own tables (AUTOINCREMENT counters, ANALYZE statistics)
_SQLITE_TABLES = frozenset({"sqlite_sequence", "sqlite_stat1", "sqlite_stat4"})
_CODE = ("trigger", "view")


@functools.cache
def known_objects() -> frozenset[tuple[str, str, str]]:
    """(type, name, sql or "") of every object any schema version defined; for tables and
    indexes the sql is "" (compared by name only)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        seen: set[tuple[str, str, str]] = set()
        for script in MIGRATIONS:
            conn.executescript(script)
            for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master"):
                seen.add((kind, name, (sql or "") if kind in _CODE else ""))
        return frozenset(seen)
    finally:
        conn.close()


def unexpected_objects(conn: sqlite3.Connection) -> list[str]:
    """The objects of the database behind ``conn`` no schema version defines ("trigger t", ...)."""
    known = known_objects()
    tables = {name for kind, name, _ in known if kind == "table"}
    bad = []
    for kind, name, table, sql in conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"):
        if kind == "table" and name in _SQLITE_TABLES:
            continue
        if kind == "index" and name.startswith("sqlite_autoindex_") and table in tables:
            continue  # a UNIQUE / PRIMARY KEY constraint's own index
        if (kind, name, (sql or "") if kind in _CODE else "") not in known:
            bad.append(f"{kind} {name}")
    return bad
