"""The test bed's catalog reader never answers "no rows" for a catalog it could not read.

A real test read the audit log once while SQLite said the file was locked, got ``[]`` and failed
an assertion that the pause had been audited (CI, Asterisk 22).  The reader now retries a locked
or busy file, returns no rows only for a table not made yet, and raises anything else.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pbx_recorder.testbed import recorder as testbed_recorder
from pbx_recorder.testbed.recorder import CatalogReader


def _catalog(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")  # a rollback journal: an exclusive lock blocks readers
    conn.execute("CREATE TABLE audit_log (action TEXT, target TEXT)")
    conn.execute("INSERT INTO audit_log VALUES ('pause', 'c1'), ('resume', 'c1')")
    conn.commit()
    conn.close()


def test_a_locked_catalog_is_read_again_not_answered_with_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    _catalog(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    releaser = threading.Timer(6.0, lambda: holder.execute("COMMIT"))  # past sqlite3's own 5 s wait
    releaser.start()
    try:
        started = time.monotonic()
        rows = CatalogReader(path).query("SELECT action FROM audit_log WHERE target = ? ORDER BY action",
                                         ("c1",))
    finally:
        releaser.join()
        holder.close()
    assert [r["action"] for r in rows] == ["pause", "resume"]
    assert time.monotonic() - started >= 5.5


def test_a_catalog_locked_past_the_wait_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "catalog.db"
    _catalog(path)
    monkeypatch.setattr(testbed_recorder, "BUSY_WAIT_S", 0.0)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            CatalogReader(path).query("SELECT action FROM audit_log")
    finally:
        holder.execute("COMMIT")
        holder.close()


def test_a_table_not_made_yet_is_no_rows_and_a_wrong_query_raises(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    _catalog(path)
    reader = CatalogReader(path)
    assert reader.query("SELECT * FROM calls") == []
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        reader.query("SELECT no_such_column FROM audit_log")
