"""The tags a call's recording rule set, recorded with the call and sealed (SQLite's migration 20,
``pbx_recorder.catalog.schema_rule_tags``): ``calls.rule_tags``, ``''`` on every existing row
(not recorded: four-eyes reads those rows' rule tags from the configuration, as before, and their
v1 seals still verify).

Revision ID: 0019
Revises: 0018

The baseline creates the model as it stands, so on a catalog created fresh the column already
exists: it is added only when missing.  (On PostgreSQL an added column with a constant default is
a catalog change only: no table rewrite, however many calls.)
"""

from alembic import op
from sqlalchemy import inspect

from pbx_recorder.catalog.schema_rule_tags import COLUMN, COLUMN_SQL

revision = "0019"
down_revision = "0018"


def upgrade() -> None:
    present = {c["name"] for c in inspect(op.get_bind()).get_columns("calls")}
    if COLUMN not in present:
        op.execute(f"ALTER TABLE calls ADD COLUMN {COLUMN_SQL}")


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
