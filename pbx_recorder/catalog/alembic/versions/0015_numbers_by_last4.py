"""A number's full-number blind index found through its last 4 digits' index (SQLite's migration
15, ``pbx_recorder.catalog.schema_last4``): ``calls_caller_number`` / ``calls_callee_number`` on
``(<side>_bi4, started_at DESC, call_id, <side>_bi)`` replace the four indexes of the numbers, and
``holds.value4`` keeps a caller hold's last-4 index beside its full-number one.

Revision ID: 0015
Revises: 0014

The baseline creates the model as it stands, so on a catalog created fresh the new indexes and the
column already exist and the old indexes never did: each step is done only when needed.
"""

from alembic import op
from sqlalchemy import inspect

from pbx_recorder.catalog.schema_last4 import DROPPED_INDEXES, FILL_HOLD_LAST4, NUMBER_INDEXES_SQL

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    bind = op.get_bind()
    if "value4" not in {c["name"] for c in inspect(bind).get_columns("holds")}:
        op.execute("ALTER TABLE holds ADD COLUMN value4 TEXT NOT NULL DEFAULT ''")
    op.execute(FILL_HOLD_LAST4)
    for name in DROPPED_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    # (the indexes as this revision made them, not the model's: revision 0024 makes them partial)
    for statement in NUMBER_INDEXES_SQL.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
