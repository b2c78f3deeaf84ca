"""``ledger.appending``: in one write transaction the chain head is read once and carried from
append to append (``Catalog.write_calls``); the chain is the one call-by-call appends make."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_recorder.catalog import engine
from pbx_recorder.errors import CatalogError
from pbx_recorder.recording import ledger
from tests.unit.test_catalog_bulk import _call, _catalog, _hooks


def _head_reads(statements: list[str]) -> int:
    return sum(s.startswith("SELECT seq, hash, mac FROM ledger ORDER BY seq DESC") for s in statements)


def test_a_batch_reads_the_chain_head_once_and_links_every_entry(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "c.db")
    catalog.write_calls((_call(i) for i in range(3)), after_store=_hooks())
    conn = catalog._conn()
    writer = catalog.shared_writer()  # (SQLite: the batch is written through it)
    seen: list[str] = []
    if writer is not None:
        writer.set_trace_callback(seen.append)
    catalog.write_calls((_call(i) for i in range(3, 8)), after_store=_hooks())
    if writer is not None:
        writer.set_trace_callback(None)
        assert _head_reads(seen) == 1  # 10 entries, one head read (it was one per entry)
    ledger.append(conn, "held", "n1_1.0_call001", {"why": "test"}, 1.0)  # a lone append after it
    rows = conn.execute("SELECT seq, prev_hash, hash FROM ledger ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == list(range(1, 18))
    assert {r[1] for r in rows} == {""}  # (the link is the previous row, ledger.append)
    assert ledger.verify_chain(conn) == []  # every hash recomputed over the one before it
    assert engine.issued_max(conn, "ledger") == 17  # (PostgreSQL: noted as the batch ends)
    assert ledger._HEADS == {}


def test_a_failed_batch_leaves_no_head_behind(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "c.db")
    catalog.write_calls((_call(i) for i in range(2)), after_store=_hooks())

    def broken() -> object:
        yield _call(2)
        yield {"call_id": ""}, []  # refused: the whole batch rolls back

    with pytest.raises(CatalogError):
        catalog.write_calls(broken(), after_store=_hooks())
    assert ledger._HEADS == {}
    catalog.write_calls((_call(i) for i in range(2, 4)), after_store=_hooks())
    conn = catalog._conn()
    assert [r[0] for r in conn.execute("SELECT seq FROM ledger ORDER BY seq")] == list(range(1, 9))
    assert ledger.verify_chain(conn) == []


def test_outside_a_transaction_appending_changes_nothing(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "c.db")
    conn = catalog._conn()
    with ledger.appending(conn):
        assert ledger._HEADS == {}  # no transaction to carry a head in: each append reads it
        ledger.append(conn, "held", "r1", {}, 1.0)
        ledger.append(conn, "released", "r1", {}, 2.0)
    assert ledger.verify_chain(conn) == []


def test_a_batch_keys_every_row_with_the_key_looked_up_once(tmp_path: Path) -> None:
    """With the catalog's key registered (schema 24) the bulk path's rows are keyed like single
    appends, the key looked up once for the batch, and the chain verifies."""
    import os

    from pbx_recorder import audit_key

    catalog = _catalog(tmp_path / "c.db")
    audit_key.register(tmp_path / "c.db", os.urandom(32))
    try:
        writer = catalog.shared_writer()  # (SQLite: the batch is written through it)
        seen: list[str] = []
        if writer is not None:
            writer.set_trace_callback(seen.append)
        catalog.write_calls((_call(i) for i in range(3)), after_store=_hooks())
        if writer is not None:
            writer.set_trace_callback(None)
            assert sum(s.startswith("PRAGMA database_list") for s in seen) == 1  # (6 entries)
        conn = catalog._conn()
        macs = [r[0] for r in conn.execute("SELECT mac FROM ledger ORDER BY seq").fetchall()]
        assert len(macs) == 6 and all(m.startswith(ledger.MAC_PREFIX) for m in macs)
        assert ledger.verify_chain(conn) == []
    finally:
        audit_key.register(tmp_path / "c.db", None)
        catalog.close()
