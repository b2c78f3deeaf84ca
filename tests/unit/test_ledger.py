"""pbx_recorder/recording/ledger.py: chaining, verification naming the broken seq, daily roots."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from pbx_recorder.catalog.schema import apply_migrations
from pbx_recorder.errors import CatalogError
from pbx_recorder.recording import ledger

DAY = "2026-03-04"
T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC).timestamp()


@pytest.fixture()
def conn():
    c = sqlite3.connect(":memory:")
    apply_migrations(c)
    yield c
    c.close()


def fill(conn, n=5, start=T0):
    with conn:
        for i in range(n):
            ledger.append(conn, "stored", f"r{i}", {"sha256": f"{i:064x}", "tier": "hot"}, start + i)


def test_append_chains_and_verifies(conn):
    fill(conn)
    rows = conn.execute("SELECT seq, prev_hash, hash FROM ledger ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert {r[1] for r in rows} == {""}  # the link is the previous row: not stored again (schema 13)
    links = [ledger.GENESIS] + [r[2] for r in rows[:-1]]
    assert [r[2] for r in rows] == [ledger.entry_hash(link, i + 1, T0 + i, "stored", f"r{i}",
                                                      {"sha256": f"{i:064x}", "tier": "hot"})
                                    for i, link in enumerate(links)]
    assert ledger.verify_chain(conn) == []
    with pytest.raises(CatalogError):
        ledger.append(conn, "bogus", "r1", {}, T0)


def test_append_rolls_back_with_caller_transaction(conn):
    fill(conn, 2)
    with pytest.raises(RuntimeError), conn:
        ledger.append(conn, "deleted", "r0", {"reason": "retention"}, T0 + 10)
        raise RuntimeError("the deletion failed")
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 2
    assert ledger.verify_chain(conn) == []


def test_tampered_payload_named(conn):
    fill(conn)
    with conn:
        conn.execute("UPDATE ledger SET payload = '{\"sha256\":\"x\",\"tier\":\"hot\"}' WHERE seq = 3")
    problems = ledger.verify_chain(conn)
    assert problems[0].seq == 3
    assert "does not match its hash" in problems[0].what
    assert problems[0].recording_id == "r2"


def test_tampered_row_rehashed_breaks_next_link(conn):
    fill(conn)
    row = conn.execute("SELECT hash FROM ledger WHERE seq = 1").fetchone()
    forged = ledger.entry_hash(row[0], 2, T0 + 1, "erased", "r1", {})
    with conn:
        conn.execute("UPDATE ledger SET event='erased', payload='{}', hash=? WHERE seq=2", (forged,))
    problems = ledger.verify_chain(conn)
    assert [p.seq for p in problems] == [3]  # row 3's hash was made over row 2's true hash
    assert "does not match its hash" in problems[0].what


def test_rows_written_with_a_prev_hash_still_verify_and_a_wrong_one_is_named(conn):
    """Rows from before schema 13 carry their link; a chain mixing both kinds verifies, and a
    stored link that is not the previous row's hash is named."""
    fill(conn)
    with conn:
        for seq, prev in conn.execute("SELECT seq, LAG(hash, 1, ?) OVER (ORDER BY seq) FROM ledger",
                                      (ledger.GENESIS,)).fetchall():
            if seq % 2:
                conn.execute("UPDATE ledger SET prev_hash = ? WHERE seq = ?", (prev, seq))
    assert ledger.verify_chain(conn) == []
    with conn:
        conn.execute("UPDATE ledger SET prev_hash = ? WHERE seq = 3", ("ab" * 32,))
    problems = ledger.verify_chain(conn)
    assert problems[0].seq == 3 and "prev_hash" in problems[0].what


def test_deleted_rows_named(conn):
    fill(conn)
    with conn:
        conn.execute("DELETE FROM ledger WHERE seq = 2")
    problems = ledger.verify_chain(conn)
    assert problems[0].seq == 2 and "missing" in problems[0].what
    with conn:
        conn.execute("DELETE FROM ledger WHERE seq = 5")  # tail truncation
    assert any(p.seq == 5 and "end of the ledger" in p.what for p in ledger.verify_chain(conn))
    with conn:  # appending after a truncation does not hide it
        seq, _ = ledger.append(conn, "stored", "r9", {}, T0 + 20)
    assert seq == 6
    assert any(p.seq == 5 for p in ledger.verify_chain(conn))


def test_daily_root(conn):
    assert ledger.daily_root(conn, DAY) == ledger.GENESIS
    fill(conn, 3)
    root = ledger.daily_root(conn, DAY)
    assert root == conn.execute("SELECT hash FROM ledger WHERE seq = 3").fetchone()[0]
    assert ledger.daily_root(conn, DAY) == root  # stable
    assert ledger.daily_root(conn, "2026-03-03") == ledger.GENESIS
    fill(conn, 1, start=T0 + 86400)  # next day's events do not change this day's root
    assert ledger.daily_root(conn, DAY) == root
    assert ledger.daily_root(conn, "2026-03-05") != root
    with conn:
        ledger.append(conn, "held", "r1", {"hold": "h1"}, T0 + 100)  # same day, later: root changes
    assert ledger.daily_root(conn, DAY) != root
    with pytest.raises(CatalogError):
        ledger.daily_root(conn, "04/03/2026")


def test_daily_root_depends_on_content(tmp_path):
    roots = []
    for sha in ("a" * 64, "b" * 64):
        c = sqlite3.connect(":memory:")
        apply_migrations(c)
        with c:
            ledger.append(c, "stored", "r1", {"sha256": sha}, T0)
        roots.append(ledger.daily_root(c, DAY))
        c.close()
    assert roots[0] != roots[1]
