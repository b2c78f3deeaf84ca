"""Schema 19 (``schema_tag_writes``): a new call's tags are copied into ``call_tags`` by the
catalog's own write of the row, not by an insert trigger, and a new recording row is a plain
``INSERT``; on SQLite neither statement then journals the pages it changes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pbx_recorder.catalog import Catalog, call_tags
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations
from pbx_recorder.catalog.schema_tag_writes import INSERT_TRIGGER
from pbx_recorder.errors import CatalogError
from pbx_recorder.recording.call_seal import CallSealer
from tests.unit.test_catalog_bulk import KEY, NOW, _call, _hooks

pytestmark = pytest.mark.sqlite_only  # SQLite's schema and statements (PostgreSQL keeps its trigger)

INSERT = "INSERT INTO calls (call_id, started_at, status, agent, tags) VALUES (?, ?, ?, ?, ?)"


def _tags(conn: sqlite3.Connection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for call_id, tag in conn.execute("SELECT call_id, tag FROM call_tags ORDER BY call_id, tag"):
        out.setdefault(call_id, []).append(tag)
    return out


def _expected(conn: sqlite3.Connection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for call_id, cell in conn.execute("SELECT call_id, tags FROM calls ORDER BY call_id"):
        tags = sorted({t for t in json.loads(cell) if t is not None})
        if tags:
            out[call_id] = tags
    return out


def _triggers(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                       "AND tbl_name = 'calls'")}


def test_the_insert_trigger_is_gone_and_the_update_and_delete_triggers_stay(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat.db")
    try:
        assert _triggers(cat._conn()) == {"call_tags_update", "call_tags_delete"}
        assert INSERT_TRIGGER not in _triggers(cat._conn())
    finally:
        cat.close()


def test_every_write_path_copies_a_new_calls_tags(tmp_path: Path) -> None:
    plain = Catalog(tmp_path / "plain.db", clock=lambda: NOW)  # no sealer: the upsert path
    sealed = Catalog(tmp_path / "sealed.db", clock=lambda: NOW, sealer=CallSealer(KEY, clock=lambda: NOW))
    bulk = Catalog(tmp_path / "bulk.db", clock=lambda: NOW, sealer=CallSealer(KEY, clock=lambda: NOW))
    try:
        calls = [{"call_id": f"c{i}", "started_at": NOW + i, "agent": "a1", "status": "answered",
                  "tags": [["vip"], [], ["vip", "complaint"], ["x", None, "x"]][i % 4]} for i in range(8)]
        for cat in (plain, sealed):
            for call in calls:
                cat.upsert_call(call)
        assert bulk.write_calls((_call(i) for i in range(6)), after_store=_hooks()) == 6  # type: ignore[arg-type]
        for cat in (plain, sealed, bulk):
            conn = cat._conn()
            assert _tags(conn) == _expected(conn) and _tags(conn), cat.path
        assert _tags(plain._conn())["c2"] == ["complaint", "vip"] and _tags(plain._conn())["c3"] == ["x"]
        # a later change of the tags or the call's filters: the update trigger, as before
        sealed.upsert_call({"call_id": "c1", "tags": ["late"]})
        sealed.upsert_call({"call_id": "c0", "tags": []})
        conn = sealed._conn()
        assert _tags(conn) == _expected(conn) and _tags(conn)["c1"] == ["late"] and "c0" not in _tags(conn)
        agents = {r[0] for r in conn.execute("SELECT agent FROM call_tags WHERE call_id = 'c2'")}
        sealed.upsert_call({"call_id": "c2", "agent": "a7"})
        assert agents == {"a1"} and {r[0] for r in conn.execute(
            "SELECT agent FROM call_tags WHERE call_id = 'c2'")} == {"a7"}
    finally:
        for cat in (plain, sealed, bulk):
            cat.close()


def test_a_catalog_at_18_keeps_its_tags_and_new_calls_get_theirs(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "cat.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:18], start=1):
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    assert INSERT_TRIGGER in _triggers(conn)
    conn.executemany(INSERT, [(f"old{i}", NOW - i, "answered", "a1", json.dumps(["vip"] if i % 2 else []))
                              for i in range(10)])
    conn.commit()
    before = _tags(conn)
    assert len(before) == 5 and apply_migrations(conn) == len(MIGRATIONS) >= 19
    assert _tags(conn) == before and INSERT_TRIGGER not in _triggers(conn)
    conn.close()
    cat = Catalog(tmp_path / "cat.db", clock=lambda: NOW)
    try:
        cat.upsert_call({"call_id": "new1", "started_at": NOW, "tags": ["escalated"]})
        assert _tags(cat._conn()) == {**before, "new1": ["escalated"]}
    finally:
        cat.close()


def test_raw_rows_get_their_tags_from_copy_all(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat.db")
    try:
        conn = cat._conn()
        conn.executemany(INSERT, [("r1", NOW, "answered", "a1", '["vip"]'),
                                  ("r2", NOW, "failed", "a1", "not json"),
                                  ("r3", NOW, "answered", "a2", '["vip", "x"]')])
        assert _tags(conn) == {}  # raw SQL bypasses the catalog's writes (the module says so)
        assert call_tags.copy_all(conn) == 3 and call_tags.copy_all(conn) == 0  # idempotent
        assert _tags(conn) == {"r1": ["vip"], "r3": ["vip", "x"]}
    finally:
        cat.close()


def _bulk_statements(tmp_path: Path, calls: list[tuple[dict[str, object], list[object]]]
                     ) -> tuple[list[str], dict[str, list[str]]]:
    """The statements the writer connection ran for a bulk batch of ``calls``, and the tags stored."""
    cat = Catalog(tmp_path / "cat.db", clock=lambda: NOW, sealer=CallSealer(KEY, clock=lambda: NOW))
    seen: list[str] = []
    try:
        writer = cat.shared_writer()
        assert writer is not None
        writer.set_trace_callback(seen.append)
        assert cat.write_calls(iter(calls), after_store=_hooks()) == len(calls)  # type: ignore[arg-type]
        return seen, _tags(cat._conn())
    finally:
        cat.close()


def test_a_new_call_and_recording_are_plain_inserts(tmp_path: Path) -> None:
    # what keeps SQLite from journaling every page these statements change: no trigger fires on
    # the call row's INSERT and the recording row is not an upsert (schema_tag_writes)
    seen, _ = _bulk_statements(tmp_path, [_call(i) for i in range(4)])  # type: ignore[misc]
    inserts = [s for s in seen if s.startswith(("INSERT INTO calls ", "INSERT INTO recordings "))]
    assert len(inserts) == 8 and not any("ON CONFLICT" in s for s in inserts)


def test_a_new_calls_tags_are_written_one_row_a_statement(tmp_path: Path) -> None:
    # an INSERT ... SELECT joined with json_each may write several rows: SQLite copied every page
    # it changed to a statement journal, which in a 1,000-call batch outgrew memory and went to a
    # temporary file (8.5 KB a call); each tag is now its own one-row insert by the call's key
    calls = [_call(i) for i in range(4)]
    calls[1][0]["tags"] = ["vip", "callback", "vip"]
    seen, tags = _bulk_statements(tmp_path, calls)  # type: ignore[arg-type]
    writes = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    tag_inserts = [s for s in writes if "INTO call_tags" in s]
    assert len(tag_inserts) == 4  # n1_1.0: callback, vip (twice, ignored); n1_3.0: vip
    assert not [s for s in writes if "json_each" in s]
    assert all(s.rstrip().endswith(f"c.call_id = '{c}'") for s, c in
               zip(tag_inserts, ["n1_1.0"] * 3 + ["n1_3.0"], strict=True))
    assert tags == {"n1_1.0": ["callback", "vip"], "n1_3.0": ["vip"]}


def test_copy_calls_copies_what_copy_all_copies(tmp_path: Path) -> None:
    # the per-call copy reads the stored cell as the triggers and copy_all read it: a null element
    # skipped, a number or a nested list kept as SQLite's json_each gives it (a scalar cell or an
    # object's values too), a cell that is not JSON tags nothing, a repeated tag once
    cells = ['["vip", null, "x"]', '[7, 2.5, true]', '[["a", 1], {"k": "v"}]', "not json", '"vip"',
             '["vip", "vip"]', "[]", '{"a": 1}']
    rows = [(f"r{i}", NOW + i, "answered", "a1", cell) for i, cell in enumerate(cells)]
    out = []
    for name, copy in (("each", lambda c: call_tags.copy_calls(c, [r[0] for r in rows])),
                       ("all", call_tags.copy_all)):
        cat = Catalog(tmp_path / f"{name}.db")
        try:
            conn = cat._conn()
            conn.executemany(INSERT, rows)
            copy(conn)
            out.append(conn.execute("SELECT call_id, tag, typeof(tag), started_at, agent, status "
                                    "FROM call_tags ORDER BY call_id, tag").fetchall())
        finally:
            cat.close()
    each, every = ([tuple(r) for r in rows] for rows in out)
    assert each == every and len(each) == 10, each


def test_a_retried_batch_updates_its_recordings(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat.db", clock=lambda: NOW, sealer=CallSealer(KEY, clock=lambda: NOW))
    try:
        assert cat.write_calls((_call(i) for i in range(3)), after_store=_hooks()) == 3  # type: ignore[arg-type]
        rows = cat._conn().execute("SELECT * FROM recordings ORDER BY recording_id").fetchall()
        seen: list[str] = []
        writer = cat.shared_writer()
        assert writer is not None
        writer.set_trace_callback(seen.append)
        assert cat.write_calls((_call(i) for i in range(3)), after_store=_hooks()) == 3  # type: ignore[arg-type]
        # each plain INSERT met the row, then the upsert wrote it
        assert sum(s.startswith("INSERT INTO recordings ") and "ON CONFLICT" in s for s in seen) == 3
        again = cat._conn().execute("SELECT * FROM recordings ORDER BY recording_id").fetchall()
        assert [tuple(r) for r in again] == [tuple(r) for r in rows] and len(rows) == 3
    finally:
        cat.close()


def test_another_constraint_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat.db", clock=lambda: NOW)
    try:
        row = {"recording_id": "r-orphan", "call_id": "no-such-call", "tier": "hot", "storage_key": "k"}
        with pytest.raises(CatalogError, match="FOREIGN KEY"):
            cat._insert_new("recordings", "recording_id", row, {"state": "spooled", "created_at": NOW})
        assert cat._conn().execute("SELECT COUNT(*) FROM recordings").fetchone()[0] == 0
    finally:
        cat.close()


def test_a_call_row_written_over_its_stand_in_gets_its_tags(tmp_path: Path) -> None:
    # the pipeline may store a recording before the daemon writes its call: the stand-in row
    # (call id only) is then updated, and the update trigger copies the tags
    cat = Catalog(tmp_path / "cat.db", clock=lambda: NOW, sealer=CallSealer(KEY, clock=lambda: NOW))
    try:
        _call_row, [rec] = _call(1)
        cat.upsert_recording({**rec.row, "state": "stored"})
        assert cat._conn().execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 1  # the stand-in
        cat.upsert_call({"call_id": rec.row["call_id"], "started_at": NOW, "agent": "a3",
                         "tags": ["vip", "complaint"]})
        conn = cat._conn()
        assert _tags(conn) == {str(rec.row["call_id"]): ["complaint", "vip"]} == _expected(conn)
    finally:
        cat.close()
