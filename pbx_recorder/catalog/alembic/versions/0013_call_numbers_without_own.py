"""``call_numbers`` no longer repeats a call's own caller and callee (SQLite's migration 13,
``pbx_recorder.catalog.named_rows``): the rows that do are deleted; a call is found by those two
through ``calls.caller_bi`` / ``calls.callee_bi``, which every number lookup reads as well.  And,
PostgreSQL only: autovacuum visits ``calls`` and ``call_tags`` after every 10,000 inserted rows
(plus 1 %) instead of 20 % of the table, so a count of a status or tag most calls have stays an
index-only scan on a large catalog that only grows (before, it read ``calls`` sequentially until
autovacuum marked its pages all-visible: at 10 M calls not before 2 M more were written).

Revision ID: 0013
Revises: 0012

No layout change: the DELETE is the statement SQLite's migration runs.  On a large catalog it
reads ``call_numbers`` once with one primary-key lookup into ``calls`` a row.
"""

from alembic import op

from pbx_recorder.catalog.schema_numbers import DROP_OWN_NUMBER_ROWS

revision = "0013"
down_revision = "0012"

#: per-table autovacuum settings (storage parameters; PostgreSQL 13 and newer)
VACUUM_ON_INSERTS = "autovacuum_vacuum_insert_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0.01"
GROWING_TABLES = ("calls", "call_tags")


def upgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql(DROP_OWN_NUMBER_ROWS)
    if bind.dialect.name == "postgresql":
        for table in GROWING_TABLES:
            bind.exec_driver_sql(f"ALTER TABLE {table} SET ({VACUUM_ON_INSERTS})")


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
