"""``ledger.mac`` (SQLite's migration 24, ``pbx_recorder.catalog.schema_ledger_mac``); ``''`` on
every existing row.

Revision ID: 0023
Revises: 0022

The baseline creates the model as it stands, so on a catalog created fresh the column already
exists: it is added only when missing.
"""

from alembic import op
from sqlalchemy import inspect

from pbx_recorder.catalog.schema_ledger_mac import COLUMN, COLUMN_SQL, TABLE

revision = "0023"
down_revision = "0022"


def upgrade() -> None:
    if COLUMN not in {c["name"] for c in inspect(op.get_bind()).get_columns(TABLE)}:
        op.execute(f"ALTER TABLE {TABLE} ADD COLUMN {COLUMN_SQL}")


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
