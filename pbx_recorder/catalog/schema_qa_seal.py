"""The catalog's SQLite migration 23: a ``seal`` column on the QA rows that grade people,
``qa_scorecards`` and ``qa_reviews`` (Alembic revision 0022 for PostgreSQL).

Why: a review's score and answers are an agent's grade (team reports rank agents by them) and a
scorecard's criteria weigh every review written with it.  Whoever could write the catalog could
raise or lower a grade, or hand a review to another agent, unnoticed.  With
``web.secret_key_file`` set they are sealed like the access rows
(:mod:`pbx_recorder.service.access_seal`): a row that fails its seal is not shown, not counted in a
report and not edited.

``''`` (the default: every row written before this migration) means "not sealed": with a secret
key configured the service refuses to start until ``pbx-recorder users seal`` has sealed them
(after an admin has checked them).

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

#: the tables migration 23 (and revision 0022) gives a seal
TABLES = ("qa_scorecards", "qa_reviews")
COLUMN = "seal"
COLUMN_SQL = f"{COLUMN} TEXT NOT NULL DEFAULT ''"

QA_ROWS_SEALED: list[str] = [
    # 23 (QA review): see the module's text
    "".join(f"ALTER TABLE {table} ADD COLUMN {COLUMN_SQL};\n" for table in TABLES),
]
