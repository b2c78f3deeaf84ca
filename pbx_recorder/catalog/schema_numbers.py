"""The catalog's SQLite migrations about the phone numbers it holds: 6 (numbers encrypted, blind
indexes, ``call_numbers``), 11 (the catalog's copy of the signed manifest keeps no number), 12
(the numbers ``call_numbers`` indexes that the call's own row does not hold, sealed) and 13
(``call_numbers`` no longer repeats a call's own caller and callee).

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

NUMBERS_PROTECTED: list[str] = [
    # 6 (numbers encrypted, pbx_recorder.catalog.protected_rows): the call's numbers, CDR and
    # consent evidence in one AES-256-GCM token; blind indexes (full number, last 4 digits) of
    # caller and callee, each with (started_at DESC, call_id): the search order, served by the index;
    # every number a call names (for erasure).  The clear columns stay, emptied by the data step
    # (pbx_recorder.catalog.number_migration) once the keys are at hand.
    """
    ALTER TABLE calls ADD COLUMN numbers TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN caller_bi TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN caller_bi4 TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN callee_bi TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN callee_bi4 TEXT NOT NULL DEFAULT '';
    DROP INDEX IF EXISTS calls_caller;   -- the clear columns are emptied: these would index ''
    DROP INDEX IF EXISTS calls_callee;
    CREATE INDEX calls_caller_bi ON calls(caller_bi, started_at DESC, call_id);
    CREATE INDEX calls_caller_bi4 ON calls(caller_bi4, started_at DESC, call_id);
    CREATE INDEX calls_callee_bi ON calls(callee_bi, started_at DESC, call_id);
    CREATE INDEX calls_callee_bi4 ON calls(callee_bi4, started_at DESC, call_id);
    CREATE TABLE call_numbers (
        bi      TEXT NOT NULL,               -- full-number blind index of a number the call names
        call_id TEXT NOT NULL,
        PRIMARY KEY (bi, call_id)
    ) WITHOUT ROWID;
    CREATE INDEX call_numbers_call ON call_numbers(call_id);
    CREATE TABLE catalog_settings (
        name  TEXT PRIMARY KEY,              -- numbers_protected: key id the data step finished under
        value TEXT NOT NULL
    );
    -- planner statistics for the blind indexes, in the shape of migration 5's seeded figures (a
    -- full number names a handful of calls; 4 last digits ~1,000 of 10M)
    INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
        ('calls', 'calls_caller_bi', '10000000 5 1 1'),
        ('calls', 'calls_caller_bi4', '10000000 1000 1 1'),
        ('calls', 'calls_callee_bi', '10000000 5 1 1'),
        ('calls', 'calls_callee_bi4', '10000000 1000 1 1');
    ANALYZE sqlite_schema;
    """,
]

MANIFEST_COPY_AND_EXTRA_NUMBERS: list[str] = [
    # 11 (footprint, issue 11; pbx_recorder.recording.manifest_copy): the signed manifest is the object stored
    # beside the audio; a row written from now on keeps in ``manifest`` only what display reads and
    # in ``manifest_sha256`` the hash of the signed bytes, which ``verify`` checks the stored object
    # against.  Rows written before keep their whole copy ('' here) and are verified as before.
    """
    ALTER TABLE recordings ADD COLUMN manifest_sha256 TEXT NOT NULL DEFAULT '';
    """,
    # 12 (issue 11, pbx_recorder.catalog.extra_numbers): the numbers call_numbers indexes for a call
    # that its own sealed row does not hold (named only by a recording's signed manifest, or by an
    # earlier version of the row), sealed, so `keys rotate-index` can re-make their indexes.  A
    # catalog with recordings gets the data step's marker: rows stored under schema 11 before it
    # lost that plaintext, which `catalog migrate` reads back from their stored signed manifests
    # (pbx_recorder.catalog.manifest_numbers); rows created after ``upto`` need no pass.
    """
    CREATE TABLE call_extra_numbers (
        call_id TEXT PRIMARY KEY,
        numbers TEXT NOT NULL                -- AES-256-GCM token of the digit strings (pn1:...)
    ) WITHOUT ROWID;
    INSERT INTO catalog_settings (name, value)
        SELECT 'manifest_numbers_pass',
               '{"cursor":"","upto":' || CAST(strftime('%s', 'now') AS INTEGER) || '}'
        WHERE EXISTS (SELECT 1 FROM recordings);
    """,
]

#: the SQL of migration 13, shared with Alembic revision 0013 (PostgreSQL runs the same statement)
DROP_OWN_NUMBER_ROWS = """
    DELETE FROM call_numbers WHERE EXISTS (
        SELECT 1 FROM calls c
        WHERE c.call_id = call_numbers.call_id AND call_numbers.bi IN (c.caller_bi, c.callee_bi))
"""

CALL_NUMBERS_WITHOUT_OWN: list[str] = [
    # 13 (footprint and write path, issue 11; pbx_recorder.catalog.named_rows): a call is found by
    # its own caller and callee through calls.caller_bi / callee_bi; call_numbers keeps only the
    # other numbers it names (two rows and two random-keyed index entries a call fewer).  Every
    # number lookup already reads all three, so nothing is found differently.
    DROP_OWN_NUMBER_ROWS + ";",
]
