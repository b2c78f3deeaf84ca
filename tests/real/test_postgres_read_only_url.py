"""A read-only catalog connection keeps the ``options`` of the catalog URL (issue 11).

The read-only pool sets ``default_transaction_read_only`` through the ``options`` connection
keyword; a keyword replaces the URL's parameter of the same name, so a URL that names its
schema (``?options=-csearch_path%3D...``, how tests and schema-per-site deployments address a
catalog) lost it on every read-only connection: ``ledger verify`` and the readers failed with
"relation ledger does not exist" (or read another schema's tables).  Fixed in
``engine.pool_kwargs``.
"""

from __future__ import annotations

import pytest

from pbx_recorder.catalog import Catalog, engine
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.real


def test_read_only_connection_reads_the_schema_the_url_names_and_stays_read_only(
        postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    Catalog(url).close()
    conn = engine.connect(url, read_only=True)
    try:
        assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0  # the URL's schema
        with pytest.raises(engine.db_errors(), match="read-only"):
            conn.execute("INSERT INTO catalog_settings (name, value) VALUES ('x', 'y')")
    finally:
        conn.close()


def test_pool_settings_add_read_only_to_the_options_of_the_url() -> None:
    url = "postgresql://pbxr@127.0.0.1:5432/pbxr?options=-csearch_path%3Dsite1"
    assert engine.pool_kwargs(url, True, None)["options"] == \
        "-csearch_path=site1 -c default_transaction_read_only=on"
    assert engine.pool_kwargs(url.split("?")[0], True, "pw") == {
        "autocommit": True, "password": "pw", "options": "-c default_transaction_read_only=on"}
    assert "options" not in engine.pool_kwargs(url, False, None)  # the URL's own options apply
