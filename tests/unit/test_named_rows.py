"""``call_numbers`` holds the numbers a call names besides its own caller and callee (schema 13,
pbx_recorder.catalog.named_rows): no index row repeats the row's own two, a number is found by
erasure's lookup whichever of the three indexes holds it, a caller the row had before keeps an
index row, and migration 13 deletes the rows an older catalog kept for a call's own numbers."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from pbx_recorder.catalog import Catalog, pg_schema
from pbx_recorder.catalog.named_rows_check import orphan_notes, orphans
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations
from pbx_recorder.catalog.schema_model import metadata
from pbx_recorder.lifecycle.number_lookup import call_ids_for_number
from pbx_recorder.recording.call_seal import CallSealer, check_calls
from tests.unit.test_catalog_bulk import KEY as SEAL_KEY

MASTER, HASH_KEY = os.urandom(32), os.urandom(32)
NOW = 1_780_000_000.0
CALLER, CALLEE, TRANSFER, LATER = "13900000001", "4008001234", "13700000002", "13600000003"


def _catalog(path: Path) -> Catalog:
    return Catalog(path, clock=lambda: NOW,
                   numbers=NumberProtection(NumberCipher(lambda _key_id: MASTER, "m1"), BlindIndex(HASH_KEY)))


def _call(call_id: str, caller: str, **extra: Any) -> dict[str, Any]:
    return {"call_id": call_id, "caller_num": caller, "callee_num": CALLEE, "started_at": NOW,
            "status": "answered", **extra}


def _rows(catalog: Catalog, call_id: str) -> set[str]:
    cur = catalog._conn().execute("SELECT bi FROM call_numbers WHERE call_id = ?", (call_id,))
    return {r[0] for r in cur}


def _found(catalog: Catalog, number: str) -> list[str]:
    return call_ids_for_number(catalog._conn(), HASH_KEY, number, named=True)


def test_a_calls_own_numbers_get_no_index_row_and_are_still_found(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "c.db")
    cdr = {"src": CALLER, "dst": CALLEE, "lastdata": f"PJSIP/{TRANSFER}"}
    catalog.upsert_call(_call("c1", CALLER, cdr=cdr))
    index = BlindIndex(HASH_KEY)
    assert _rows(catalog, "c1") == {index.full(TRANSFER)}  # the transfer target only
    for number in (CALLER, CALLEE, TRANSFER):
        assert _found(catalog, number) == ["c1"], number


def test_a_caller_the_row_had_before_keeps_an_index_row(tmp_path: Path) -> None:
    """A later write of the row with another caller (a late CDR): the first caller is still found
    (erasure of that number must reach the call), through an index row it gets now."""
    catalog = _catalog(tmp_path / "c.db")
    catalog.upsert_call(_call("c1", CALLER))
    assert _rows(catalog, "c1") == set()
    catalog.upsert_call(_call("c1", LATER))
    index = BlindIndex(HASH_KEY)
    assert _rows(catalog, "c1") == {index.full(CALLER)}
    assert _found(catalog, CALLER) == ["c1"] and _found(catalog, LATER) == ["c1"]


def test_a_number_that_becomes_the_callers_own_loses_its_index_row(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "c.db")
    catalog.upsert_call(_call("c1", CALLER, cdr={"lastdata": f"PJSIP/{TRANSFER}"}))
    catalog.upsert_call(_call("c1", TRANSFER, cdr={}))
    index = BlindIndex(HASH_KEY)
    assert _rows(catalog, "c1") == {index.full(CALLER)}  # the old caller; the new one is the row's
    assert _found(catalog, TRANSFER) == ["c1"] and _found(catalog, CALLER) == ["c1"]


def _schema_12(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:12], start=1):
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    return conn


def _old_rows(conn: Any) -> None:
    """Rows as schema 12 wrote them: an index row for every number, the call's own ones too."""
    calls = "INSERT INTO calls (rowid, call_id, caller_bi, callee_bi) VALUES "
    for statement in (calls + "(1, 'c1', 'bi-a', 'bi-b')", calls + "(2, 'c2', 'bi-c', '')",
                      "INSERT INTO call_numbers (bi, call_id) VALUES ('bi-a', 'c1'), ('bi-b', 'c1'), "
                      "('bi-t', 'c1'), ('bi-c', 'c2'), ('bi-a', 'c2'), ('bi-x', 'gone')"):
        conn.execute(text(statement) if not isinstance(conn, sqlite3.Connection) else statement)


