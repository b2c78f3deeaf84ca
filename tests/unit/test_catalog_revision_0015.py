"""Schema 15 (``pbx_recorder.catalog.schema_last4``): a full number is found through its last 4 digits'
index, which carries the full number's index as its last column; the four indexes of the numbers
are gone (two of them keyed by a hash in no order: a page written per call per index once the
catalog is large).  A number of fewer than 4 digits is found in the range of the calls without a
4-digit number on that side.  A caller
hold keeps its number's last-4 index beside the full one (``holds.value4``): filled by the
migration from the calls that have the number, written by ``hold add``, kept in step by
``keys rotate-index`` (``test_index_key_rotation.py``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import CallFilters, Catalog, pg_schema
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.catalog.queries import build_search
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations
from pbx_recorder.catalog.schema_last4 import DROPPED_INDEXES
from pbx_recorder.catalog.schema_model import metadata
from pbx_recorder.lifecycle import number_lookup
from pbx_recorder.lifecycle.holds import HoldManager
from tests.unit.catalog_plan_support import range_sorts

HASH_KEY = b"h" * 32
INDEX = BlindIndex(HASH_KEY)
NOW = 1_800_000_000.0
X = "4915112345678"
Y = "4917000005678"  # the same last 4 digits as X
SHORT = "201"  # an extension: no last-4 index
NEW_INDEXES = {"calls_caller_number", "calls_callee_number"}


def protection() -> NumberProtection:
    return NumberProtection(NumberCipher(lambda _key_id: b"m" * 32, "m1"), INDEX)


def indexes_of_calls(conn: sqlite3.Connection) -> set[str]:
    sql = "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'calls'"
    return {r[0] for r in conn.execute(sql)}


def indexed_row(call_id: str, caller: str, callee: str, started: float) -> tuple[object, ...]:
    ix = INDEX
    return (call_id, started, ix.full(caller), ix.last4(caller), ix.full(callee), ix.last4(callee))


ROW_SQL = ("INSERT INTO calls (call_id, started_at, caller_bi, caller_bi4, callee_bi, callee_bi4) "
           "VALUES (?,?,?,?,?,?)")


@pytest.mark.sqlite_only  # SQLite's own migration ladder
def test_sqlite_migration_15_on_a_catalog_of_schema_14(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "cat.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:14], start=1):
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    assert set(DROPPED_INDEXES) <= indexes_of_calls(conn)
    conn.executemany(ROW_SQL, [indexed_row("c1", X, "4000", NOW - 30), indexed_row("c2", Y, "4000", NOW - 20),
                               indexed_row("c3", SHORT, X, NOW - 10)])
    conn.executemany("INSERT INTO holds (hold_id, scope, value, created_at) VALUES (?,?,?,?)",
                     [("H1", "caller", INDEX.full(X), NOW),
                      ("H2", "caller", INDEX.full("4915550000000"), NOW), ("H3", "call", "c1", NOW)])
    conn.commit()
    assert apply_migrations(conn) == len(MIGRATIONS) >= 15
    assert not set(DROPPED_INDEXES) & indexes_of_calls(conn) and NEW_INDEXES <= indexes_of_calls(conn)
    columns = [r[2] for r in conn.execute("PRAGMA index_xinfo(calls_caller_number)") if r[5]]
    # (schema 25 adds the mark)
    assert columns == ["caller_bi4", "started_at", "call_id", "caller_bi", "fresh"]
    # a caller hold's last-4 index from a call that has the number (H2's number: no call; H3: a call hold)
    value4 = dict(conn.execute("SELECT hold_id, value4 FROM holds").fetchall())
    assert value4 == {"H1": INDEX.last4(X), "H2": "", "H3": ""}
    through_index = number_lookup.calls_with_number(conn, HASH_KEY, INDEX.full(X), subject4=INDEX.last4(X))
    without = number_lookup.calls_with_number(conn, HASH_KEY, INDEX.full(X))  # H2's case: every call read
    assert sorted(through_index) == sorted(without) == ["c1", "c3"]
    stats = dict(conn.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'calls'").fetchall())
    assert not set(DROPPED_INDEXES) & set(stats) and NEW_INDEXES <= set(stats)
    conn.close()


@pytest.mark.sqlite_only  # runs the Alembic revision on a SQLite database of its own
@pytest.mark.parametrize("fresh", [False, True])
def test_0015_replaces_the_indexes_and_fills_value4(tmp_path: Path, fresh: bool) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        metadata.create_all(connection)
        if not fresh:  # the 0014 layout
            for name in NEW_INDEXES:
                connection.execute(text(f"DROP INDEX {name}"))
            for side in ("caller", "callee"):
                for column in (f"{side}_bi", f"{side}_bi4"):
                    sql = f"CREATE INDEX calls_{column} ON calls({column}, started_at DESC, call_id)"
                    connection.execute(text(sql))
            connection.execute(text("ALTER TABLE holds DROP COLUMN value4"))
        row = dict(zip(("c", "s", "a", "a4", "b", "b4"), indexed_row("c1", "4000", X, NOW), strict=True))
        connection.execute(text("INSERT INTO calls (call_id, started_at, caller_bi, caller_bi4, callee_bi, "
                                "callee_bi4, rowid) VALUES (:c, :s, :a, :a4, :b, :b4, 1)"), row)
        connection.execute(text("INSERT INTO holds (hold_id, scope, value, created_at) "
                                "VALUES ('H1', 'caller', :v, 1)"), {"v": INDEX.full(X)})
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0014')"))
        connection.commit()
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        names = {i["name"] for i in inspect(connection).get_indexes("calls")}
        value4 = connection.execute(text("SELECT value4 FROM holds WHERE hold_id = 'H1'")).scalar()
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == pg_schema.HEAD >= "0015"
    assert NEW_INDEXES <= names and not set(DROPPED_INDEXES) & names
    assert value4 == INDEX.last4(X)  # found through the callee side


@pytest.fixture
def cat(tmp_path: Path):
    c = Catalog(tmp_path / "cat.db", clock=lambda: NOW, numbers=protection())
    for call_id, caller, callee, ago in (("c1", X, "4000", 50), ("c2", Y, "4000", 40), ("c3", X, SHORT, 30),
                                         ("c4", "", SHORT, 20), ("c5", SHORT, "4000", 10)):
        c.upsert_call(dict(call_id=call_id, caller_num=caller, callee_num=callee, started_at=NOW - ago,
                           status="answered"))
    yield c
    c.close()


def found(cat: Catalog, **kw: str) -> list[str]:
    return [r["call_id"] for r in cat.search(CallFilters(**kw))]


def test_a_full_number_is_not_its_last_4_digits(cat: Catalog) -> None:
    assert found(cat, caller=X) == ["c3", "c1"]  # not Y's call, though it has the same last 4
    assert found(cat, caller="+49 151 12345678") == ["c3", "c1"]
    assert found(cat, caller=Y) == ["c2"]
    assert found(cat, caller="5678") == ["c3", "c2", "c1"]  # by the last 4 digits: all three
    # 3 digits are refused as a search; "+201" is the full number: the calls without a last-4 index
    assert found(cat, callee="+" + SHORT) == ["c4", "c3"]
    assert found(cat, caller="+" + SHORT) == ["c5"]  # not c4, which has no caller number
    assert found(cat, caller="4915550000000") == []


def test_erasure_and_holds_find_a_full_number_only(cat: Catalog, tmp_path: Path) -> None:
    conn = cat._conn()
    assert number_lookup.call_ids_for_number(conn, HASH_KEY, X) == ["c1", "c3"]
    assert number_lookup.call_ids_for_number(conn, HASH_KEY, "5678") == []  # never by 4 digits
    assert number_lookup.call_ids_for_number(conn, HASH_KEY, SHORT) == ["c3", "c4", "c5"]
    held = HoldManager(conn, {}, hash_key=HASH_KEY).add("caller", X, "case 9", "alice", now=NOW)
    stored = conn.execute("SELECT value, value4 FROM holds WHERE hold_id = ?", (held["hold_id"],)).fetchone()
    assert tuple(stored) == (INDEX.full(X), INDEX.last4(X))


def plan(cat: Catalog, sql: str, params: list[object]) -> str:
    return " / ".join(str(r[3]) for r in cat._conn().execute("EXPLAIN QUERY PLAN " + sql, params))


@pytest.mark.sqlite_only  # SQLite query plans
@pytest.mark.parametrize(("kw", "index"), [({"caller": X}, "calls_caller_number"),
                                           ({"caller": "5678"}, "calls_caller_number"),
                                           ({"callee": X}, "calls_callee_number"),
                                           ({"callee": "+" + SHORT}, "calls_callee_number")])
def test_each_number_search_is_one_index_range_in_the_search_order(cat: Catalog, kw: dict[str, str],
                                                                  index: str) -> None:
    sql, params = build_search(CallFilters(**kw), NOW, blind=INDEX)
    text_ = plan(cat, sql, params)
    lines = [str(r[3]) for r in cat._conn().execute("EXPLAIN QUERY PLAN " + sql, params)]
    # (since schema 25 the settled and the fresh part, each a page sorted at most, never a range)
    assert f"INDEX {index} " in text_ + " " and range_sorts(lines) == [], text_
    assert not [ln for ln in lines if ln.startswith("SCAN calls")], text_
    # (since schema 25 the index holds the settled calls: the fresh ones are in calls_caller_fresh)
    where = "fresh = 0 AND caller_bi4 = ? AND caller_bi = ?"
    counted = plan(cat, f"SELECT COUNT(*) FROM calls WHERE {where}", [INDEX.last4(X), INDEX.full(X)])
    assert "COVERING INDEX calls_caller_number" in counted, counted  # the full number filtered in the index
