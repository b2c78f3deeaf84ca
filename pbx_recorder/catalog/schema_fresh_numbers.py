"""The catalog's SQLite migration 25 (Alembic revision 0024 for PostgreSQL): a new call's number
entries wait in two small indexes of their own until they are *settled* into the big ones in a
batch (``catalog.fresh_numbers``).

Why: the two number indexes (``calls_caller_number``, ``calls_callee_number``: a number's last 4
digits' blind index, then ``started_at DESC``) put each new call at the newest end of one of
10,000 ranges.  Once a range holds more than a page, every new call dirties a page of its own, and
a commit writes each dirtied page into the WAL: at 1 M calls the caller's index alone wrote 1.5
pages a call against 0.66 on a small catalog, most of what made SQLite's write path slower on a big
catalog (issue 11, docs/catalog-at-scale.md "Where a call's writes go at scale").

Now ``calls.fresh`` marks a call whose number entries are in ``calls_caller_fresh`` /
``calls_callee_fresh`` (partial indexes of the rows ``fresh <> 0``: a few thousand entries, as
cheap to write as an empty catalog's), and the big indexes are partial indexes of the rows
``fresh = 0``.  The writer that inserts a call marks it fresh on SQLite; about every 20,000 fresh
calls one ``UPDATE`` settles them, which moves their entries into the big indexes in one
transaction: each of the 10,000 newest pages is dirtied once for many calls.

Every read of a number (search, count, erasure, holds, key rotation's subjects) reads both parts:
``protected_rows.side_clause`` and ``stored_side_clause`` write the lookup as two arms, ``fresh =
0`` and ``fresh <> 0``, which together take every row whatever its mark holds; a page merges its
two ordered arms (``queries._page``).  The mark is not sealed (``tags`` and ``flags`` are not
either): a row whose mark was edited is found by either arm, never by neither.

Existing rows read ``fresh = 0`` (the column's default): the two big indexes are made again as
partial ones, a pass over ``calls`` each (minutes at 10 M calls).  On PostgreSQL the writers
insert ``fresh = 0`` (its write path is flat without this: session 40), so its fresh indexes stay
empty and its reads are the same two arms.

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

COLUMN = "fresh"
COLUMN_SQL = f"{COLUMN} INTEGER NOT NULL DEFAULT 0"
#: the rows of the big number indexes, and of the fresh ones (literals: a partial index is used
#: only for a query that repeats its condition as written)
SETTLED = "fresh = 0"
FRESH = "fresh <> 0"
SIDES = ("caller", "callee")


def settled_index(side: str) -> str:
    return f"calls_{side}_number"


def fresh_index(side: str) -> str:
    return f"calls_{side}_fresh"


def _columns(side: str) -> str:
    # (the mark last: SQLite 3.40 tests a partial index's condition on the index entry only when the
    # entry carries its column, so a count stays a covering-index read)
    return f"{side}_bi4, started_at DESC, call_id, {side}_bi, {COLUMN}"


def index_sql(side: str, *, fresh: bool) -> str:
    """The DDL of one side's settled or fresh number index (both engines)."""
    name, where = (fresh_index(side), FRESH) if fresh else (settled_index(side), SETTLED)
    return f"CREATE INDEX IF NOT EXISTS {name} ON calls({_columns(side)}) WHERE {where}"


NUMBERS_STAGED: list[str] = [
    # 25 (issue 11, a write path that stays flat): see the module's text
    f"ALTER TABLE calls ADD COLUMN {COLUMN_SQL};\n"
    + "".join(f"DROP INDEX IF EXISTS {settled_index(side)};\n" for side in SIDES)
    + "".join(index_sql(side, fresh=False) + ";\n" for side in SIDES)
    + "".join(index_sql(side, fresh=True) + ";\n" for side in SIDES)
    + """
    -- planner statistics in the shape of migration 15's: 4 last digits ~1,000 of 10M settled calls,
    -- ~2 of the ~20,000 fresh ones
    DELETE FROM sqlite_stat1 WHERE idx IN ('calls_caller_number', 'calls_callee_number',
                                           'calls_caller_fresh', 'calls_callee_fresh');
    INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
        ('calls', 'calls_caller_number', '10000000 1000 1 1 1 1'),
        ('calls', 'calls_callee_number', '10000000 1000 1 1 1 1'),
        ('calls', 'calls_caller_fresh', '20000 2 1 1 1 1'),
        ('calls', 'calls_callee_fresh', '20000 2 1 1 1 1');
    ANALYZE sqlite_schema;
    """,
]
