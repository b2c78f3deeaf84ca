"""Schema 25 (``catalog.schema_fresh_numbers``, ``catalog.fresh_numbers``): a new call's number
entries wait in small fresh indexes and are settled into the big ones in batches; every read of a
number (a page, its count, erasure's and a hold's lookups) finds a call in either part, in the
page's order, and one whose mark was edited is still found."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder.catalog import CallFilters, Catalog, engine, fresh_numbers
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection, call_ids_clause
from pbx_recorder.catalog.queries import Count, Cursor, build_count, build_search, encode_cursor
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations
from pbx_recorder.lifecycle import number_lookup
from pbx_recorder.recording.call_seal import CallSealer, check_calls
from tests.unit.catalog_plan_support import range_sorts

HASH_KEY = b"f" * 32
RING = {"m1": os.urandom(32)}
KEY = Ed25519PrivateKey.generate()
NOW = 1_800_000_000.0
X = "4915112345678"
Y = "4917000005678"  # X's last 4 digits


def protection() -> NumberProtection:
    return NumberProtection(NumberCipher(RING.__getitem__, "m1"), BlindIndex(HASH_KEY))


def catalog(path: Path) -> Catalog:
    numbers = protection()
    return Catalog(path, clock=lambda: NOW, numbers=numbers,
                   sealer=CallSealer(KEY, clock=lambda: NOW, reveal=numbers.open_call))


def call(i: int, caller: str = X, callee: str = "4000") -> dict[str, object]:
    return {"call_id": f"c{i:03d}", "caller_num": caller, "callee_num": callee, "started_at": NOW - 1000 + i,
            "status": "answered", "agent": "a1"}


def marks(cat: Catalog) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in cat._conn().execute("SELECT call_id, fresh FROM calls")}


def ids(rows: list[dict[str, object]]) -> list[str]:
    return [str(r["call_id"]) for r in rows]


@pytest.fixture
def cat(tmp_path: Path):  # type: ignore[no-untyped-def]
    c = catalog(tmp_path / "cat.db")
    yield c
    c.close()


def half_settled(cat: Catalog) -> None:
    """c000-c009 settled, then c010-c019 fresh (PostgreSQL's writers write every call settled: the
    mark is set there by hand, so both parts are read on both engines)."""
    for i in range(10):
        cat.upsert_call(call(i, X if i % 2 else Y))
    conn = cat._conn()
    with engine.write_transaction(conn):
        fresh_numbers.settle(conn)
    for i in range(10, 20):
        cat.upsert_call(call(i, X if i % 2 else Y))
    with engine.write_transaction(conn):
        conn.execute("UPDATE calls SET fresh = 1 WHERE call_id >= 'c010' AND fresh = 0")
    assert marks(cat) == {f"c{i:03d}": int(i >= 10) for i in range(20)}


def test_a_new_call_is_written_fresh_on_sqlite_and_settled_on_postgresql(cat: Catalog) -> None:
    cat.upsert_call(call(1))
    postgres = engine.is_postgres(cat._conn())
    assert marks(cat) == {"c001": 0 if postgres else 1}
    assert cat.fresh.enabled is not postgres


def test_pages_merge_both_parts_in_order_and_page_by_keyset(cat: Catalog) -> None:
    half_settled(cat)
    everyone = [f"c{i:03d}" for i in range(19, -1, -1)]
    assert ids(cat.search(CallFilters(caller="5678", limit=50))) == everyone
    assert ids(cat.search(CallFilters(caller=X, limit=50))) == [c for c in everyone if int(c[1:]) % 2]
    # page by page across the two parts: each call once, in order, newest and oldest first
    for order, expected in (("newest", everyone), ("oldest", everyone[::-1])):
        seen: list[str] = []
        f = CallFilters(caller="5678", limit=3, order=order)
        while True:
            page = cat.search(f)
            if not page:
                break
            seen += ids(page)
            last = page[-1]
            after = encode_cursor(Cursor(float(last["started_at"]), str(last["call_id"])))
            f = dataclasses.replace(f, after=after)
        assert seen == expected
    assert cat.search_page(CallFilters(caller="5678")).count == Count(20, exact=True)
    assert cat.search_page(CallFilters(caller=X)).count == Count(10, exact=True)


def test_erasure_and_hold_lookups_read_both_parts(cat: Catalog) -> None:
    half_settled(cat)
    conn = cat._conn()
    odd = [f"c{i:03d}" for i in range(1, 20, 2)]
    assert number_lookup.call_ids_for_number(conn, HASH_KEY, X) == odd
    index = BlindIndex(HASH_KEY)
    held = number_lookup.calls_with_number(conn, HASH_KEY, index.full(X), subject4=index.last4(X))
    assert sorted(held) == odd
    params: list[object] = []
    clause = call_ids_clause(index, "5678", params)
    assert len(conn.execute(f"SELECT call_id FROM calls WHERE {clause}", params).fetchall()) == 20


def test_a_call_whose_mark_was_edited_is_still_found(cat: Catalog) -> None:
    half_settled(cat)
    conn = cat._conn()
    with engine.write_transaction(conn):
        conn.execute("UPDATE calls SET fresh = 7 WHERE call_id = 'c003'")  # settled -> another value
        conn.execute("UPDATE calls SET fresh = 0 WHERE call_id = 'c013'")  # fresh -> settled
    assert "c003" in ids(cat.search(CallFilters(caller=X, limit=50)))
    assert "c013" in ids(cat.search(CallFilters(caller=X, limit=50)))
    assert {"c003", "c013"} <= set(number_lookup.call_ids_for_number(conn, HASH_KEY, X))
    assert cat.search_page(CallFilters(caller=X)).count == Count(10, exact=True)


def test_settling_keeps_every_seal_and_every_answer(cat: Catalog) -> None:
    half_settled(cat)
    before = ids(cat.search(CallFilters(caller="5678", limit=50)))
    conn = cat._conn()
    with engine.write_transaction(conn):
        moved = fresh_numbers.settle(conn)
    assert moved == 10
    assert set(marks(cat).values()) == {0} and fresh_numbers.fresh_count(conn) == 0
    assert ids(cat.search(CallFilters(caller="5678", limit=50))) == before
    assert check_calls(conn, KEY.public_key(), numbers=protection()) == []  # the mark is not sealed


def test_a_settle_rolled_back_leaves_the_calls_fresh_and_found(cat: Catalog) -> None:
    for i in range(5):
        cat.upsert_call(call(i))
    conn = cat._conn()
    with engine.write_transaction(conn):  # (PostgreSQL's writers write calls settled)
        conn.execute("UPDATE calls SET fresh = 1")

    class Stopped(Exception):
        pass

    with pytest.raises(Stopped), engine.write_transaction(conn):
        assert fresh_numbers.settle(conn) == 5
        raise Stopped  # the writer's transaction failed (or the host stopped) after the settle
    assert set(marks(cat).values()) == {1}
    assert len(cat.search(CallFilters(caller=X))) == 5


def test_the_writer_settles_every_so_many_calls(cat: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fresh_numbers, "CHECK_EVERY", 4)
    monkeypatch.setattr(fresh_numbers, "SETTLE_AT", 10)
    for i in range(23):
        cat.upsert_call(call(i, X, f"40{i:02d}"))
    conn = cat._conn()
    if engine.is_postgres(conn):
        assert cat.fresh.settles == 0 and set(marks(cat).values()) == {0}
    else:
        # checks after 4, 8, 12 (12 fresh: settled), 16, 20 (8 fresh), then 3 more
        assert cat.fresh.settles == 1 and cat.fresh.settled == 12
        assert sum(marks(cat).values()) == 11
    assert len(cat.search(CallFilters(caller=X, limit=50))) == 23
    assert [len(cat.search(CallFilters(callee=f"40{i:02d}"))) for i in range(23)] == [1] * 23


@pytest.mark.sqlite_only  # SQLite query plans
def test_each_part_is_one_ordered_range_of_its_own_index(cat: Catalog) -> None:
    half_settled(cat)
    conn = cat._conn()
    index = BlindIndex(HASH_KEY)
    cases = (({"caller": X}, "caller"), ({"caller": "5678"}, "caller"), ({"callee": "4000"}, "callee"))
    for kw, side in cases:
        for after in (None, encode_cursor(Cursor(NOW - 995, "c005"))):
            f = CallFilters(after=after, **kw)  # type: ignore[arg-type]
            sql, params = build_search(f, NOW, blind=index)
            lines = [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
            text = " / ".join(lines)
            assert lines[:2] == ["CO-ROUTINE k", "MERGE (UNION ALL)"], text
            assert f"COVERING INDEX calls_{side}_number (" in text, text  # (the arms read keys only)
            assert f"INDEX calls_{side}_number (" in text and f"INDEX calls_{side}_fresh (" in text, text
            # a sort only of an arm's own page (at most limit + 1 rows), never of a range
            assert range_sorts(lines) == [], text
            assert [ln for ln in lines if ln.startswith("SCAN calls")] == [], text
        sql, params = build_count(CallFilters(**kw), NOW, blind=index)  # type: ignore[arg-type]
        text = " / ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert f"COVERING INDEX calls_{side}_number" in text, text
        assert f"COVERING INDEX calls_{side}_fresh" in text, text
    params = []
    clause = call_ids_clause(index, X, params)
    sql = f"EXPLAIN QUERY PLAN SELECT call_id FROM calls WHERE {clause}"
    text = " / ".join(str(r[3]) for r in conn.execute(sql, params))
    for name in ("calls_caller_number", "calls_caller_fresh", "calls_callee_number", "calls_callee_fresh"):
        assert name in text, text
    assert "SCAN calls" not in text, text


@pytest.mark.sqlite_only  # SQLite's own migration ladder
def test_migration_25_settles_the_calls_there_and_keeps_them_found(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = catalog(path)
    for i in range(6):
        old.upsert_call(call(i))
    old.close()
    import sqlite3

    conn = sqlite3.connect(path)
    # back to schema 24: the column and the fresh indexes gone, the big indexes whole again
    for name in ("calls_caller_fresh", "calls_callee_fresh", "calls_caller_number", "calls_callee_number"):
        conn.execute(f"DROP INDEX {name}")
    conn.execute("ALTER TABLE calls DROP COLUMN fresh")
    for side in ("caller", "callee"):
        conn.execute(f"CREATE INDEX calls_{side}_number ON calls({side}_bi4, started_at DESC, call_id, "
                     f"{side}_bi)")
    conn.execute("DELETE FROM schema_version WHERE version = 25")
    conn.commit()
    assert apply_migrations(conn) == len(MIGRATIONS) == 25
    sql = "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'calls'"
    ddl = dict(conn.execute(sql))
    assert ddl["calls_caller_number"].endswith("WHERE fresh = 0")
    assert ddl["calls_caller_fresh"].endswith("WHERE fresh <> 0")
    assert {r[0] for r in conn.execute("SELECT fresh FROM calls")} == {0}
    conn.close()
    again = catalog(path)
    try:
        assert len(again.search(CallFilters(caller=X))) == 6
        again.upsert_call(call(7))
        assert marks(again)["c007"] == 1 and len(again.search(CallFilters(caller="5678"))) == 7
    finally:
        again.close()
