"""Alembic revision 0010 (scoped searches) brings a catalog at the 0009 layout to the newest one:
``call_tags.agent`` added and filled from the calls, the agent-led indexes created (and merged into
the agent's index by revision 0018), the rows kept; a no-op on a catalog the baseline created fresh.
Run through Alembic on a SQLite database (plain SQLAlchemy DDL); the PostgreSQL trigger is exercised
by the PostgreSQL pass of the scoped-search tests (tests/unit/test_catalog_scoped_search.py)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import pg_schema
from pbx_recorder.catalog.schema_agent import AGENT_INDEX, AGENT_INDEX_COLUMNS, RETIRED
from pbx_recorder.catalog.schema_filters import TAG_COPIES
from pbx_recorder.catalog.schema_model import metadata

pytestmark = pytest.mark.sqlite_only  # a SQLAlchemy SQLite database of its own


@pytest.mark.parametrize("fresh", [False, True])
def test_0010_adds_the_agent_led_indexes_and_the_tag_agent(tmp_path, fresh: bool) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        metadata.create_all(connection)
        if not fresh:  # the 0009 layout: no agent (nor the copies of 0017) in call_tags, no agent-led indexes
            for name in ["call_tags_agent", "call_tags_tag", AGENT_INDEX]:
                connection.execute(text(f"DROP INDEX {name}"))
            connection.execute(text(f"CREATE INDEX {AGENT_INDEX} ON calls(agent, started_at DESC, call_id)"))
            connection.execute(text("CREATE INDEX call_tags_tag ON call_tags(tag, started_at DESC, call_id)"))
            for column in TAG_COPIES:
                connection.execute(text(f"ALTER TABLE call_tags DROP COLUMN {column}"))
        connection.execute(text("INSERT INTO calls (call_id, agent, started_at, rowid) "
                                "VALUES ('c1', 'ann', 5, 1)"))
        connection.execute(text("INSERT INTO call_tags (call_id, tag, started_at) VALUES ('c1', 'vip', 5)"))
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0009')"))
        connection.commit()
        if not fresh:
            assert "agent" not in {c["name"] for c in inspect(connection).get_columns("call_tags")}
        command.upgrade(pg_schema._config(connection), "0010")
        connection.commit()
        insp = inspect(connection)
        for name in [*RETIRED, "call_tags_agent"]:
            assert name in {i["name"] for i in insp.get_indexes("calls")} | {
                i["name"] for i in insp.get_indexes("call_tags")}
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        found = {i["name"]: i["column_names"] for i in inspect(connection).get_indexes("calls")}
        assert not set(RETIRED) & set(found) and found[AGENT_INDEX] == AGENT_INDEX_COLUMNS  # (0018)
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        kept = connection.execute(text("SELECT call_id, tag, agent, status FROM call_tags")).one()
    assert tuple(kept) == ("c1", "vip", "ann", "")  # (the call's status: the column's default)
    assert version == pg_schema.HEAD  # 0010, then the later revisions
