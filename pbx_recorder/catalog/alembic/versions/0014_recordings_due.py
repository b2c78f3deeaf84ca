"""Indexes for retention and migration passes (SQLite's migration 14): ``recordings_due`` on
``(state, retention_class, created_at)`` and ``recordings_retain_until`` on the few rows with an
explicit ``retain_until`` (partial), so ``retention report|apply`` and ``recordings migrate`` read
only the recordings old enough to be due (``pbx_recorder.lifecycle.due_rows``).

Revision ID: 0014
Revises: 0013

The baseline creates the model as it stands, so on a catalog created fresh these already exist:
each is created only when missing.
"""

from alembic import op

from pbx_recorder.catalog.schema_model import DUE_INDEXES

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    bind = op.get_bind()
    for index in DUE_INDEXES:
        index.create(bind, checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
