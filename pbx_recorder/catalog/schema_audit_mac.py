"""The catalog's SQLite migration 22: ``audit_log.mac``, the audit rows' HMAC (Alembic revision
0021 for PostgreSQL; :mod:`pbx_recorder.audit_key`).

``''`` on every existing row (written before this migration, or by a process without
``web.secret_key_file``): such rows are accepted only before the first keyed row of the chain.

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

TABLE = "audit_log"
COLUMN = "mac"
COLUMN_SQL = f"{COLUMN} TEXT NOT NULL DEFAULT ''"

AUDIT_ROWS_KEYED: list[str] = [
    # 22 (audit trail): see the module's text
    f"ALTER TABLE {TABLE} ADD COLUMN {COLUMN_SQL};\n",
]
