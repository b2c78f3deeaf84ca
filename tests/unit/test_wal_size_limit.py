"""A catalog's WAL does not keep the size a long read made it grow to (engine.WAL_KEEP_BYTES):
once the reader is gone and a checkpoint has caught up, the file is cut back."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from pbx_recorder.catalog import engine


@pytest.mark.sqlite_only  # SQLite's WAL file
def test_the_wal_is_cut_back_after_a_long_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "WAL_KEEP_BYTES", 256 * 1024)
    path = tmp_path / "c.db"
    writer = engine.connect(path)
    assert writer.execute("PRAGMA journal_size_limit").fetchone()[0] == 256 * 1024
    writer.execute("CREATE TABLE t (x BLOB)")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM t").fetchone()  # holds its snapshot: checkpoints stall
    for _ in range(200):
        writer.execute("INSERT INTO t VALUES (?)", (os.urandom(16384),))
    grown = os.path.getsize(str(path) + "-wal")
    assert grown > 2 * 1024 * 1024
    reader.execute("COMMIT")
    reader.close()
    writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
    writer.execute("INSERT INTO t VALUES (x'00')")  # the next write starts the WAL over and cuts it
    assert os.path.getsize(str(path) + "-wal") <= 256 * 1024 < grown
    writer.close()
