"""A tag's index carries the call's other filters (SQLite's migration 17,
``pbx_recorder.catalog.schema_filters``): ``call_tags`` gets copies of the call's status, consent
decision and queue (filled from the calls here, kept in step by the tag trigger from now on), and
``call_tags_tag`` / ``call_tags_agent`` are made again carrying them, so a tag beside those filters
is one index range.

Revision ID: 0017
Revises: 0016

The baseline creates the model as it stands, so on a catalog created fresh the columns and the
indexes already exist: each step is done only when needed (the copies are filled only where
missing, the trigger replaced on PostgreSQL).
"""

from alembic import op
from sqlalchemy import inspect

from pbx_recorder.catalog.schema_filters import TAG_COPIES
from pbx_recorder.catalog.schema_filters import TAG_INDEXES as TAG_INDEX_COLUMNS
from pbx_recorder.catalog.schema_model import POSTGRES_TAG_TRIGGER, TAG_INDEXES

revision = "0017"
down_revision = "0016"

ADDED = TAG_COPIES[1:]  # (the agent is copied since revision 0010)


def upgrade() -> None:
    bind = op.get_bind()
    insp = inspect(bind)
    present = {c["name"] for c in insp.get_columns("call_tags")}
    for column in ADDED:
        if column not in present:
            op.execute(f"ALTER TABLE call_tags ADD COLUMN {column} TEXT")
    op.execute(f"UPDATE call_tags SET ({', '.join(ADDED)}) = (SELECT {', '.join(f'c.{c}' for c in ADDED)} "
               "FROM calls c WHERE c.call_id = call_tags.call_id) WHERE status IS NULL")
    indexes = {i["name"]: list(i["column_names"]) for i in insp.get_indexes("call_tags")}
    for name, index in TAG_INDEXES.items():
        if indexes.get(name) != list(TAG_INDEX_COLUMNS[name]):
            op.execute(f"DROP INDEX IF EXISTS {name}")
            index.create(bind)
    if bind.dialect.name == "postgresql":
        for trigger in ("call_tags_insert", "call_tags_update", "call_tags_delete"):
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger} ON calls")
        bind.exec_driver_sql(POSTGRES_TAG_TRIGGER)


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
