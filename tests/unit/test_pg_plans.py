"""Catalog connections to PostgreSQL plan each statement for its own values: a search by a rare
status must not reuse the generic plan that suits the common one (psycopg prepares a statement
on the server after its fifth run).  PostgreSQL only (marker ``postgres_only``:
``PBXR_TEST_CATALOG=postgresql``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_recorder.catalog import CallFilters, Catalog, engine

pytestmark = pytest.mark.postgres_only


def test_catalog_connections_plan_with_the_values_they_are_given(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "cat.db")
    conn = catalog._conn()
    assert engine.is_postgres(conn)
    for _ in range(7):  # past psycopg's prepare threshold
        catalog.search_page(CallFilters(status="failed"))
    assert conn.execute("SHOW plan_cache_mode").fetchone()[0] == "force_custom_plan"
    catalog.release()  # back to the pool and out again: the setting belongs to the connection
    assert catalog._conn().execute("SHOW plan_cache_mode").fetchone()[0] == "force_custom_plan"
