"""The catalog's SQLite migration 21: a ``seal`` column on every row that decides who may do what
in the operator service (Alembic revision 0020 for PostgreSQL).

Why: the service's access control lives in the catalog, so whoever could write the catalog could
make themselves an admin, mint a session or API token, widen a team or write a replay grant.  With
``web.secret_key_file`` set, each such row is sealed with a key the catalog never holds
(:mod:`pbx_recorder.service.access_seal`) and a row that fails its seal is not honoured.

``''`` (the default: every row written before this migration) means "not sealed": with a secret
key configured the service refuses to start until ``pbx-recorder users seal`` has sealed them
(after an admin has checked them); without one, nothing reads the column.

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

#: the tables migration 21 (and revision 0020) gives a seal, and the column's declaration
TABLES = ("users", "user_teams", "team_agents", "sessions", "api_tokens", "qa_assignments", "replay_grants")
COLUMN = "seal"
COLUMN_SQL = f"{COLUMN} TEXT NOT NULL DEFAULT ''"

ACCESS_ROWS_SEALED: list[str] = [
    # 21 (operator service): see the module's text
    "".join(f"ALTER TABLE {table} ADD COLUMN {COLUMN_SQL};\n" for table in TABLES),
]
