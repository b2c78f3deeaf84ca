"""Each filter index carries the other filters' columns a search it leads can need (SQLite's
migration 16, ``pbx_recorder.catalog.schema_filters``): ``calls_queue_time`` and
``calls_agent_queue_time`` are made again with status and consent decision after
``started_at DESC, call_id``, ``calls_consent_time`` and ``calls_agent_consent_time`` with the
status, so a combined filter is tested inside one index range and its count reads the index alone.

Revision ID: 0016
Revises: 0015

The baseline creates the model as it stands (and revision 0010 creates the agent-led indexes from
it), so an index already in the new form is left alone: each is made again only when its columns
differ.  Each is made from its DDL as this revision shipped it (the agent-led ones are no longer in
the model: revision 0018 merged them into ``calls_agent_time``).
"""

from alembic import op
from sqlalchemy import inspect

from pbx_recorder.catalog.schema_filters import FILTER_COLUMNS, create_index_sql, filter_index_columns

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
    bind = op.get_bind()
    present = {i["name"]: list(i["column_names"]) for i in inspect(bind).get_indexes("calls")}
    for name in FILTER_COLUMNS:
        if present.get(name) == filter_index_columns(name):
            continue
        op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute(create_index_sql(name))


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
