"""The catalog's SQLite migration 19: a new call's tags are copied into ``call_tags`` by the
catalog's own write of the row (:mod:`pbx_recorder.catalog.call_tags`), not by an insert trigger,
and a new recording row is written by a plain ``INSERT`` (``Catalog._insert_new``).

Why: SQLite runs a statement that fires a trigger, or an ``INSERT ... ON CONFLICT DO UPDATE``,
inside a statement transaction, and such a statement copies every page it changes to a
statement journal first (so that it can be undone alone).  The call row's ``INSERT`` changes the
table and each of its indexes: measured with the bench's calls (issue 11, session 27), 100-155 KB
journaled per call row (written to a temporary file) and 44-47 KB per recording row, where a plain
``INSERT`` journals nothing (its constraints are all checked before it changes a page).  Without
the insert trigger and with the recording's plain insert, the bulk writer spends about a tenth
less CPU per call.

What stays: the update and delete triggers (an update that changes a call's tags, time or a
copied column, and a deleted call, keep ``call_tags`` right for every writer); the tags of the
calls already in the catalog (copied when they were written). What changes: a row inserted into
``calls`` by raw SQL, not through the catalog, gets no ``call_tags`` rows on SQLite
(``call_tags.copy_all`` copies every call's); on PostgreSQL the server's trigger is kept (its
rows are not journaled page by page).

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

#: the trigger migration 19 drops
INSERT_TRIGGER = "call_tags_insert"

TAGS_WRITTEN_WITH_THE_ROW: list[str] = [
    # 19 (issue 11, writes at 2,000 calls/s): see the module's text
    f"DROP TRIGGER IF EXISTS {INSERT_TRIGGER};\n",
]
