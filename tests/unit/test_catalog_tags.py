"""Tags in their own indexed table (call_tags), kept in step with calls.tags by every writer, and
search results equal to the former semantics (json_each over calls.tags, OFFSET-free order)."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.queries import _number_clause, preset_range
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations

NOW = 1_780_000_000.0
DAY = 86400.0


def _tags(conn: sqlite3.Connection, call_id: str) -> list[tuple[str, float | None]]:
    return sorted(tuple(r) for r in conn.execute("SELECT tag, started_at FROM call_tags WHERE call_id = ?",
                                                 (call_id,)))


def test_every_write_of_a_call_keeps_its_tags_in_step(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "cat.db", clock=lambda: NOW)
    conn = catalog._conn()
    catalog.upsert_call({"call_id": "c1", "tags": ["vip", "complaint", "vip"], "started_at": NOW})
    assert _tags(conn, "c1") == [("complaint", NOW), ("vip", NOW)]
    catalog.upsert_call({"call_id": "c1", "tags": ["sales"], "started_at": NOW})  # upsert replaces
    assert _tags(conn, "c1") == [("sales", NOW)]
    catalog.upsert_call({"call_id": "c1", "agent": "bob", "started_at": NOW})  # tags untouched
    assert _tags(conn, "c1") == [("sales", NOW)]
    catalog.upsert_recording({"recording_id": "r2", "call_id": "c2"})  # stand-in row: no tags
    assert _tags(conn, "c2") == []
    catalog.upsert_call({"call_id": "c2", "tags": ["late"], "started_at": NOW - 5})
    assert _tags(conn, "c2") == [("late", NOW - 5)]
    # lifecycle jobs and hand-written SQL go through the same triggers
    conn.execute("UPDATE calls SET started_at = ? WHERE call_id = 'c2'", (NOW - 9,))
    assert _tags(conn, "c2") == [("late", NOW - 9)]
    conn.execute("UPDATE calls SET tags = '[]' WHERE call_id = 'c1'")
    assert _tags(conn, "c1") == []
    conn.execute("UPDATE calls SET tags = 'not json' WHERE call_id = 'c2'")  # broken cell: no tags, no error
    assert _tags(conn, "c2") == []
    conn.execute("UPDATE calls SET tags = '[\"x\"]' WHERE call_id = 'c2'")
    conn.execute("DELETE FROM recordings WHERE call_id = 'c2'")
    conn.execute("DELETE FROM calls WHERE call_id = 'c2'")  # erasure, tombstones
    assert conn.execute("SELECT COUNT(*) FROM call_tags").fetchone()[0] == 0


def test_the_migration_fills_call_tags_from_the_json_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    rows = [("a", '["vip","complaint"]', NOW), ("b", "[]", NOW - 1), ("c", "broken", NOW - 2),
            ("d", '["vip"]', None)]
    conn.executemany("INSERT INTO calls (call_id, tags, started_at) VALUES (?, ?, ?)", rows)
    assert apply_migrations(conn) >= 5
    got = conn.execute("SELECT call_id, tag, started_at FROM call_tags ORDER BY call_id, tag").fetchall()
    assert got == [("a", "complaint", NOW), ("a", "vip", NOW), ("d", "vip", None)]
    conn.close()


def _old_search(conn: sqlite3.Connection, f: CallFilters, now: float) -> list[str]:
    """The search as it was before migration 5 (json_each scan, started_at DESC, call_id)."""
    where: list[str] = []
    params: list[Any] = []
    start, end = (preset_range(f.preset, now) if f.preset else (f.start, f.end))
    if start is not None:
        where.append("started_at >= ?")
        params.append(start)
    if end is not None:
        where.append("started_at < ?")
        params.append(end)
    if f.status:
        where.append("status = ?")
        params.append(f.status)
    if f.caller:
        where.append(_number_clause("caller_num", f.caller, params))
    for column, value in (("call_id", f.call_id), ("agent", f.agent), ("queue", f.queue),
                          ("consent_decision", f.consent)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if f.tag:
        where.append("EXISTS (SELECT 1 FROM json_each(calls.tags) WHERE json_each.value = ?)")
        params.append(f.tag)
    sql = "SELECT call_id FROM calls" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY started_at DESC, call_id LIMIT ?"
    return [r[0] for r in conn.execute(sql, [*params, f.limit])]


def fill(catalog: Catalog, n: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    for i in range(n):
        catalog.upsert_call({
            "call_id": f"n1_{i}.0", "agent": f"a{rnd.randrange(5)}", "queue": f"q{rnd.randrange(3)}",
            "status": rnd.choice(["answered", "no_answer", "busy", "failed"]),
            "consent_decision": rnd.choice(["granted", "refused", "not_required"]),
            "tags": rnd.sample(["vip", "complaint", "sales", "x"], rnd.randrange(3)),
            "caller_num": f"138{rnd.randrange(10**8):08d}",
            # a few exact ties, to check the call id tie-break
            "started_at": NOW - rnd.choice([rnd.uniform(0, 60 * DAY), 3 * DAY]),
        })
    catalog.upsert_recording({"recording_id": "r-x", "call_id": "standin"})  # untimed stand-in row


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    catalog = Catalog(tmp_path_factory.mktemp("tags") / "cat.db", clock=lambda: NOW)
    fill(catalog, 400)
    return catalog


CASES = [
    CallFilters(limit=500), CallFilters(preset="7d"), CallFilters(preset="30d", limit=500),
    CallFilters(status="answered", limit=500), CallFilters(consent="refused", preset="30d"),
    CallFilters(agent="a1", limit=500),
    CallFilters(queue="q2", status="busy", consent="granted", preset="30d"),
    CallFilters(tag="vip", limit=500), CallFilters(tag="complaint", preset="7d"),
    CallFilters(tag="nobody"),
    CallFilters(tag="vip", agent="a2", limit=500), CallFilters(tag="sales", queue="q0", status="answered"),
    CallFilters(call_id="n1_17.0"), CallFilters(start=NOW - 3 * DAY, end=NOW - 3 * DAY + 1, limit=500),
]


@pytest.mark.sqlite_only  # the reference is the former SQLite query (json_each, SQLite's NULL order)
@pytest.mark.parametrize("f", CASES, ids=[str(i) for i in range(len(CASES))])
def test_results_equal_the_former_semantics(filled: Catalog, f: CallFilters) -> None:
    new = [r["call_id"] for r in filled.search(f, now=NOW)]
    assert new == _old_search(filled._conn(), f, NOW)
    assert new or f.tag == "nobody"  # the cases do find calls
    if f.tag and f.tag != "nobody":
        assert all(f.tag in json.loads(json.dumps(r["tags"])) for r in filled.search(f, now=NOW))
