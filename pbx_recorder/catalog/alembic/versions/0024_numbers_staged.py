"""``calls.fresh`` and the fresh number indexes; the two number indexes made again as partial
indexes of the settled calls (SQLite's migration 25, ``pbx_recorder.catalog.schema_fresh_numbers``).

Revision ID: 0024
Revises: 0023

The baseline creates the model as it stands, so on a catalog created fresh the column and the four
indexes already exist in their new form: each step is done only when needed.  PostgreSQL's writers
insert every call settled (``fresh = 0``), so its fresh indexes stay empty.
"""

from alembic import op
from sqlalchemy import inspect

from pbx_recorder.catalog.schema_fresh_numbers import COLUMN, COLUMN_SQL, SIDES, index_sql, settled_index

revision = "0024"
down_revision = "0023"


def upgrade() -> None:
    bind = op.get_bind()
    if COLUMN not in {c["name"] for c in inspect(bind).get_columns("calls")}:
        op.execute(f"ALTER TABLE calls ADD COLUMN {COLUMN_SQL}")
    if bind.dialect.name == "postgresql":
        sql = ("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
               "AND tablename = 'calls'")
    else:  # (the revisions are also run on SQLite by the unit tests)
        sql = "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'calls'"
    partial = {str(name) for name, ddl in bind.exec_driver_sql(sql) if " WHERE " in str(ddl or "").upper()}
    for side in SIDES:
        if settled_index(side) not in partial:
            op.execute(f"DROP INDEX IF EXISTS {settled_index(side)}")
        op.execute(index_sql(side, fresh=False))
        op.execute(index_sql(side, fresh=True))


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
