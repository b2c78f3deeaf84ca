"""The PostgreSQL side of bench_catalog.py: a server, fresh schemas, ANALYZE, plans, footprint.

The server is either one the operator names (``--pg-url``, a database URL without ``options``;
the bench creates its schemas there and drops them at the end -- with ``--keep`` it keeps them under
fixed names, ``bench_kept_catalog`` and ``bench_kept_cdr``, so that a stopped fill goes on) or a
private cluster started
from ``tests/postgres_server.py`` (imported by path: the bench does not need pytest), run
*durable* -- fsync, full-page writes and synchronous commit on, as a production server runs --
so that its write rates compare with SQLite's, which syncs every commit too.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog import engine as catalog_engine
from pbx_recorder.catalog.queries import COUNT_READ_CAP, build_bounded_count, build_count, build_search
from pbx_recorder.catalog.scopes import Scope

ROOT = Path(__file__).resolve().parents[1]


def _postgres_server_class() -> Any:
    path = ROOT / "tests" / "postgres_server.py"
    spec = importlib.util.spec_from_file_location("bench_postgres_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module.PostgresServer


class PgServer:
    """Where the PostgreSQL catalogs of one bench run live, and how they are cleaned up."""

    #: the schemas of a kept run (``--keep``): fixed names, left in place at the end
    KEPT_PREFIX = "bench_kept_"

    def __init__(self, root: Path, url: str | None, *, kept: str = "") -> None:
        """``kept``: the kept run's id (``--keep``), written into each kept schema it fills (a
        schema another kept run filled is refused: its calls and keys are not this run's)."""
        self.private = None
        self.kept = kept
        if kept and url is None:
            raise SystemExit("--keep with PostgreSQL needs --pg-url (a server that outlives the run)")
        if url is None:
            self.private = _postgres_server_class().start(root / "pg", durable=True)
            url = self.private.url()
        if "?" in url:
            raise SystemExit("--pg-url: give a database URL without options (the bench sets search_path)")
        self.url = url
        self.schemas: list[str] = []

    def describe(self) -> str:
        if self.private is not None:
            return ("a private PostgreSQL cluster started for this run (tests/postgres_server.py, "
                    "fsync, full_page_writes and synchronous_commit on, other settings default)")
        kept = "; kept schemas bench_kept_*" if self.kept else ""
        return f"{catalog_engine.describe(self.url)} (given with --pg-url{kept})"

    def fresh(self, purpose: str) -> str:
        """The URL of a new empty schema (its name says which bench made it, for ``--pg-url``)."""
        import psycopg

        if self.kept:  # the same schema in every run; the empty catalog is made anew each time
            name = self.KEPT_PREFIX + purpose
            with psycopg.connect(self.url, autocommit=True) as conn:
                if purpose == "empty":
                    conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")  # type: ignore[arg-type]
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")  # type: ignore[arg-type]
                conn.execute(f"CREATE TABLE IF NOT EXISTS {name}.bench_run (id TEXT NOT NULL)")  # type: ignore[arg-type]
                owners = {str(r[0]) for r in conn.execute(f"SELECT id FROM {name}.bench_run")}  # type: ignore[arg-type]
                if owners - {self.kept}:
                    raise SystemExit(f"schema {name} holds another kept run's data (--keep with another "
                                     "directory): drop it, or bench in another database")
                if not owners:
                    conn.execute(f"INSERT INTO {name}.bench_run VALUES (%s)", (self.kept,))  # type: ignore[arg-type]
            return self.url + "?options=" + quote(f"-csearch_path={name}")
        name = f"bench_{purpose}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")  # type: ignore[arg-type]  # name made above
        self.schemas.append(name)
        return self.url + "?options=" + quote(f"-csearch_path={name}")

    def close(self) -> None:
        catalog_engine.close_pools()
        if self.private is not None:
            self.private.stop()
            return
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            if self.kept:  # the measuring run's empty catalog; the filled one stays
                conn.execute(f"DROP SCHEMA IF EXISTS {self.KEPT_PREFIX}empty CASCADE")  # type: ignore[arg-type]
            for name in self.schemas:  # (none in a kept run)
                conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")  # type: ignore[arg-type]


