"""Baseline: the catalog as SQLite's migration 6 leaves it (numbers encrypted, blind indexes).

Revision ID: 0006
Revises: (none)
"""

from alembic import op

from pbx_recorder.catalog.schema_model import POSTGRES_TAG_TRIGGER, metadata

revision = "0006"
down_revision = None


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind)
    bind.exec_driver_sql(POSTGRES_TAG_TRIGGER)


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
