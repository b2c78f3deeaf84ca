"""Suite-wide switches.

``PBXR_TEST_CATALOG=postgresql`` runs the tests with every catalog in a private PostgreSQL
cluster instead of SQLite files: each catalog path a test opens is mapped to a schema of its own
in that cluster (the same path, the same schema, for the whole run), through the one function
everything opens the catalog with (``pbx_recorder.catalog.engine.connect``); a real-server test's
daemons and CLI calls get that schema's URL as ``catalog.url`` (tests/catalog_redirect.py), and a
SQLite catalog left in a real test's folder fails it.  Tests that inspect or tamper with the
SQLite file itself carry the ``sqlite_only`` marker and are deselected in that run
(``scripts/test`` passes ``-m "not sqlite_only"``).  Tests of what only the PostgreSQL engine
does (pipelined batches, plan settings) carry ``postgres_only``: the SQLite pass deselects them
(``-m "not postgres_only"``) and the PostgreSQL pass runs them; run on SQLite anyway, such a test
fails saying so (it is never skipped: a skip would read as a pass).

Parallel runs: ``scripts/test`` runs pytest-xdist workers with ``--dist loadgroup``.  A real-server
test, or one on a module-scoped fixture, is put in a group here: its file, and for a test on the
session's Asterisk also the Asterisk version (``tests/real/x.py::ast16``), so a worker runs the
whole file (its module fixtures set up once) on one Asterisk; other tests go out one by one.
Real-server tests come first (long, sleep-bound calls).  The servers of a worker are its own
(free ports, its own temp folders), started once per worker and session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.catalog_redirect import ENGINE


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: reads or alters the SQLite catalog file itself")
    config.addinivalue_line("markers", "postgres_only: tests what only the PostgreSQL catalog does "
                                       "(PBXR_TEST_CATALOG=postgresql)")
    # pytest-xdist registers it too; declared here so a run without the plugin (-p no:xdist) works
    config.addinivalue_line("markers", "xdist_group(name): tests that run on one xdist worker")
    config.addinivalue_line("markers", "slow: a long in-process test, handed out first")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres_only") is not None and ENGINE != "postgresql":
        pytest.fail("a postgres_only test: run it with PBXR_TEST_CATALOG=postgresql "
                    "(or deselect it: -m 'not postgres_only')", pytrace=False)


SHARED_SCOPES = ("module", "class", "package")


def xdist_group_of(item: pytest.Item) -> str | None:
    """The group a test runs in under ``--dist loadgroup``: a real-server test, or a test on a
    module-, class- or package-scoped fixture, runs with the rest of its file (plus, on the
    session's Asterisk, the version: one PBX per version and worker, started once); any other
    test is handed out on its own (None), so one file of slow tests spreads over the workers."""
    fixturedefs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    shared = any(d.scope in SHARED_SCOPES for defs in fixturedefs.values() for d in defs)
    if item.get_closest_marker("real") is None and not shared:
        return None
    group = item.nodeid.split("::", 1)[0]
    spec = getattr(item, "callspec", None)
    if spec is not None and "asterisk" in spec.params:
        group += f"::ast{spec.params['asterisk']}"
    return group


#: the folder of the real-server tests; every other test runs in process (scripts/test collects
#: each tier from its own folders, so a test marked otherwise than its folder would never run)
REAL_FOLDERS = ("tests/real/",)


def misplaced(items: list[pytest.Item]) -> list[str]:
    """The tests whose ``real`` marker does not match their folder."""
    return [item.nodeid for item in items
            if (item.get_closest_marker("real") is not None) != item.nodeid.startswith(REAL_FOLDERS)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wrong = misplaced(items)
    if wrong:
        raise pytest.UsageError("a real-server test outside tests/real, or an in-process test inside it "
                                "(scripts/test would not run it): " + ", ".join(wrong[:5]))
    # the same order on every worker (xdist checks it): real-server tests first, then the long
    # in-process ones (``slow``: started first, they do not end a pass alone on one worker while
    # the other waits), stable otherwise (pytest already orders them by Asterisk version, so a
    # worker restarts its PBX rarely)
    items.sort(key=lambda item: (item.get_closest_marker("real") is None,
                                 item.get_closest_marker("slow") is None))
    for item in items:
        group = xdist_group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


ASTERISKS_OF_WORKERS: dict[str, str] = {}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: a worker's Asterisk versions (tests/real/conftest.py TESTED)."""
    ASTERISKS_OF_WORKERS.update(getattr(node, "workeroutput", {}).get("asterisks_tested", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ASTERISKS_OF_WORKERS:  # a parallel run (else tests/real/conftest.py prints the line)
        terminalreporter.write_line("Asterisk versions tested: "
                                    + ", ".join(v for _, v in sorted(ASTERISKS_OF_WORKERS.items())))


@pytest.fixture(scope="session")
def _postgres_for_catalogs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.postgres_server import PostgresServer

    server = PostgresServer.start(tmp_path_factory.mktemp("pg-catalogs"))
    yield server
    from pbx_recorder.catalog import engine

    engine.close_pools()
    server.stop()


if ENGINE == "postgresql":

    @pytest.fixture(scope="session", autouse=True)
    def _catalogs_on_postgres_session(request: pytest.FixtureRequest) -> Iterator[None]:
        """One redirect for the whole run (tests/catalog_redirect.py), so that catalogs made by
        module- or session-scoped fixtures go to PostgreSQL too."""
        from pbx_recorder.catalog import engine
        from tests.catalog_redirect import Redirect, activate

        redirect = Redirect(request.getfixturevalue("_postgres_for_catalogs"))
        activate(redirect)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(engine, "connect", redirect.wrap(engine.connect))
            # the audit rows' key is registered for the catalog a config names: a path here
            # names the schema that path maps to
            from pbx_recorder import audit_key

            identity = audit_key._identity
            mp.setattr(audit_key, "_identity", lambda target: identity(
                target if engine.is_url(target) else redirect.url_for(target)))
            yield

    @pytest.fixture(autouse=True)
    def _catalogs_on_postgres(request: pytest.FixtureRequest) -> Iterator[None]:
        """A real-server test's daemons and CLI calls are given their catalog's schema
        (``catalog.url``, tests/catalog_redirect.catalog_url): no SQLite catalog may be left in
        its folder."""
        real = request.node.get_closest_marker("real") and "tmp_path" in request.fixturenames
        folder = request.getfixturevalue("tmp_path") if real else None
        yield
        from pbx_recorder.catalog import engine

        engine.close_pools()  # a pool per schema: the cluster's connection limit is not for keeping
        if folder is not None:
            from tests.catalog_redirect import sqlite_catalog_files

            left = sqlite_catalog_files(folder)
            assert not left, f"PBXR_TEST_CATALOG=postgresql, but SQLite catalogs were written: {left}"
