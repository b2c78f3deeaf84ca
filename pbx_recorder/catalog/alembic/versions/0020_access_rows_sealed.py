"""A seal on every row that decides who may do what in the operator service (SQLite's migration
21, ``pbx_recorder.catalog.schema_access_seal``): ``seal``, ``''`` on every existing row (not
sealed: with ``web.secret_key_file`` set the service refuses to start until ``pbx-recorder users
seal`` has sealed them).

Revision ID: 0020
Revises: 0019

The baseline creates the model as it stands, so on a catalog created fresh the columns already
exist: each is added only when missing.
"""

from alembic import op
from sqlalchemy import inspect

from pbx_recorder.catalog.schema_access_seal import COLUMN, COLUMN_SQL, TABLES

revision = "0020"
down_revision = "0019"


def upgrade() -> None:
    inspector = inspect(op.get_bind())
    for table in TABLES:
        if COLUMN not in {c["name"] for c in inspector.get_columns(table)}:
            op.execute(f"ALTER TABLE {table} ADD COLUMN {COLUMN_SQL}")


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
