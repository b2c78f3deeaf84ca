"""Working with recordings: export jobs, two-person deletion requests, destruction records, the tag
vocabulary, QA scorecards and reviews, reports and their schedules (SQLite's migration 9).

Revision ID: 0009
Revises: 0008

The baseline creates the model as it stands, so on a catalog created fresh these already exist:
each table and index is created only when missing.
"""

from alembic import op

from pbx_recorder.catalog.schema_model import WORK_INDEXES, WORK_TABLES, metadata

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, tables=list(WORK_TABLES), checkfirst=True)
    for index in WORK_INDEXES:
        index.create(bind, checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