KEPT = [("bi-a", "c2"), ("bi-t", "c1"), ("bi-x", "gone")]  # other numbers, and a row of no call


@pytest.mark.sqlite_only  # SQLite databases of its own
def test_sqlite_migration_13_deletes_the_rows_of_a_calls_own_numbers(tmp_path: Path) -> None:
    conn = _schema_12(tmp_path / "c.db")
    _old_rows(conn)
    conn.commit()
    assert apply_migrations(conn) == len(MIGRATIONS)  # 13 and the later ones
    assert sorted(conn.execute("SELECT bi, call_id FROM call_numbers")) == KEPT
    conn.close()


@pytest.mark.sqlite_only  # the PostgreSQL pass runs the revision on its own catalogs
def test_alembic_0013_runs_the_same_step(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        metadata.create_all(connection)
        _old_rows(connection)
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0012')"))
        connection.commit()
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        rows = sorted(tuple(r) for r in connection.execute(text("SELECT bi, call_id FROM call_numbers")))
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert rows == KEPT and version == pg_schema.HEAD  # 0013 and the later ones


# -- verify: every number a call names can be found by (catalog.named_rows_check) ------------------

def _sealed_catalog(path: Path) -> tuple[Catalog, NumberProtection]:
    numbers = NumberProtection(NumberCipher(lambda _key_id: MASTER, "m1"), BlindIndex(HASH_KEY))
    return Catalog(path, clock=lambda: NOW, numbers=numbers,
                   sealer=CallSealer(SEAL_KEY, clock=lambda: NOW, reveal=numbers.open_call)), numbers


def test_verify_names_a_call_whose_index_row_was_removed(tmp_path: Path) -> None:
    catalog, numbers = _sealed_catalog(tmp_path / "c.db")
    catalog.upsert_call(_call("c1", CALLER, cdr={"lastdata": f"PJSIP/{TRANSFER}"}))
    catalog.upsert_call(_call("c2", CALLER))
    conn = catalog._conn()
    assert check_calls(conn, SEAL_KEY.public_key(), numbers=numbers) == []
    with catalog.transaction():  # a hostile edit: the call would no longer be found by TRANSFER
        conn.execute("DELETE FROM call_numbers WHERE call_id = 'c1'")
    found = check_calls(conn, SEAL_KEY.public_key(), numbers=numbers)
    assert [c for c, _ in found] == ["c1"] and "1 number(s) the call names have no index row" in found[0][1]
    assert TRANSFER not in found[0][1]  # a finding never carries the number


def test_verify_names_sealed_extra_numbers_that_do_not_open(tmp_path: Path) -> None:
    catalog, numbers = _sealed_catalog(tmp_path / "c.db")
    catalog.upsert_call(_call("c1", CALLER))
    catalog.upsert_call(_call("c1", LATER))  # CALLER is kept sealed in call_extra_numbers now
    conn = catalog._conn()
    assert check_calls(conn, SEAL_KEY.public_key(), numbers=numbers) == []
    token = conn.execute("SELECT numbers FROM call_extra_numbers WHERE call_id = 'c1'").fetchone()[0]
    catalog.upsert_call(_call("c2", CALLER))
    with catalog.transaction():  # moved onto another call: its associated data no longer matches
        conn.execute("INSERT INTO call_extra_numbers (call_id, numbers) VALUES ('c2', ?)", (token,))
    found = check_calls(conn, SEAL_KEY.public_key(), numbers=numbers)
    assert [c for c, _ in found] == ["c2"] and "do not open" in found[0][1]


def test_index_rows_of_calls_that_no_longer_exist_are_noted(tmp_path: Path) -> None:
    catalog, _ = _sealed_catalog(tmp_path / "c.db")
    catalog.upsert_call(_call("c1", CALLER, cdr={"lastdata": f"PJSIP/{TRANSFER}"}))
    conn = catalog._conn()
    assert orphans(conn) == (0, []) and orphan_notes(conn) == []
    with catalog.transaction():
        conn.execute("INSERT INTO call_numbers (bi, call_id) VALUES ('bi-x', 'gone-1')")
        conn.execute("INSERT INTO call_extra_numbers (call_id, numbers) VALUES ('gone-2', 'pn1:x')")
    assert orphans(conn) == (2, ["gone-1", "gone-2"])
    assert "2 call(s) that no longer exist" in orphan_notes(conn)[0]
