"""The tags a call's recording rule set are recorded with the call and sealed (schema 20, seal v2):
the recorder writes them (``call_model.call_row``), a forged edit of them is a broken seal for
``verify``, and rows from before (no tags recorded) keep their v1 seals byte for byte and keep
four-eyes' old behaviour (the rule's tags as configured now).  Both engines, but for the two
migration tests, which build SQLite's ladder and run the Alembic revision on a SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from alembic import command
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, inspect, text

from pbx_recorder.catalog import pg_schema
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations
from pbx_recorder.catalog.schema_model import metadata
from pbx_recorder.core.call_model import Call, call_row
from pbx_recorder.core.rules import CallContext, evaluate, rules_from_dicts
from pbx_recorder.errors import IntegrityError
from pbx_recorder.recording.call_seal import SEALED_COLUMNS, check_calls, seal, sealed_bytes
from pbx_recorder.service.four_eyes import recorded_rule_tags, set_by_rule
from tests.unit.tamper_support import NOW, Deployment
from tests.unit.test_catalog_revision_0016 import ladder

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
#: a call row as the recorder wrote it before schema 20, and the seal the v1 code made of it
#: (computed with the call_seal.py of the commit before this change: Ed25519 is deterministic)
OLD_ROW = {"call_id": "n1_1700000000.1", "pbx_node": "n1", "linkedid": "1700000000.1",
           "uniqueids": '["1700000000.1"]', "direction": "inbound", "caller_num": "13900001234",
           "caller_name": "", "callee_num": "4008001234", "did": "4008001234", "queue": "sales",
           "agent": "alice", "region": "", "accountcode": "", "started_at": 1700000000.0,
           "answered_at": 1700000005.5, "ended_at": 1700000061.0, "duration": 61, "billsec": 55,
           "disposition": "ANSWERED", "status": "answered", "rule": "vip-line", "record_decision": "record",
           "consent_decision": "granted", "consent": '{"decision":"granted"}', "cdr": "{}"}
OLD_SEAL = "ULCLJ66WjZX6Dvkm2XmKftkuBKkO6PlepIyWCZiTdDeAVQyssHTmsjYQeOSfSYeqizjBUDKa54fK25y+h4eyDA=="

SEAL_BROKEN = "call metadata does not match its seal"


def _rules(*tags: str, name: str = "vip-line") -> tuple[object, ...]:
    return rules_from_dicts([{"name": name, "match": {"queue": "sales"},
                              "action": {"record": "yes", "tags": list(tags)}}])


def recorded_call(call_id: str, started: float, *tags: str, agent: str = "alice") -> dict[str, object]:
    """The row the recorder writes for a call the rule ``vip-line`` (setting ``tags``) decided."""
    decision = evaluate(_rules(*tags), CallContext(direction="inbound", queue="sales", agent=agent))
    assert decision.rule == "vip-line"
    call = Call(call_id=call_id, node="n1", linkedid=call_id, created_at=started, updated_at=started,
                queue="sales", agent=agent, caller_num="4915112345678", direction="inbound",
                decision=decision.to_dict(), result="record", consent_decision="granted")
    return call_row(call, started)


def test_the_recorder_writes_the_rule_s_tags_into_the_row() -> None:
    row = recorded_call("n1_1.1", NOW, "vip", "hotline")
    assert json.loads(str(row["rule_tags"])) == ["vip", "hotline"] == json.loads(str(row["tags"]))
    undecided = call_row(Call(call_id="n1_2.2", node="n1", linkedid="2.2", created_at=NOW, updated_at=NOW),
                         NOW)
    assert undecided["rule_tags"] == "[]"  # recorded: no rule set any


def test_a_row_from_before_keeps_its_v1_seal_byte_for_byte() -> None:
    assert set(OLD_ROW) == set(SEALED_COLUMNS)
    assert seal(OLD_ROW, KEY) == OLD_SEAL
    assert seal({**OLD_ROW, "rule_tags": ""}, KEY) == OLD_SEAL  # the column's default after migrating
    assert b"call seal v1" in sealed_bytes(OLD_ROW) and b"rule_tags" not in sealed_bytes(OLD_ROW)
    recorded = {**OLD_ROW, "rule_tags": '["vip"]'}
    assert b"call seal v2" in sealed_bytes(recorded) and seal(recorded, KEY) != OLD_SEAL
    # empty recorded tags are still recorded: v2, not the v1 form of a row from before
    assert sealed_bytes({**OLD_ROW, "rule_tags": "[]"}) != sealed_bytes(OLD_ROW)


@pytest.fixture()
def dep(tmp_path):  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path)
    d.catalog.upsert_call(recorded_call("n1_1.1", NOW - 60, "vip"))
    d.record("n1_1.1")
    d.call("n1_2.2", rule="vip-line", tags=["vip"])  # a row as written before schema 20: none recorded
    d.record("n1_2.2")
    yield d
    d.close()


def test_recorded_and_older_rows_both_verify(dep, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out
    stored = {c: dep.catalog.get_call(c) for c in ("n1_1.1", "n1_2.2")}
    assert stored["n1_1.1"]["rule_tags"] == ["vip"] and stored["n1_2.2"]["rule_tags"] == ""
    assert b"call seal v2" in sealed_bytes(stored["n1_1.1"])
    assert b"call seal v1" in sealed_bytes(stored["n1_2.2"])


@pytest.mark.parametrize("forged", ["'[]'", "''", "'[\"hotline\"]'", "'[\"vip\",\"x\"]'", "'not json'"])
def test_a_forged_edit_of_the_recorded_rule_tags_breaks_the_seal(dep, capsys, forged: str) -> None:  # type: ignore[no-untyped-def]
    dep.sql(f"UPDATE calls SET rule_tags = {forged} WHERE call_id = 'n1_1.1'")
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code, out
    assert f"call n1_1.1: {SEAL_BROKEN}" in out and "n1_2.2" not in out


def test_rule_tags_written_into_an_older_row_break_its_seal(dep, capsys) -> None:  # type: ignore[no-untyped-def]
    dep.sql("UPDATE calls SET rule_tags = '[]' WHERE call_id = 'n1_2.2'")  # "recorded: none"
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code and f"call n1_2.2: {SEAL_BROKEN}" in out


def test_four_eyes_reads_the_recorded_tags_and_falls_back_only_for_rows_from_before() -> None:
    changed = _rules()  # the rule as an admin edited it later: no tags
    assert set_by_rule({"rule": "vip-line", "rule_tags": ["vip"]}, changed) == {"vip"}
    assert set_by_rule({"rule": "vip-line", "rule_tags": '["vip"]'}, ()) == {"vip"}  # (as stored)
    assert set_by_rule({"rule": "vip-line", "rule_tags": []}, _rules("vip")) == frozenset()
    # a row from before records none: the rule as configured now, as before this change
    assert set_by_rule({"rule": "vip-line", "rule_tags": ""}, _rules("vip")) == {"vip"}
    assert set_by_rule({"rule": "vip-line"}, changed) == frozenset()
    assert set_by_rule({"rule": "vip-line", "rule_tags": "not json"}, _rules("vip")) == {"vip"}
    assert recorded_rule_tags({"rule_tags": '{"a": 1}'}) is None and recorded_rule_tags({}) is None
    rules = (SimpleNamespace(name="vip-line", action=SimpleNamespace(tags=("vip",))),)
    assert set_by_rule({"rule": "vip-line", "rule_tags": ""}, rules) == {"vip"}


@pytest.mark.sqlite_only  # SQLite's own migration ladder
def test_sqlite_migration_20_adds_the_column_and_older_seals_still_verify(tmp_path: Path) -> None:
    conn = ladder(tmp_path, 19)
    names = list(OLD_ROW)
    conn.execute(f"INSERT INTO calls ({', '.join(names)}, seal) VALUES ({', '.join('?' * len(names))}, ?)",
                 [*OLD_ROW.values(), OLD_SEAL])
    conn.commit()
    assert check_calls(conn, KEY.public_key()) == []
    assert apply_migrations(conn) == len(MIGRATIONS) >= 20
    assert conn.execute("SELECT rule_tags FROM calls").fetchall() == [("",)]
    assert check_calls(conn, KEY.public_key()) == []
    conn.execute("UPDATE calls SET rule_tags = '[\"vip\"]'")
    assert [c for c, _ in check_calls(conn, KEY.public_key())] == [OLD_ROW["call_id"]]
    conn.close()


@pytest.mark.sqlite_only  # runs the Alembic revision on a SQLite database of its own
@pytest.mark.parametrize("fresh", [False, True])
def test_0019_adds_the_column_only_when_missing(tmp_path: Path, fresh: bool) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        metadata.create_all(connection)
        if not fresh:  # the 0018 layout, one call row sealed by then
            connection.execute(text("ALTER TABLE calls DROP COLUMN rule_tags"))
            names = ["rowid", *OLD_ROW, "seal"]  # (rowid: the model's PostgreSQL identity, plain here)
            marks = ", ".join("?" * len(names))
            connection.exec_driver_sql(f"INSERT INTO calls ({', '.join(names)}) VALUES ({marks})",
                                       (1, *OLD_ROW.values(), OLD_SEAL))
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0018')"))
        connection.commit()
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        columns = {c["name"]: c for c in inspect(connection).get_columns("calls")}
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert version == pg_schema.HEAD >= "0019"
    assert "rule_tags" in columns and not columns["rule_tags"]["nullable"]
    conn = sqlite3.connect(tmp_path / "c.db")
    assert check_calls(conn, KEY.public_key()) == []  # the older row's v1 seal still verifies
    assert conn.execute("SELECT rule_tags FROM calls").fetchall() == ([] if fresh else [("",)])
    conn.close()
