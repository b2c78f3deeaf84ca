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


def test_growing_tables_are_vacuumed_after_inserts_not_a_fifth_of_the_table(tmp_path: Path) -> None:
    """Alembic 0013: counts over ``calls`` and ``call_tags`` stay index-only scans as the catalog
    grows (autovacuum marks pages all-visible every 10,000 inserted rows plus 1 %)."""
    conn = Catalog(tmp_path / "cat.db")._conn()
    for table in ("calls", "call_tags"):
        sql = "SELECT reloptions FROM pg_class WHERE oid = to_regclass(?)"
        options = conn.execute(sql, (table,)).fetchone()[0]
        assert set(options) >= {"autovacuum_vacuum_insert_threshold=10000",
                                "autovacuum_vacuum_insert_scale_factor=0.01"}, (table, options)


def test_catalog_statements_start_no_parallel_workers_unless_configured(tmp_path: Path) -> None:
    """A search reads one page and a bounded count: parallel workers cost more than they save
    there (bench_catalog at 1 M calls), so the catalog's connections start none
    (``max_parallel_workers_per_gather`` 0); ``catalog.parallel_workers`` gives them back."""
    from tests.catalog_redirect import catalog_url

    path = tmp_path / "cat.db"
    catalog = Catalog(path)
    assert catalog._conn().execute("SHOW max_parallel_workers_per_gather").fetchone()[0] == "0"
    catalog.release()
    assert catalog._conn().execute("SHOW max_parallel_workers_per_gather").fetchone()[0] == "0"
    catalog.close()
    url = catalog_url(path)
    assert url is not None
    engine.close_pools()
    engine.configure(url, parallel_workers=2)
    try:
        again = Catalog(path)
        conn = again._conn()
        assert conn.execute("SHOW max_parallel_workers_per_gather").fetchone()[0] == "2"
        assert conn.execute("SHOW plan_cache_mode").fetchone()[0] == "force_custom_plan"
        again.close()
    finally:
        engine.close_pools()
        engine._settings.pop(url, None)
