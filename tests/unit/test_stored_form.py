"""The write path seals a call row from the values it binds (no read-back): proved here against
the database itself, and the seal is the one ``verify`` recomputes from the row it reads.

``catalog.stored_form.read_back`` must say exactly what a column reads back as, or None (then
the catalog reads the row back as before).  Each case writes a value through the real engine
(SQLite, or PostgreSQL under ``PBXR_TEST_CATALOG``) and compares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder.catalog import Catalog, stored_form
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.recording import ledger
from pbx_recorder.recording.call_seal import SEALED_COLUMNS, CallSealer, check_calls, sealed_bytes

NOW = 1_780_000_000.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
MASTER, HASH_KEY = os.urandom(32), os.urandom(32)

# (column, bound value, whether read_back may state it)
CASES: list[tuple[str, Any, bool]] = [
    ("agent", "a1", True), ("agent", "", True), ("agent", "ünïcode ☎", True),
    ("started_at", NOW + 0.123456789, True), ("started_at", 1_780_000_000, True),  # int into REAL
    ("started_at", None, True), ("duration", 12, True), ("duration", None, True),
    ("duration", 12.0, False),  # a float into INTEGER: SQLite keeps 12, PostgreSQL may round others
    ("duration", 12.5, False), ("duration", True, False),  # bool: stored 1, sealed as true
    ("started_at", "1780000000", False),  # text into REAL: converted by affinity
    ("agent", 7, False),  # a number into TEXT: stored as '7'
    ("agent", b"raw", False), ("duration", 2**63, False),
]


def _numbers() -> NumberProtection:
    return NumberProtection(NumberCipher(lambda _key_id: MASTER, "m1"), BlindIndex(HASH_KEY))


@pytest.mark.parametrize(("column", "value", "stated"), CASES)
def test_read_back_states_only_what_the_database_returns(tmp_path: Path, column: str, value: Any,
                                                         stated: bool) -> None:
    catalog = Catalog(tmp_path / "c.db", clock=lambda: NOW)
    conn = catalog._conn()
    form = stored_form.describe(conn, "calls", SEALED_COLUMNS)
    assert form is not None
    bound = {"call_id": "n1_1.0", column: value}
    predicted = stored_form.read_back(form, bound)
    assert (predicted is not None) is stated
    if predicted is None:
        return
    conn.execute(f"INSERT INTO calls (call_id, {column}) VALUES (?, ?)", ("n1_1.0", value))
    cur = conn.execute(f"SELECT {', '.join(SEALED_COLUMNS)} FROM calls WHERE call_id = ?", ("n1_1.0",))
    read = dict(zip(SEALED_COLUMNS, cur.fetchone(), strict=True))
    assert predicted == read
    assert sealed_bytes(predicted) == sealed_bytes(read)  # what verify recomputes


def test_a_default_that_is_not_a_literal_is_unknown() -> None:
    assert stored_form._literal("CURRENT_TIMESTAMP") is stored_form.UNKNOWN
    assert stored_form._literal("nextval('x'::regclass)") is stored_form.UNKNOWN
    assert stored_form._literal("'it''s'::text") == "it's"
    assert stored_form._literal("0") == 0 and stored_form._literal(None) is None


def _sealed_catalog(path: Path, numbers: NumberProtection | None) -> Catalog:
    reveal = numbers.open_call if numbers is not None else None
    return Catalog(path, clock=lambda: NOW, numbers=numbers,
                   sealer=CallSealer(KEY, clock=lambda: NOW, reveal=reveal))


def _statements(catalog: Catalog, fn: Any) -> list[str]:
    seen: list[str] = []
    conn = catalog._conn()
    if hasattr(conn, "set_trace_callback"):
        conn.set_trace_callback(seen.append)
    try:
        fn()
    finally:
        if hasattr(conn, "set_trace_callback"):
            conn.set_trace_callback(None)
    return seen


@pytest.mark.parametrize("protected", [False, True])
def test_seal_written_with_the_row_is_the_seal_of_the_row_read_back(tmp_path: Path, protected: bool) -> None:
    numbers = _numbers() if protected else None
    catalog = _sealed_catalog(tmp_path / "c.db", numbers)
    assert catalog._sealed_form is not None  # both engines' column types and defaults are known
    first = {"call_id": "n1_1.0", "caller_num": "+86 139 0000 1234", "callee_num": "4008001234",
             "agent": "a1", "started_at": NOW, "duration": 61, "uniqueids": ["1.0", "1.1"],
             "cdr": {"src": "13900001234", "dst": "4008001234", "billsec": 55},
             "consent": {"decision": "granted", "digits": "1"}, "tags": ["vip"]}
    sql = _statements(catalog, lambda: catalog.upsert_call(first))
    if sql:  # (SQLite traces its statements: the row is written once, its seal in the same INSERT)
        assert not any(s.startswith("UPDATE calls") for s in sql)
        assert sum(s.startswith("SELECT * FROM calls") for s in sql) == 1  # the collision check only
    # an update of the same call (the daemon writes a call several times): sealed from the values too
    catalog.upsert_call({"call_id": "n1_1.0", "started_at": NOW, "status": "answered", "ended_at": NOW + 61.5,
                         "caller_num": "13900001235"})
    # a value whose stored form is not certain: the row is read back and sealed as before
    catalog.upsert_call({"call_id": "n1_2.0", "started_at": NOW + 1, "duration": 12.0, "agent": "a2"})
    conn = catalog._conn()
    assert check_calls(conn, KEY.public_key(), numbers=numbers) == []
    sealed = [r[0] for r in
              conn.execute("SELECT recording_id FROM ledger WHERE event = 'call_sealed' ORDER BY seq")]
    assert sealed == ["call:n1_1.0", "call:n1_2.0"]  # one entry per row's first seal, as before
    assert ledger.verify_chain(conn) == []
    opened = catalog.get_call("n1_1.0")
    assert opened is not None and opened["caller_num"] == "13900001235" and opened["status"] == "answered"
    # and the seal still catches an edit of what it covers
    conn.execute("UPDATE calls SET agent = 'a9' WHERE call_id = 'n1_1.0'")
    assert [c for c, _ in check_calls(conn, KEY.public_key(), numbers=numbers)] == ["n1_1.0"]


def test_a_sealer_without_seal_of_still_reads_the_row_back(tmp_path: Path) -> None:
    calls: list[str] = []
    catalog = Catalog(tmp_path / "c.db", clock=lambda: NOW, sealer=lambda _conn, cid: calls.append(cid))
    catalog.upsert_call({"call_id": "n1_1.0", "agent": "a1"})
    assert calls == ["n1_1.0"]
