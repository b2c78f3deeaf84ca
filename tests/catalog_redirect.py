"""Every catalog of a test run on PostgreSQL (``PBXR_TEST_CATALOG=postgresql``).

Each catalog file path a test names is mapped to a schema of its own in one private PostgreSQL
cluster per session (per pytest-xdist worker): the same path, the same schema, for the whole run.
In-process code reaches that schema through ``pbx_recorder.catalog.engine.connect`` (patched by
``tests/conftest.py``); a daemon or CLI started as a subprocess reaches it through ``catalog.url``
in its config: :func:`catalog_url` gives the URL of the schema a path maps to, so a real test, its
daemon and its CLI calls all see one catalog.  :func:`sqlite_catalog_files` finds a SQLite catalog a test
left behind (a catalog that silently stayed a file); :func:`sqlite_catalogs` is for the few steps
that are about a SQLite catalog on purpose (e.g. "a SQLite backup is no PostgreSQL restore").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ENGINE = os.environ.get("PBXR_TEST_CATALOG", "sqlite")
SQLITE_MAGIC = b"SQLite format 3\x00"


class Redirect:
    """Catalog file paths -> schemas of ``server`` (a tests/postgres_server.PostgresServer)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.schemas: dict[str, str] = {}
        self.paused = False
        self.kept_sqlite: set[Path] = set()  # files made SQLite on purpose (sqlite_catalogs)

    def url_for(self, target: Any) -> str:
        key = str(target)
        if key == ":memory:":
            key = f":memory:{uuid.uuid4().hex}"
        else:
            key = str(Path(key).resolve())
            if key not in self.schemas:
                Path(key).parent.mkdir(parents=True, exist_ok=True)
                Path(key).touch(exist_ok=True)  # code that checks the file exists finds it
        if key not in self.schemas:
            name = "t_" + hashlib.sha256(key.encode()).hexdigest()[:20]
            self.server.psql(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")
            self.schemas[key] = self.server.url(name)
        return self.schemas[key]

    def wrap(self, real_connect: Callable[..., Any]) -> Callable[..., Any]:
        from pbx_recorder.catalog import engine

        def connect(target: Any, **kwargs: Any) -> Any:
            if engine.is_url(target):
                return real_connect(target, **kwargs)
            if self.paused:
                if str(target) != ":memory:":
                    self.kept_sqlite.add(Path(target).resolve())
                return real_connect(target, **kwargs)
            return real_connect(self.url_for(target), **kwargs)

        return connect


_ACTIVE: list[Redirect] = []  # the session's redirect, once tests/conftest.py has made it


def activate(redirect: Redirect) -> None:
    _ACTIVE[:] = [redirect]


def catalog_url(path: str | Path) -> str | None:
    """``catalog.url`` for a daemon or CLI whose ``catalog.path`` is ``path``: the schema the
    test's own opens of ``path`` reach; None when the run keeps catalogs in SQLite files."""
    if ENGINE != "postgresql":
        return None
    if not _ACTIVE:
        raise RuntimeError("PBXR_TEST_CATALOG=postgresql but no catalog redirect is active")
    return _ACTIVE[0].url_for(path)


@contextlib.contextmanager
def sqlite_catalogs() -> Iterator[None]:
    """Catalogs opened by path inside stay SQLite files (a step about a SQLite catalog itself)."""
    if not _ACTIVE:
        yield
        return
    redirect = _ACTIVE[0]
    redirect.paused = True
    try:
        yield
    finally:
        redirect.paused = False


def sqlite_catalog_files(root: Path) -> list[Path]:
    """The SQLite catalogs under ``root`` (a SQLite database with a catalog table: a PBX's own
    databases, e.g. FreeSWITCH's ``core.db``, are not ones) not made on purpose
    (:func:`sqlite_catalogs`)."""
    kept = _ACTIVE[0].kept_sqlite if _ACTIVE else set()
    found = []
    for path in root.rglob("*") if root.exists() else ():
        if not path.is_file() or path.is_symlink() or path.resolve() in kept:
            continue
        try:
            with path.open("rb") as handle:
                if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                    continue
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                # the catalog's own tables (FreeSWITCH's core.db has a 'calls' table too)
                tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN "
                                      "('ledger', 'audit_log')").fetchall()
            finally:
                conn.close()
        except (OSError, sqlite3.Error):
            continue
        if tables:
            found.append(path)
    return found
