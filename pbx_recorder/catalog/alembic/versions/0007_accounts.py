"""Accounts of the operator service: users, teams, sessions, QA assignments (SQLite's migration 7).

Revision ID: 0007
Revises: 0006

The baseline creates the model as it stands, so on a catalog created fresh these tables already
exist: each one (and each index) is created only when missing.
"""

from alembic import op

from pbx_recorder.catalog.schema_model import ACCOUNT_INDEXES, ACCOUNT_TABLES, metadata

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, tables=list(ACCOUNT_TABLES), checkfirst=True)
    for index in ACCOUNT_INDEXES:
        index.create(bind, checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
