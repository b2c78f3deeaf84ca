"""The console: users' language and TOTP, session stage, API tokens, marks, saved searches,
four-eyes replay grants, waveform peaks (SQLite's migration 8).

Revision ID: 0008
Revises: 0007

The baseline creates the model as it stands, so on a catalog created fresh these already exist:
each table, column and index is created only when missing.
"""

from alembic import op
from sqlalchemy import Column, inspect

from pbx_recorder.catalog.schema_model import CONSOLE_COLUMNS, CONSOLE_INDEXES, CONSOLE_TABLES, metadata

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    bind = op.get_bind()
    for table_name, names in CONSOLE_COLUMNS.items():
        present = {c["name"] for c in inspect(bind).get_columns(table_name)}
        table = metadata.tables[table_name]
        for name in names:
            if name not in present:
                model = table.c[name]
                op.add_column(table_name, Column(name, model.type, nullable=model.nullable,
                                                 server_default=model.server_default))
    metadata.create_all(bind, tables=list(CONSOLE_TABLES), checkfirst=True)
    for index in CONSOLE_INDEXES:
        index.create(bind, checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
