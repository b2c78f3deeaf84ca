"""Schema 16 (``pbx_recorder.catalog.schema_filters``): each filter index carries the other filters'
columns (status, consent decision, queue) after ``started_at DESC, call_id``, so a combined filter is
tested inside one index range and its count reads the index alone (a covering-index read); the
searches give the same calls before and after the migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import CallFilters, Catalog, pg_schema
from pbx_recorder.catalog.queries import Count, build_bounded_count, build_count, build_search, per_agent
from pbx_recorder.catalog.schema import MIGRATIONS
from pbx_recorder.catalog.schema_agent import RETIRED
from pbx_recorder.catalog.schema_filters import CARRYING, FILTER_COLUMNS, filter_index_columns
from pbx_recorder.catalog.schema_model import metadata
from pbx_recorder.catalog.scopes import Scope
from tests.unit.catalog_plan_support import plan

NOW = 1_800_000_000.0
DAY = 86400.0
STATUSES = ("answered", "no_answer", "failed")
CONSENTS = ("granted", "refused", "not_required", "timeout")
QUEUES = ("sales", "support", "billing")
AGENTS = ("a1", "a2", "a3", "a4")

#: (filters, scope) pairs a console sends: combined filters, alone and inside an agent's scope
COMBINED = [
    (CallFilters(preset="30d", queue="sales", status="answered", consent="refused"), None),
    (CallFilters(queue="support", consent="timeout"), None),
    (CallFilters(status="failed", consent="granted"), None),
    (CallFilters(preset="7d", status="answered", queue="billing"), None),
    (CallFilters(status="answered", consent="refused", queue="sales"), Scope.of_agents({"a2"})),
    (CallFilters(preset="30d", consent="granted", queue="support"), Scope.of_agents({"a1", "a3"})),
    (CallFilters(agent="a4", queue="sales", status="no_answer"), None),
]

INSERT = ("INSERT INTO calls (call_id, started_at, status, consent_decision, queue, agent) "
          "VALUES (?,?,?,?,?,?)")


def calls(n: int = 600) -> list[tuple[object, ...]]:
    """``n`` calls over 60 days, every combination of the filter values represented."""
    return [(f"c{k:04d}", NOW - k * (60 * DAY / n), STATUSES[k % 3], CONSENTS[(k // 3) % 4],
             QUEUES[(k // 12) % 3], AGENTS[(k // 5) % 4]) for k in range(n)]


def ladder(tmp_path: Path, upto: int) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "cat.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:upto], start=1):
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    return conn


def results(conn: sqlite3.Connection) -> list[tuple[list[str], int]]:
    conn.row_factory = sqlite3.Row
    out = []
    for f, scope in COMBINED:
        page = [r["call_id"] for r in conn.execute(*build_search(f, NOW, scope=scope))]
        out.append((page, conn.execute(*build_count(f, NOW, scope=scope)).fetchone()[0]))
    conn.row_factory = None
    return out


def index_columns(conn: sqlite3.Connection, name: str) -> list[str]:
    return [r[2] for r in conn.execute(f"PRAGMA index_info({name})")]


@pytest.mark.sqlite_only  # SQLite's own migration ladder
def test_sqlite_migration_16_carries_the_filters_and_keeps_the_results(tmp_path: Path) -> None:
    conn = ladder(tmp_path, 15)
    conn.executemany(INSERT, calls())
    conn.commit()
    before = results(conn)
    assert index_columns(conn, "calls_queue_time") == ["queue", "started_at", "call_id"]
    for number, script in enumerate(MIGRATIONS[15:16], start=16):  # migration 16 alone
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    for name in FILTER_COLUMNS:
        assert index_columns(conn, name) == filter_index_columns(name), name
    assert results(conn) == before
    assert all(count > 0 for _page, count in before) and any(page for page, _count in before)
    stats = dict(conn.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'calls'").fetchall())
    assert stats["calls_queue_time"] == "10000000 500000 1 1 1 1"
    assert stats["calls_agent_consent_time"] == "10000000 20000 3000 1 1 1"
    assert stats["calls_status_time"] == "10000000 2500000 1 1"  # (not made again: carries nothing)
    conn.close()


@pytest.mark.sqlite_only  # reads SQLite's plans
@pytest.mark.parametrize("case", range(len(COMBINED)))
def test_a_combined_count_reads_one_covering_index(tmp_path: Path, case: int) -> None:
    conn = ladder(tmp_path, len(MIGRATIONS))
    f, scope = COMBINED[case]
    lines = [ln for ln in plan(conn, *build_count(f, NOW, scope=scope))
             if "subquery" not in ln and "capped" not in ln]
    # a team's scope (agent IN (...)) is one covering range per agent
    assert lines and all(ln.startswith("SEARCH calls USING COVERING INDEX calls_") for ln in lines), lines
    page = plan(conn, *build_search(f, NOW, scope=scope))
    assert not [ln for ln in page if ln.startswith("SCAN calls")], page
    if per_agent(f, scope) is None:  # (a team's page sorts its agents' merged short pages)
        assert not [ln for ln in page if "TEMP B-TREE" in ln], page


@pytest.mark.sqlite_only  # runs the Alembic revision on a SQLite database of its own
@pytest.mark.parametrize("fresh", [False, True])
def test_0016_makes_the_filter_indexes_again_only_when_needed(tmp_path: Path, fresh: bool) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        metadata.create_all(connection)
        if not fresh:  # the 0015 layout: the filter indexes without carried columns
            for name, (lead, _carried) in FILTER_COLUMNS.items():
                connection.execute(text(f"DROP INDEX IF EXISTS {name}"))  # (agent-led: none since 0018)
                connection.execute(text(f"CREATE INDEX {name} ON calls({', '.join(lead)}, "
                                        "started_at DESC, call_id)"))
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0015')"))
        connection.commit()
        sql = "SELECT name, sql FROM sqlite_schema WHERE type = 'index'"
        made_before = dict(connection.execute(text(sql)).fetchall())
        command.upgrade(pg_schema._config(connection), "0016")
        connection.commit()
        found = {i["name"]: i["column_names"] for i in inspect(connection).get_indexes("calls")}
        made_after = dict(connection.execute(text(sql)).fetchall())
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == "0016"
    for name in FILTER_COLUMNS:
        assert found[name] == filter_index_columns(name), name
    changed = {name for name in made_after if made_after[name] != made_before.get(name)}
    # a fresh catalog (today's model) has no agent-led filter index: 0016 makes them as it shipped
    assert changed == (set(RETIRED) if fresh else set(CARRYING))


def test_a_shown_count_of_a_combined_filter_reads_a_bounded_part_of_the_leading_index(tmp_path: Path) -> None:
    # a rare status inside a common consent (and inside a queue): with a read cap the count reads
    # that many entries of the leading index and says "at least" when the range goes on
    cat = Catalog(tmp_path / "cat.db", clock=lambda: NOW)
    try:
        for k in range(60):
            status = "failed" if k % 10 == 0 else "answered"
            cat.upsert_call({"call_id": f"q{k:02d}", "started_at": NOW - 1000 + k, "queue": "sales",
                             "agent": "a1", "consent_decision": "granted", "status": status})
        for f in (CallFilters(status="failed", consent="granted"),
                  CallFilters(queue="sales", status="failed"),
                  CallFilters(queue="sales", status="failed", consent="granted"),
                  CallFilters(agent="a1", status="failed", consent="granted")):  # (the agent's: schema 18)
            assert cat.search_page(f, now=NOW).count == Count(6, exact=True)
            bounded = cat.search_page(f, now=NOW, count_read_cap=25).count  # q35-q59: q40, q50
            assert bounded == Count(2, exact=False, complete=False) and str(bounded) == "at least 2"
            assert cat.search_page(f, now=NOW, count_read_cap=60 + 1).count == Count(6, exact=True)
            assert len(cat.search_page(f, now=NOW, count_read_cap=25).rows) == 6  # (the page: whole)
        # a status alone (its own index: nothing tested inside it): the exact count, the cap not used
        alone = cat.search_page(CallFilters(status="failed"), now=NOW, count_read_cap=25)
        assert alone.count == Count(6, exact=True)
        # a team's scope beside a status: its agents' ranges, bounded the same way
        team = Scope.of_agents({"a1", "a9"})
        assert cat.search_page(CallFilters(status="failed"), now=NOW, scope=team).count == Count(6, True)
        bounded = cat.search_page(CallFilters(status="failed"), now=NOW, scope=team, count_read_cap=25).count
        # each agent's newest 12 (25 // 2): a1's q48-q59 hold q50; a9's range is empty (read whole)
        assert bounded == Count(1, exact=False, complete=False) and str(bounded) == "at least 1"
    finally:
        cat.close()


@pytest.mark.sqlite_only  # reads SQLite's plans
def test_the_bounded_count_reads_the_leading_index_alone(tmp_path: Path) -> None:
    conn = ladder(tmp_path, len(MIGRATIONS))
    for f, index in ((CallFilters(status="failed", consent="granted"), "calls_consent_time"),
                     (CallFilters(queue="sales", consent="refused", preset="30d"), "calls_queue_time"),
                     (CallFilters(queue="sales", status="answered", consent="refused"), "calls_queue_time"),
                     (CallFilters(agent="a1", status="failed", consent="granted"), "calls_agent_time")):
        bounded = build_bounded_count(f, NOW)
        assert bounded is not None
        lines = [ln for ln in plan(conn, *bounded) if "SEARCH" in ln or "SCAN" in ln]
        assert lines[0].startswith(f"SEARCH calls USING COVERING INDEX {index} "), lines
        assert lines[1:] == ["SCAN r"], lines
    for f in (CallFilters(status="failed"), CallFilters(agent="a1"),
              CallFilters(queue="sales"), CallFilters(consent="refused", caller="5678")):
        assert build_bounded_count(f, NOW) is None
