"""``qa_scorecards.seal`` and ``qa_reviews.seal`` (SQLite's migration 23,
``pbx_recorder.catalog.schema_qa_seal``); ``''`` on every existing row.

Revision ID: 0022
Revises: 0021

The baseline creates the model as it stands, so on a catalog created fresh the columns already
exist: each is added only when missing.
"""

from alembic import op
from sqlalchemy import inspect

from pbx_recorder.catalog.schema_qa_seal import COLUMN, COLUMN_SQL, TABLES

revision = "0022"
down_revision = "0021"


def upgrade() -> None:
    found = inspect(op.get_bind())
    for table in TABLES:
        if COLUMN not in {c["name"] for c in found.get_columns(table)}:
            op.execute(f"ALTER TABLE {table} ADD COLUMN {COLUMN_SQL}")


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
