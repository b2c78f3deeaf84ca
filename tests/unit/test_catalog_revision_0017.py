"""Schema 17 (``pbx_recorder.catalog.schema_filters``): ``call_tags`` keeps copies of its call's
status, consent decision and queue (beside the agent), the tag triggers keep them in step, and the
tag indexes carry them: a tag beside those filters is one range of the tag's index, its count a
covering-index read.  The call row stays the rule: a stale copy can hide a call from a page, never
show one."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import CallFilters, Catalog, call_tags, pg_schema
from pbx_recorder.catalog.queries import Count, build_bounded_count, build_count, build_search
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations
from pbx_recorder.catalog.schema_filters import TAG_COPIES, TAG_INDEXES
from pbx_recorder.catalog.schema_model import metadata
from pbx_recorder.catalog.scopes import Scope
from tests.unit.catalog_plan_support import plan

NOW = 1_800_000_000.0
DAY = 86400.0
STATUSES = ("answered", "no_answer", "failed")
CONSENTS = ("granted", "refused", "not_required", "timeout")
QUEUES = ("sales", "support", "billing")
TAGS = ('["vip"]', '["vip", "complaint"]', "[]", '["complaint"]', "not json")

TAGGED = [
    (CallFilters(tag="vip", status="answered"), None),
    (CallFilters(tag="complaint", consent="refused", preset="30d"), None),
    (CallFilters(tag="vip", queue="sales", status="failed", consent="granted"), None),
    (CallFilters(tag="complaint", agent="a1"), None),
    (CallFilters(tag="vip", status="answered"), Scope.of_agents({"a2"})),
    (CallFilters(tag="complaint", queue="support"), Scope.of_agents({"a0", "a3"})),
]

INSERT = ("INSERT INTO calls (call_id, started_at, status, consent_decision, queue, agent, tags) "
          "VALUES (?,?,?,?,?,?,?)")


def calls(n: int = 400) -> list[tuple[object, ...]]:
    return [(f"c{k:04d}", NOW - k * (60 * DAY / n), STATUSES[k % 3], CONSENTS[(k // 3) % 4],
             QUEUES[(k // 12) % 3], f"a{(k // 5) % 4}", TAGS[(k // 7) % 5]) for k in range(n)]


def ladder(tmp_path: Path, upto: int) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "cat.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:upto], start=1):
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    return conn


def results(conn: sqlite3.Connection) -> list[tuple[list[str], int]]:
    out = []
    for f, scope in TAGGED:
        page = [r[0] for r in conn.execute(*build_search(f, NOW, scope=scope))]
        out.append((page, conn.execute(*build_count(f, NOW, scope=scope)).fetchone()[0]))
    return out


def reference(conn: sqlite3.Connection) -> list[tuple[list[str], int]]:
    """What ``results`` must give, worked out in Python from the call rows alone."""
    rows = conn.execute("SELECT call_id, started_at, status, consent_decision, queue, agent, tags "
                        "FROM calls ORDER BY started_at DESC, call_id").fetchall()
    out = []
    for f, scope in TAGGED:
        since = NOW - 30 * DAY if f.preset == "30d" else None
        hits = [r[0] for r in rows
                if f.tag in (json.loads(r[6]) if r[6].startswith("[") else [])
                and (since is None or r[1] >= since)
                and all(want in (None, "", got) for want, got in ((f.status, r[2]), (f.consent, r[3]),
                                                                 (f.queue, r[4]), (f.agent, r[5])))
                and (scope is None or r[5] in scope.agents)]
        out.append((hits[:50], len(hits)))
    return out


def copies(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute(f"SELECT call_id, tag, {', '.join(TAG_COPIES)} FROM call_tags "
                        "ORDER BY call_id, tag").fetchall()


def expected_copies(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    sql = (f"SELECT c.call_id, j.value, {', '.join(f'c.{col}' for col in TAG_COPIES)} FROM calls c, "
           "json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END) j ORDER BY 1, 2")
    return conn.execute(sql).fetchall()


@pytest.mark.sqlite_only  # SQLite's own migration ladder
def test_sqlite_migration_17_copies_the_filters_and_keeps_the_results(tmp_path: Path) -> None:
    conn = ladder(tmp_path, 16)
    conn.executemany(INSERT, calls())
    conn.commit()
    assert apply_migrations(conn) == len(MIGRATIONS) >= 17
    assert copies(conn) == expected_copies(conn) and len(copies(conn)) > 100
    for name, columns in TAG_INDEXES.items():
        assert [r[2] for r in conn.execute(f"PRAGMA index_info({name})")] == list(columns), name
    expected = reference(conn)
    assert results(conn) == expected
    assert all(count for _page, count in expected)
    # the triggers keep the copies in step: a status, consent, queue or agent change; a new call's
    # tags are copied by its writer (schema 19: the catalog's, here as it does it)
    conn.execute("UPDATE calls SET status = 'failed', queue = 'billing' WHERE call_id = 'c0007'")
    conn.execute("UPDATE calls SET consent_decision = 'refused', agent = 'a9' WHERE call_id = 'c0010'")
    conn.execute(INSERT, ("n1", NOW - 5, "answered", "timeout", "sales", "a2", '["vip"]'))
    call_tags.copy_new_call(conn, "n1", '["vip"]')
    conn.execute("DELETE FROM calls WHERE call_id = 'c0014'")
    assert copies(conn) == expected_copies(conn)
    stats = dict(conn.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'call_tags'").fetchall())
    assert stats["call_tags_tag"] == "1000000 50000 1 1 1 1 1"
    conn.close()


@pytest.mark.sqlite_only  # reads SQLite's plans
@pytest.mark.parametrize("case", range(len(TAGGED)))
def test_a_tag_beside_other_filters_is_one_range_of_the_tag_index(tmp_path: Path, case: int) -> None:
    conn = ladder(tmp_path, len(MIGRATIONS))
    f, scope = TAGGED[case]
    lines = [ln for ln in plan(conn, *build_count(f, NOW, scope=scope))
             if "subquery" not in ln and "capped" not in ln]
    assert lines and lines[0].startswith("SEARCH t USING "), lines
    assert "INDEX call_tags_" in lines[0], lines
    if scope is None:  # (a scoped count also reads the call row, by its key)
        assert lines == [lines[0]] and "COVERING INDEX" in lines[0], lines
    page = plan(conn, *build_search(f, NOW, scope=scope))
    assert not [ln for ln in page if ln.startswith("SCAN calls") or ln.startswith("SCAN t")], page


@pytest.mark.sqlite_only  # writes a stale copy into the SQLite file behind the catalog
def test_a_stale_copy_hides_a_call_from_a_page_but_never_shows_one(tmp_path: Path) -> None:
    conn = ladder(tmp_path, len(MIGRATIONS))
    conn.executemany(INSERT, [("x1", NOW - 10, "failed", "granted", "sales", "a1", '["vip"]'),
                              ("x2", NOW - 20, "answered", "granted", "sales", "a1", '["vip"]')])
    call_tags.copy_all(conn)  # raw rows (schema 19: the catalog's own writes copy a new call's tags)
    conn.execute("UPDATE call_tags SET status = 'answered' WHERE call_id = 'x1'")  # stale: the call failed
    found = [r[0] for r in conn.execute(*build_search(CallFilters(tag="vip", status="answered"), NOW))]
    assert found == ["x2"]


def test_the_catalog_finds_tagged_calls_by_their_filters_after_a_change(tmp_path: Path) -> None:
    # through the Catalog (SQLite here, PostgreSQL in its pass: the trigger of each engine)
    cat = Catalog(tmp_path / "cat.db", clock=lambda: NOW)
    try:
        for k in range(6):
            cat.upsert_call({"call_id": f"t{k}", "started_at": NOW - 100 + k, "status": "no_answer",
                             "queue": "sales", "agent": "a1", "tags": ["vip"] if k % 2 else ["complaint"]})
        for k in (1, 3):
            cat.upsert_call({"call_id": f"t{k}", "status": "answered", "consent_decision": "granted"})
        answered_vip = CallFilters(tag="vip", status="answered", consent="granted", queue="sales")
        page = cat.search_page(answered_vip, now=NOW)
        assert [r["call_id"] for r in page.rows] == ["t3", "t1"] and page.count is not None
        assert page.count.value == 2 and page.count.exact
        left = cat.search_page(CallFilters(tag="vip", status="no_answer"), now=NOW).count
        assert left is not None and left.value == 1  # t5
        scoped = cat.search_page(answered_vip, now=NOW, scope=Scope.of_agents({"a2"}))
        assert scoped.rows == [] and scoped.count is not None and scoped.count.value == 0
    finally:
        cat.close()


@pytest.mark.sqlite_only  # runs the Alembic revision on a SQLite database of its own
@pytest.mark.parametrize("fresh", [False, True])
def test_0017_adds_the_copies_and_makes_the_tag_indexes_again_only_when_needed(tmp_path: Path,
                                                                               fresh: bool) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        metadata.create_all(connection)
        if not fresh:  # the 0016 layout: call_tags with its agent only, the tag indexes without copies
            for name in TAG_INDEXES:
                connection.execute(text(f"DROP INDEX {name}"))
            connection.execute(text("CREATE INDEX call_tags_tag ON call_tags(tag, started_at DESC, call_id)"))
            connection.execute(text("CREATE INDEX call_tags_agent ON call_tags(agent, tag, started_at DESC, "
                                    "call_id)"))
            for column in TAG_COPIES[1:]:
                connection.execute(text(f"ALTER TABLE call_tags DROP COLUMN {column}"))
        connection.execute(text("INSERT INTO calls (call_id, agent, status, queue, consent_decision, "
                                "started_at, rowid) "
                                "VALUES ('c1', 'ann', 'answered', 'sales', 'granted', 5, 1)"))
        connection.execute(text("INSERT INTO call_tags (call_id, tag, started_at, agent) "
                                "VALUES ('c1', 'vip', 5, 'ann')"))
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0016')"))
        connection.commit()
        sql = "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'call_tags'"
        made_before = dict(connection.execute(text(sql)).fetchall())
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        found = {i["name"]: i["column_names"] for i in inspect(connection).get_indexes("call_tags")}
        made_after = dict(connection.execute(text(sql)).fetchall())
        kept = connection.execute(text(f"SELECT call_id, tag, {', '.join(TAG_COPIES)} FROM call_tags")).one()
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == pg_schema.HEAD >= "0017"
    assert tuple(kept) == ("c1", "vip", "ann", "answered", "granted", "sales")
    for name, columns in TAG_INDEXES.items():
        assert found[name] == list(columns), name
    changed = {name for name in made_after if made_after[name] != made_before.get(name)}
    assert changed == (set() if fresh else set(TAG_INDEXES))


def test_a_shown_count_of_a_tag_beside_filters_reads_a_bounded_part_of_the_tag_index(tmp_path: Path) -> None:
    # a rare combination inside a common tag: with a read cap the count reads that many of the
    # tag's entries (newest first) and says "at least" when the range goes on; without, it is exact
    cat = Catalog(tmp_path / "cat.db", clock=lambda: NOW)
    try:
        for k in range(60):
            consent = "timeout" if k % 10 == 0 else "granted"
            cat.upsert_call({"call_id": f"b{k:02d}", "started_at": NOW - 1000 + k, "tags": ["lead"],
                             "agent": "a1", "status": "answered", "consent_decision": consent})
        rare = CallFilters(tag="lead", status="answered", consent="timeout")
        exact = cat.search_page(rare, now=NOW).count
        assert exact == Count(6, exact=True)
        bounded = cat.search_page(rare, now=NOW, count_read_cap=25).count  # the newest 25 of 60: b35-b59
        assert bounded == Count(2, exact=False, complete=False) and str(bounded) == "at least 2"  # b40, b50
        whole = cat.search_page(rare, now=NOW, count_read_cap=61).count  # the whole range read
        assert whole == Count(6, exact=True)
        many = cat.search_page(CallFilters(tag="lead", status="answered"), now=NOW, count_cap=10,
                               count_read_cap=25).count  # more matches than the cap: as before
        assert many == Count(10, exact=False) and str(many) == "more than 10"
        # the page itself is never bounded, and a scope or a tag alone keeps the exact count
        assert len(cat.search_page(rare, now=NOW, count_read_cap=25).rows) == 6
        alone = cat.search_page(CallFilters(tag="lead"), now=NOW, count_read_cap=25).count
        assert alone == Count(60, exact=True)
        scoped = cat.search_page(rare, now=NOW, count_read_cap=25, scope=Scope.of_agents({"a1"})).count
        assert scoped == Count(6, exact=True)
    finally:
        cat.close()


@pytest.mark.sqlite_only  # reads SQLite's plans
def test_the_bounded_count_reads_the_tag_index_alone(tmp_path: Path) -> None:
    conn = ladder(tmp_path, len(MIGRATIONS))
    for f in (CallFilters(tag="vip", status="answered", consent="refused"),
              CallFilters(tag="vip", agent="a1", queue="sales", preset="30d")):
        bounded = build_bounded_count(f, NOW)
        assert bounded is not None
        lines = [ln for ln in plan(conn, *bounded) if "SEARCH" in ln or "SCAN" in ln]
        assert lines[0].startswith("SEARCH t USING COVERING INDEX call_tags_"), lines
        assert lines[1:] == ["SCAN r"], lines
    assert build_bounded_count(CallFilters(tag="vip"), NOW) is None  # (build_count's: a tag alone)
    assert build_bounded_count(CallFilters(tag="vip", status="answered", caller="5678"), NOW) is None
