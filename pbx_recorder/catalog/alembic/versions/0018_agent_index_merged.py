"""One index led by the agent, carrying status, consent decision and queue (SQLite's migration 18,
``pbx_recorder.catalog.schema_agent``): ``calls_agent_time`` is made again with those columns after
``started_at DESC, call_id`` and the three agent-led indexes of revision 0010 are dropped, so a new
call dirties one agent-led leaf instead of four.

Revision ID: 0018
Revises: 0017

The baseline creates the model as it stands, so on a catalog created fresh the agent's index is
already in the new form: it is made again only when its columns differ.
"""

from alembic import op
from sqlalchemy import inspect

from pbx_recorder.catalog.schema_agent import AGENT_INDEX, AGENT_INDEX_COLUMNS, RETIRED
from pbx_recorder.catalog.schema_model import AGENT_TIME_INDEX

revision = "0018"
down_revision = "0017"


def upgrade() -> None:
    bind = op.get_bind()
    for name in RETIRED:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    present = {i["name"]: list(i["column_names"]) for i in inspect(bind).get_indexes("calls")}
    if present.get(AGENT_INDEX) != AGENT_INDEX_COLUMNS:
        op.execute(f"DROP INDEX IF EXISTS {AGENT_INDEX}")
        AGENT_TIME_INDEX.create(bind)


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
