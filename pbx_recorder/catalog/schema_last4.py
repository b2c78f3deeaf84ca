"""The catalog's SQLite migration 15: a number's full-number blind index is found through the index
of its last 4 digits, which carries it as its last column; the two indexes keyed by the full
number alone are gone.

Why: an index keyed by a value in no order (a full number's keyed hash) puts each new call on a
leaf page of its own once the index is large, so every call of a batch dirtied one more page (WAL
write, then checkpoint) and, past the page cache, read one: the write path lost a quarter of its
rate between an empty catalog and a million calls (issue 11, ``bench/bench_index_cost.py``).  The
last 4 digits' index is needed anyway (last-4 search over all time); carrying the full index in it
lets a full-number search read one range of the last 4 digits (about 1 call in 10,000) and filter
inside the index, and keeps the newest-first order.  A number of fewer than 4 digits (an extension,
a service number) has no last-4 index (''), like a call without a number: it is found in the range
of those calls (an erasure or a hold of such a number reads all of them, inside the index).
Lookups that hold only a stored full-number index (a caller hold, a rotation re-keying a hold) keep
its last-4 index beside it: ``holds.value4``, filled here for the holds that exist, from their
calls; a hold whose number no call had, and an erasure request (it keeps its subject only), read
every call when they look their calls up (``hold remove``, ``keys rotate-index``).

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

#: a caller hold's last-4 value(s) from the calls its stored full-number value(s) name (through the
#: indexes this migration then drops); '' when no call has it (the lookup then reads every call)
FILL_HOLD_LAST4 = """
    UPDATE holds SET value4 = COALESCE(
        (SELECT caller_bi4 FROM calls WHERE caller_bi = holds.value AND caller_bi4 <> '' LIMIT 1),
        (SELECT callee_bi4 FROM calls WHERE callee_bi = holds.value AND callee_bi4 <> '' LIMIT 1),
        '')
    WHERE scope = 'caller' AND value4 = ''
"""

#: the index changes of migration 15, shared with Alembic revision 0015
DROPPED_INDEXES = ("calls_caller_bi", "calls_caller_bi4", "calls_callee_bi", "calls_callee_bi4")
NUMBER_INDEXES_SQL = """
    CREATE INDEX IF NOT EXISTS calls_caller_number ON calls(caller_bi4, started_at DESC, call_id, caller_bi);
    CREATE INDEX IF NOT EXISTS calls_callee_number ON calls(callee_bi4, started_at DESC, call_id, callee_bi);
"""

NUMBERS_BY_LAST4: list[str] = [
    # 15 (issue 11, a write path that stays flat): see the module's text
    "ALTER TABLE holds ADD COLUMN value4 TEXT NOT NULL DEFAULT '';\n"
    + FILL_HOLD_LAST4 + ";\n"
    + "".join(f"DROP INDEX IF EXISTS {name};\n" for name in DROPPED_INDEXES)
    + NUMBER_INDEXES_SQL
    + """
    -- planner statistics in the shape of migration 6's: 4 last digits ~1,000 of 10M calls, a full
    -- number a handful
    DELETE FROM sqlite_stat1 WHERE idx IN ('calls_caller_bi', 'calls_caller_bi4', 'calls_callee_bi',
                                           'calls_callee_bi4', 'calls_caller_number', 'calls_callee_number');
    INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
        ('calls', 'calls_caller_number', '10000000 1000 1 1 1'),
        ('calls', 'calls_callee_number', '10000000 1000 1 1 1');
    ANALYZE sqlite_schema;
    """,
]