class PgCdr:
    """Asterisk's ``cdr`` table with its calldate index in a schema of its own: the footprint baseline."""

    def __init__(self, url: str, schema_sql: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(schema_sql)  # type: ignore[arg-type]  # the bench's own constant

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(f"INSERT INTO cdr VALUES ({','.join(['%s'] * 19)})", rows)

    def committed(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM cdr").fetchone()[0])  # type: ignore[index]

    def bytes_used(self) -> int:
        return _total_size(self.conn)[0]

    def close(self) -> None:
        self.conn.close()


def _tables(conn: Any) -> list[str]:
    rows = conn.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 1").fetchall()
    return [str(r[0]) for r in rows]


def _total_size(conn: Any) -> tuple[int, list[tuple[str, int]]]:
    """pg_total_relation_size of every table in the connection's schema: (sum, per table, largest first)."""
    rows = conn.execute("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 2 DESC").fetchall()
    parts = [(str(r[0]), int(r[1])) for r in rows]
    return sum(size for _, size in parts), parts


def _relations(conn: Any) -> list[tuple[str, str, str, int]]:
    """(name, table | index, its table, bytes) of every table (pg_table_size: heap, TOAST, maps)
    and index (pg_relation_size) in the connection's schema, largest first."""
    rows = conn.execute(
        "SELECT c.relname, CASE c.relkind WHEN 'r' THEN 'table' ELSE 'index' END, "
        "COALESCE(t.relname, c.relname), CASE c.relkind WHEN 'r' THEN pg_table_size(c.oid) "
        "ELSE pg_relation_size(c.oid) END FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i') ORDER BY 4 DESC").fetchall()
    return [(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]


def analyze(catalog: Catalog) -> list[str]:
    """ANALYZE every table of the catalog's schema (the statistics the planner needs); their names."""
    conn = catalog._conn()
    tables = _tables(conn)
    for table in tables:
        conn.execute(f"ANALYZE {table}")  # a name read from pg_class just above
    return tables


def vacuum_analyze(catalog: Catalog) -> list[str]:
    """VACUUM (ANALYZE) every table of the catalog's schema: the state autovacuum keeps a running
    catalog in (pages marked all-visible, so an index-only read does not visit the table)."""
    conn = catalog._conn()
    tables = _tables(conn)
    for table in tables:
        conn.execute(f"VACUUM (ANALYZE) {table}")  # a name read from pg_class just above
    return tables


def _statements(catalog: Catalog, f: CallFilters, scope: Scope | None,
                now: float) -> list[tuple[str, str, Any]]:
    """What ``calls search`` runs for ``f`` in ``scope``: (page | count, SQL, parameters)."""
    blind = catalog.numbers.index if catalog.numbers is not None else None
    count = (build_bounded_count(f, now, read_cap=COUNT_READ_CAP, scope=scope)
             or build_count(f, now, blind=blind, scope=scope))
    return [("page", *build_search(f, now, probe=True, blind=blind, scope=scope)), ("count", *count)]


_COST = re.compile(r"\s*\(cost=.*\)$")


def seq_scans(catalog: Catalog, f: CallFilters, scope: Scope | None, now: float) -> list[str]:
    """One line per sequential scan in the plans of what ``calls search`` runs for ``f`` (its page
    and its count), as PostgreSQL's EXPLAIN prints it; empty when every table is read by index."""
    conn, found = catalog._conn(), []
    for what, sql, params in _statements(catalog, f, scope, now):
        for row in conn.execute("EXPLAIN " + sql, params).fetchall():
            line = str(row[0])
            if "Seq Scan" in line:
                found.append(f"{what}: {_COST.sub('', line).strip().removeprefix('-> ').strip()}")
    return found


_BUFFERS = re.compile(r"Buffers: shared (.*)")
_HEAP = re.compile(r"Heap Fetches: (\d+)")
_TIME = re.compile(r"Execution Time: ([\d.]+) ms")
_PLANNING = re.compile(r"Planning Time: ([\d.]+) ms")


def what_it_read(catalog: Catalog, f: CallFilters, scope: Scope | None, now: float) -> list[str]:
    """The page's and the count's ``EXPLAIN (ANALYZE, BUFFERS)`` in one line each: planning and
    execution time, buffers of the whole statement, heap fetches of its index-only reads (the
    table pages visited because VACUUM has not marked them all-visible)."""
    conn, out = catalog._conn(), []
    for what, sql, params in _statements(catalog, f, scope, now):
        plan = [str(r[0]) for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()]
        buffers = next((m.group(1) for line in plan if (m := _BUFFERS.search(line))), "-")
        heap = sum(int(m.group(1)) for line in plan if (m := _HEAP.search(line)))
        ms = next((m.group(1) for line in plan if (m := _TIME.search(line))), "?")
        planning = next((m.group(1) for line in plan if (m := _PLANNING.search(line))), "?")
        nodes = sorted({line.strip().removeprefix("-> ").split("  ")[0].split(" on ")[0]
                        for line in plan if "->" in line or line == plan[0]})
        out.append(f"{what}: planned in {planning} ms, ran {ms} ms, buffers {buffers}, "
                   f"heap fetches {heap:,}; nodes: {', '.join(nodes)}")
    return out


def footprint(catalog: Catalog, calls: int, cdr: PgCdr | None) -> None:
    total, parts = _total_size(catalog._conn())
    line = (f"postgresql catalog: {total / calls:,.0f} bytes per call "
            f"({total / 2**20:,.0f} MiB for {calls:,} calls: pg_total_relation_size -- heap, indexes, "
            "TOAST, free-space and visibility maps -- "
            "summed over every table of the catalog's schema, recording and ledger rows included; "
            "WAL not counted; dead row versions left by the fill's updates count until VACUUM reuses them)")
    if cdr is not None:
        cdr_size = cdr.bytes_used()
        line += (f"; cdr table + calldate index in PostgreSQL, measured the same way: "
                 f"{cdr_size / calls:,.0f} bytes per call (ratio {total / cdr_size:.1f}x)")
    print("\n" + line)
    for name, nbytes in parts[:10]:
        print(f"  {name:32} {nbytes / calls:8,.0f} B/call (with its indexes and TOAST)")
    print("  each table (heap + TOAST) and index on its own:")
    for name, kind, table, nbytes in _relations(catalog._conn()):
        if nbytes > 8192:  # more than the one page an empty table or index takes
            print(f"    {name:32} {kind:5} of {table:14} {nbytes / calls:8,.0f} B/call")
