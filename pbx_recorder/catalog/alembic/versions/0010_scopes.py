"""Scoped searches (SQLite's migration 10): indexes led by the agent for each filter the console
offers beside a row scope, and ``call_tags.agent`` (a copy of the call's agent kept by the tag
trigger, now also when a call's agent changes) with its ``(agent, tag, started_at)`` index.

Revision ID: 0010
Revises: 0009

The baseline creates the model as it stands, so on a catalog created fresh the column and the tag
index already exist: each is added only when missing; the trigger is replaced on PostgreSQL.  The
three agent-led indexes are no longer in the model (revision 0018 merged them into
``calls_agent_time``): they are made from their DDL as this revision shipped them.
"""

from alembic import op
from sqlalchemy import inspect

from pbx_recorder.catalog.schema_model import (
    POSTGRES_TAG_TRIGGER_0010,
    SCOPE_INDEXES_0010,
    SCOPE_TAG_INDEX_0010,
)

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    bind = op.get_bind()
    if "agent" not in {c["name"] for c in inspect(bind).get_columns("call_tags")}:
        bind.exec_driver_sql("ALTER TABLE call_tags ADD COLUMN agent TEXT")
    bind.exec_driver_sql("UPDATE call_tags SET agent = (SELECT c.agent FROM calls c "
                         "WHERE c.call_id = call_tags.call_id) WHERE agent IS NULL")
    # (revision 0016 makes them again carrying the other filters; 0018 drops them)
    for _name, ddl in SCOPE_INDEXES_0010:
        bind.exec_driver_sql(ddl)
    bind.exec_driver_sql(SCOPE_TAG_INDEX_0010)  # (0017 makes it again carrying the filters)
    if bind.dialect.name == "postgresql":
        for trigger in ("call_tags_insert", "call_tags_update", "call_tags_delete"):
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger} ON calls")
        bind.exec_driver_sql(POSTGRES_TAG_TRIGGER_0010)  # (0017 replaces it)


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
