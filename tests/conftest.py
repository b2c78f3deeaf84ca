"""Suite-wide switches.

``PBXR_TEST_CATALOG=postgresql`` runs the in-process tiers (unit, peers) with every catalog in a
private PostgreSQL cluster instead of SQLite files: each catalog path a test opens is mapped to a
schema of its own in that cluster (the same path, the same schema, for the whole test), through
the one function everything opens the catalog with (``pbx_recorder.catalog.engine.connect``).
Tests that inspect or tamper with the SQLite file itself carry the ``sqlite_only`` marker and are
deselected in that run (``scripts/test`` passes ``-m "not real and not sqlite_only"``).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ENGINE = os.environ.get("PBXR_TEST_CATALOG", "sqlite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: reads or alters the SQLite catalog file itself")


@pytest.fixture(scope="session")
def _postgres_for_catalogs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.postgres_server import PostgresServer

    server = PostgresServer.start(tmp_path_factory.mktemp("pg-catalogs"))
    yield server
    from pbx_recorder.catalog import engine

    engine.close_pools()
    server.stop()


if ENGINE == "postgresql":

    @pytest.fixture(autouse=True)
    def _catalogs_on_postgres(request: pytest.FixtureRequest,
                              monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        if request.node.get_closest_marker("real"):
            yield
            return
        server = request.getfixturevalue("_postgres_for_catalogs")
        from pbx_recorder.catalog import engine

        real_connect = engine.connect
        schemas: dict[str, str] = {}

        def connect(target: Any, **kwargs: Any) -> Any:
            if engine.is_url(target):
                return real_connect(target, **kwargs)
            key = str(target)
            if key != ":memory:":
                key = str(Path(key).resolve())
            if key == ":memory:":
                key = f":memory:{uuid.uuid4().hex}"
            elif key not in schemas:
                Path(key).parent.mkdir(parents=True, exist_ok=True)
                Path(key).touch(exist_ok=True)  # code that checks the file exists finds it
            if key not in schemas:
                name = "t_" + hashlib.sha256(f"{request.node.nodeid}|{key}".encode()).hexdigest()[:20]
                server.psql(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")
                schemas[key] = server.url(name)
            return real_connect(schemas[key], **kwargs)

        monkeypatch.setattr(engine, "connect", connect)
        yield
        engine.close_pools()
