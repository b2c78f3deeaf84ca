"""``call_numbers`` no longer repeats a call's own caller and callee (SQLite's migration 13,
``pbx_recorder.catalog.named_rows``): the rows that do are deleted; a call is found by those two
through ``calls.caller_bi`` / ``calls.callee_bi``, which every number lookup reads as well.

Revision ID: 0013
Revises: 0012

No layout change: the statement is the one SQLite's migration runs.  On a large catalog it reads
``call_numbers`` once with one primary-key lookup into ``calls`` a row.
"""

from alembic import op

from pbx_recorder.catalog.schema_numbers import DROP_OWN_NUMBER_ROWS

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    op.get_bind().exec_driver_sql(DROP_OWN_NUMBER_ROWS)


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
