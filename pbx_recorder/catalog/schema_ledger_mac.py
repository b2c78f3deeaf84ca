"""The catalog's SQLite migration 24: ``ledger.mac``, the ledger rows' HMAC (Alembic revision 0023
for PostgreSQL; :mod:`pbx_recorder.recording.ledger`).

Why: the ledger is a SHA-256 hash chain whose head is signed outside the database once a day, but
anyone who could write the catalog could append rows after the last signed head with their hashes
computed (a ``deleted`` entry for a recording they then removed, a ``released`` hold, a
``reclassed`` recording) and the recorder's next head signed over them: they passed ``verify`` for
good.  With ``web.secret_key_file`` set every ledger row carries ``mac`` (HMAC-SHA256 over its hash,
under a key derived from that file, as the audit rows); the hash of a keyed row covers that it is
keyed, so a MAC removed later breaks it, and once one keyed row is in the chain every later row
must be keyed.

``''`` on every existing row (written before this migration, or by a process without the key):
such rows are accepted only before the first keyed row of the chain.

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

TABLE = "ledger"
COLUMN = "mac"
COLUMN_SQL = f"{COLUMN} TEXT NOT NULL DEFAULT ''"

LEDGER_ROWS_KEYED: list[str] = [
    # 24 (lifecycle ledger): see the module's text
    f"ALTER TABLE {TABLE} ADD COLUMN {COLUMN_SQL};\n",
]
