"""Schema 18 (``pbx_recorder.catalog.schema_agent``): one index led by the agent carries status,
consent decision and queue in place of the four agent-led indexes, so a new call dirties one
agent-led leaf instead of four; searches by agent and by a team's scope give the same calls before
and after, are tested inside the agent's range, and their shown count is bounded like the other
combined filters'."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import CallFilters, pg_schema
from pbx_recorder.catalog.queries import (
    MAX_MERGED_AGENTS,
    build_bounded_count,
    build_count,
    build_search,
    range_cap,
)
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations
from pbx_recorder.catalog.schema_agent import AGENT_INDEX, AGENT_INDEX_COLUMNS, RETIRED
from pbx_recorder.catalog.schema_filters import FILTER_COLUMNS, filter_index_columns
from pbx_recorder.catalog.schema_model import metadata
from pbx_recorder.catalog.scopes import Scope
from tests.unit.catalog_plan_support import plan
from tests.unit.test_catalog_revision_0016 import INSERT, NOW, calls, index_columns, ladder

#: what a console sends with an agent or inside a team's scope
AGENT_SEARCHES = [
    (CallFilters(agent="a4", queue="sales", status="no_answer"), None),
    (CallFilters(agent="a1", consent="refused"), None),
    (CallFilters(agent="a2", status="failed", preset="30d"), None),
    (CallFilters(agent="a3"), None),
    (CallFilters(status="failed"), Scope.of_agents({"a1", "a3"})),
    (CallFilters(consent="granted", queue="billing"), Scope.of_agents({"a2", "a4"})),
    (CallFilters(preset="7d", status="answered"), Scope.of_agents({"a2"})),
    (CallFilters(queue="support", status="answered"), Scope.of_agents({"a1", "a2", "a3", "a4"})),
]


def _results(conn: sqlite3.Connection) -> list[tuple[list[str], int, list[tuple[int, int]] | None]]:
    conn.row_factory = sqlite3.Row
    out = []
    for f, scope in AGENT_SEARCHES:
        page = [r["call_id"] for r in conn.execute(*build_search(f, NOW, scope=scope))]
        count = conn.execute(*build_count(f, NOW, scope=scope)).fetchone()[0]
        bounded = build_bounded_count(f, NOW, scope=scope, read_cap=10_000)
        out.append((page, count, [tuple(r) for r in conn.execute(*bounded)] if bounded else None))
    conn.row_factory = None
    return out


@pytest.mark.sqlite_only  # SQLite's own migration ladder
def test_sqlite_migration_18_merges_the_agent_indexes_and_keeps_the_results(tmp_path: Path) -> None:
    conn = ladder(tmp_path, 17)
    conn.executemany(INSERT, calls())
    conn.commit()
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
    assert set(RETIRED) <= names and index_columns(conn, AGENT_INDEX) == ["agent", "started_at", "call_id"]
    before = _results(conn)
    assert apply_migrations(conn) == len(MIGRATIONS) >= 18
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
    assert not set(RETIRED) & names
    assert index_columns(conn, AGENT_INDEX) == AGENT_INDEX_COLUMNS
    for name in set(FILTER_COLUMNS) - set(RETIRED):  # the others as migration 16 left them
        assert index_columns(conn, name) == filter_index_columns(name), name
    after = _results(conn)
    for (page, count, _bounded), (page2, count2, bounded2) in zip(before, after, strict=True):
        assert (page, count) == (page2, count2)
        # the count read inside the index (a range per agent of a team): every entry read (fewer
        # than the cap), the same matches
        assert bounded2 is None or sum(r[0] for r in bounded2) == count
        assert bounded2 is None or all(r[1] < range_cap(10_000, len(bounded2)) for r in bounded2)
    assert all(count > 0 for _page, count, _b in before) and all(page for page, _c, _b in before)
    stats = dict(conn.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'calls'").fetchall())
    assert stats[AGENT_INDEX] == "10000000 20000 1 1 1 1 1"
    assert not set(RETIRED) & set(stats)
    conn.close()


@pytest.mark.sqlite_only  # reads SQLite's plans
@pytest.mark.parametrize("case", range(len(AGENT_SEARCHES)))
def test_an_agent_s_search_reads_the_agent_index_and_tests_inside_it(tmp_path: Path, case: int) -> None:
    conn = ladder(tmp_path, len(MIGRATIONS))
    f, scope = AGENT_SEARCHES[case]
    counts = [plan(conn, *build_count(f, NOW, scope=scope))]
    bounded = build_bounded_count(f, NOW, scope=scope)
    if bounded is not None:
        counts.append(plan(conn, *bounded))
    for lines in counts:
        reads = [ln for ln in lines if ln.startswith(("SEARCH", "SCAN")) and "capped" not in ln
                 and not ln.startswith("SCAN r")]
        # a covering read of the agent's range (one per agent of a team): no call row, no sort
        assert reads and all(ln.startswith(f"SEARCH calls USING COVERING INDEX {AGENT_INDEX} (agent=")
                             for ln in reads), lines
        assert not [ln for ln in lines if "TEMP B-TREE" in ln], lines
    page = plan(conn, *build_search(f, NOW, scope=scope))
    assert not [ln for ln in page if ln.startswith("SCAN calls")], page
    assert any(f"USING INDEX {AGENT_INDEX} (agent=" in ln or f"COVERING INDEX {AGENT_INDEX} (agent=" in ln
               for ln in page), page
    conn.close()


def test_a_team_s_bounded_count_reads_each_agent_s_newest_entries() -> None:
    team = Scope.of_agents({"b", "a"})
    sql, params = build_bounded_count(CallFilters(status="failed"), NOW, scope=team, read_cap=500) or ("", [])
    # one row per agent, each its newest 250 entries: what the team's page has just read
    assert sql.count(" UNION ALL ") == 1 and sql.count("ORDER BY calls.started_at DESC") == 2
    assert params == ["failed", "a", 250, "failed", "b", 250]
    one, one_params = build_bounded_count(CallFilters(status="failed"), NOW, scope=Scope.of_agents({"a"})) \
        or ("", [])
    assert "UNION" not in one and "ORDER BY calls.started_at DESC" in one
    assert one_params[:2] == ["failed", "a"]
    # a team past MAX_MERGED_AGENTS: agent after agent in the index's order (a newest-first merge
    # would read every entry first)
    crowd = Scope.of_agents({f"a{k:03d}" for k in range(MAX_MERGED_AGENTS + 1)})
    sql, params = build_bounded_count(CallFilters(status="failed"), NOW, scope=crowd, read_cap=500) \
        or ("", [])
    assert "UNION" not in sql and "ORDER BY" not in sql and "agent IN (" in sql and params[-1] == 500
    # an agent given inside a team: that agent's range, still limited to the team
    sql, params = build_bounded_count(CallFilters(agent="c", consent="refused"), NOW, scope=team) or ("", [])
    assert "calls.agent = ?" in sql and "calls.agent IN (?, ?)" in sql and params[:2] == ["refused", "c"]
    # a reviewer's scope and a tag inside a team are counted by build_count, as before
    assert build_bounded_count(CallFilters(status="failed"), NOW, scope=Scope.of_reviewer("r")) is None
    assert build_bounded_count(CallFilters(tag="vip", status="failed"), NOW, scope=team) is None
    assert build_bounded_count(CallFilters(tag="vip", status="failed", agent="a"), NOW) is not None


@pytest.mark.sqlite_only  # runs the Alembic revision on a SQLite database of its own
@pytest.mark.parametrize("fresh", [False, True])
def test_0018_merges_the_agent_indexes_only_when_needed(tmp_path: Path, fresh: bool) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        metadata.create_all(connection)
        if not fresh:  # the 0017 layout: four agent-led indexes
            connection.execute(text(f"DROP INDEX {AGENT_INDEX}"))
            connection.execute(text(f"CREATE INDEX {AGENT_INDEX} ON calls(agent, started_at DESC, call_id)"))
            for name in RETIRED:
                lead, carried = FILTER_COLUMNS[name]
                connection.execute(text(f"CREATE INDEX {name} ON calls({', '.join(lead)}, started_at DESC, "
                                        f"{', '.join(('call_id', *carried))})"))
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0017')"))
        connection.commit()
        sql = "SELECT name, sql FROM sqlite_schema WHERE type = 'index'"
        made_before = dict(connection.execute(text(sql)).fetchall())
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        found = {i["name"]: i["column_names"] for i in inspect(connection).get_indexes("calls")}
        made_after = dict(connection.execute(text(sql)).fetchall())
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == pg_schema.HEAD >= "0018"
    assert found[AGENT_INDEX] == AGENT_INDEX_COLUMNS and not set(RETIRED) & set(found)
    changed = {name for name in made_before | made_after if made_after.get(name) != made_before.get(name)}
    assert changed == (set() if fresh else {AGENT_INDEX, *RETIRED})
