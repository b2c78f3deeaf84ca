"""A new SQLite catalog uses 8 KB pages (a recording's ~2.2 KB row: three to a page, not one);
a catalog created with another page size keeps it and works as before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.catalog.engine import PAGE_SIZE

# reads the SQLite file's own page size: not part of the PostgreSQL pass
pytestmark = pytest.mark.sqlite_only


def _page_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def test_a_new_catalog_has_8k_pages(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "cat.db")
    catalog.upsert_call({"call_id": "n1_1.0", "started_at": 1.0})
    catalog.close()
    assert PAGE_SIZE == 8192 and _page_size(tmp_path / "cat.db") == 8192


def test_an_existing_catalog_keeps_its_page_size(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Catalog(path)  # as an earlier version made it: 4 KB pages
    old.close()
    path.unlink()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA page_size=4096")
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("CREATE TABLE before_upgrade (x)")
    raw.close()
    catalog = Catalog(path)
    catalog.upsert_call({"call_id": "n1_2.0", "started_at": 2.0, "agent": "a1"})
    row = catalog.get_call("n1_2.0")
    catalog.close()
    assert row is not None and row["agent"] == "a1"
    assert _page_size(path) == 4096
