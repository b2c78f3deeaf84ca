"""Which database holds the catalog, and how to open it: SQLite (one node) or PostgreSQL (many).

A *catalog target* is either a file path (SQLite, the embedded default) or a URL
``postgresql://user@host:port/dbname`` (``catalog.url`` in the config).  Everything that opens
the catalog goes through :func:`connect`, which returns a ``sqlite3.Connection`` or a
:class:`~pbx_recorder.catalog.pg_connection.PgConnection` with the same surface, and every
place where the engines differ asks one of the helpers here (:func:`is_postgres`,
:func:`table_columns`, :func:`compact`) instead of writing engine-specific SQL itself.

PostgreSQL connections come from one ``psycopg_pool.ConnectionPool`` per URL and process
(``catalog.pool_size``, default 10): a thread keeps the connection it took until the catalog
is closed, and a thread that finds the pool empty waits up to 30 s, then fails with
:class:`CatalogError` naming the pool size.  The password is never part of the URL in the
config: ``catalog.password_file`` (root-owned, read by the service user) supplies it.
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from pbx_recorder.errors import CatalogError

BUSY_TIMEOUT_MS = 5000
PAGE_SIZE = 8192  # SQLite page size of a new catalog file
#: SQLite page cache per connection, KiB (SQLite's default is 2 MiB).  Each call's insert touches
#: random pages of the blind-index, number and ledger indexes; past ~20,000 calls those no longer
#: stay in 2 MiB, and every write re-reads them from the OS (bench_catalog: +15 % calls per CPU
#: second at 60,000 calls).  Memory is taken as pages are read, up to this much per connection.
CACHE_KIB = 65536
#: the page cache of a process's one group-commit writer connection, KiB (``GroupCommit``): the
#: index pages a call's insert touches are one per agent, queue, last-4 digits ... (about 40,000
#: 8 KiB pages with 500 agents and 20 queues), whatever the catalog's size; kept in this cache
#: they are read once, not once a group.  Taken as pages are read.
WRITER_CACHE_KIB = 512 * 1024
#: what a WAL file is cut back to after a checkpoint (SQLite's journal_size_limit)
WAL_KEEP_BYTES = 64 * 1024 * 1024
#: the writer connection's checkpoint: after this many WAL pages its commit copies them into the
#: file (SQLite's wal_autocheckpoint; 1,000 by default).  A call dirties 10-30 index pages, most of
#: them pages the next calls dirty again (the newest end of each agent's, queue's ... range): a
#: longer WAL writes each of them into the file once for many calls
WRITER_CHECKPOINT_PAGES = 8192
POOL_WAIT_S = 30.0
DEFAULT_POOL_SIZE = 10

Target = str | Path

_pools: dict[tuple[str, str], Any] = {}
_pools_lock = threading.Lock()
_settings: dict[str, dict[str, Any]] = {}  # url -> {"password": ..., "pool_size": ...}

def db_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a catalog statement raises on either engine (``except engine.db_errors()``).
    psycopg is looked up, not imported: a process that never opened PostgreSQL has none of its
    errors, and a SQLite-only command does not pay for importing it."""
    pg = sys.modules.get("psycopg")
    return (sqlite3.Error, pg.Error) if pg is not None else (sqlite3.Error,)


def integrity_errors() -> tuple[type[BaseException], ...]:
    pg = sys.modules.get("psycopg")
    return (sqlite3.IntegrityError, pg.IntegrityError) if pg is not None else (sqlite3.IntegrityError,)


def is_url(target: Target) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def is_postgres(conn: Any) -> bool:
    return getattr(conn, "engine", "sqlite") == "postgresql"


def configure(url: str, *, password: str | None = None, pool_size: int = DEFAULT_POOL_SIZE,
              parallel_workers: int = 0) -> None:
    """Settings for connections to ``url`` (from the config: the password file, the pool size,
    the parallel workers a statement may use)."""
    _settings[url] = {"password": password, "pool_size": pool_size, "parallel_workers": parallel_workers}


def configure_writer_cache(kib: int) -> None:
    """The page cache of each process's group-commit writer connection (``catalog.writer_cache_mb``)."""
    global WRITER_CACHE_KIB
    WRITER_CACHE_KIB = max(1024, int(kib))


def password_of(url: str) -> str | None:
    return _settings.get(url, {}).get("password")


def describe(target: Target) -> str:
    """The target as it may be logged: a URL without any password."""
    if not is_url(target):
        return str(target)
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(str(target))
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    netloc = user + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def pool_kwargs(url: str, read_only: bool, password: str | None) -> dict[str, Any]:
    """Connection settings of a pool.  A read-only pool adds ``default_transaction_read_only``
    to the ``options`` the URL itself gives (e.g. ``?options=-csearch_path%3Dpbxr``): a keyword
    replaces the URL's parameter of that name, and a read-only command must not lose the
    schema the URL names."""
    kwargs: dict[str, Any] = {"autocommit": True}
    if password:
        kwargs["password"] = password
    if read_only:
        from psycopg.conninfo import conninfo_to_dict

        own = str(conninfo_to_dict(url).get("options") or "")
        kwargs["options"] = (own + " " if own else "") + "-c default_transaction_read_only=on"
    return kwargs


def _pool(url: str, read_only: bool) -> Any:
    key = (url, "ro" if read_only else "rw")
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            from psycopg_pool import ConnectionPool

            settings = _settings.get(url, {})
            kwargs = pool_kwargs(url, read_only, settings.get("password"))
            size = int(settings.get("pool_size") or DEFAULT_POOL_SIZE)
            workers = int(settings.get("parallel_workers") or 0)
            pool = ConnectionPool(url, min_size=1, max_size=size, kwargs=kwargs, timeout=POOL_WAIT_S,
                                  name=f"catalog-{key[1]}", open=True, check=ConnectionPool.check_connection,
                                  configure=partial(_session_settings, workers))
            _pools[key] = pool
        return pool


def _session_settings(parallel_workers: int, raw: Any) -> None:
    """What every catalog connection sets once, as the pool opens it (a setting of the session:
    it stays with the connection from one holder to the next).

    Plan every statement for the values it is run with.  psycopg prepares a statement on the
    server after its fifth run, and PostgreSQL then may switch to one *generic* plan for every
    value.  The catalog's filters are skewed (most calls are answered, few failed), and a plan
    that suits the average value is slow for the others: bench_catalog at 50,000 calls, status
    ``no_answer`` / ``failed`` p50 80-118 ms with generic plans, 3.5-20 ms with custom ones
    (load 30).  Planning a search costs ~0.1-0.2 ms.

    No parallel workers unless ``catalog.parallel_workers`` asks for them: a search reads one
    page of 50 rows and a bounded count, and PostgreSQL planned the page of a tag with a status
    and a consent decision as a ``Gather Merge`` of two workers.  Starting them cost more than
    they saved: bench_catalog at 1 M calls (session 53), tag + answered + consent p50 28 -> 18 ms
    and p95 37-38 -> 19-24 ms warm, 72 -> 58 ms p95 from a cold cache; a team's search by status
    p95 35-41 -> 31 ms; no filter slower."""
    raw.execute("SET plan_cache_mode = force_custom_plan")
    raw.execute(f"SET max_parallel_workers_per_gather = {max(0, int(parallel_workers))}")


def close_pools() -> None:
    """Close every pool of this process (tests, shutdown)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def _getconn(pool: Any) -> Any:
    """A connection from ``pool``.  A connection whose last holder dropped it without ``close()``
    (a thread that ended, an object in a reference cycle) goes back when the garbage collector
    finalizes it: when the pool is empty, collect once before waiting the full time."""
    from psycopg_pool import PoolTimeout

    try:
        return pool.getconn(timeout=0.05)
    except PoolTimeout:
        gc.collect()
        return pool.getconn(timeout=POOL_WAIT_S)


def connect(target: Target, *, read_only: bool = False, timeout: float = BUSY_TIMEOUT_MS / 1000,
            legacy: bool = False, cache_kib: int | None = None) -> Any:
    """An open connection to the catalog at ``target`` (autocommit: explicit transactions).

    ``cache_kib``: SQLite's page cache of this connection (default :data:`CACHE_KIB`).

    ``legacy``: SQLite only, the ``sqlite3`` module's default transaction handling (a write opens
    a transaction that ``commit()`` ends) and plain tuples, as the verify and ledger commands have
    always used; PostgreSQL connections are autocommit either way."""
    if is_url(target):
        from pbx_recorder.catalog.pg_connection import PgConnection

        url = str(target)
        pool = _pool(url, read_only)
        try:
            raw = _getconn(pool)
        except Exception as exc:  # PoolTimeout, OperationalError: the message says which
            raise CatalogError(f"cannot open catalog {describe(url)}: {exc}") from exc
        return PgConnection(raw, url=url, on_close=lambda c: pool.putconn(c.raw))
    path = str(target)
    if legacy:
        try:
            if read_only:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
            else:
                conn = sqlite3.connect(path, timeout=timeout)
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        except sqlite3.Error as exc:
            raise CatalogError(f"cannot open catalog {path}: {exc}") from exc
        return conn
    try:
        if read_only:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout,
                                   isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB if cache_kib is None else int(cache_kib)}")
        if not read_only:
            # a new file only (an existing catalog keeps its page size): a recording's row is
            # ~2.2 KB, one per 4 KB page, three per 8 KB page (bench: 8,150 -> 6,700 B per call)
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA secure_delete=ON")  # an erased row leaves no bytes in free pages
            # a long read (a snapshot held for minutes) stops checkpoints from reusing the WAL,
            # which grows with every write meanwhile (a bench filling 1,200 calls/s beside a
            # full-table read grew it to 44 GB and filled the disk); SQLite never shrinks the
            # file on its own: once a checkpoint has caught up, it is cut back to this size
            conn.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
    except sqlite3.Error as exc:
        raise CatalogError(f"cannot open catalog {path}: {exc}") from exc
    return conn


def tune_writer(conn: Any) -> None:
    """SQLite: settings of the one connection a process writes calls through (the group-commit
    writer, ``Catalog.shared_writer``): the longer checkpoint interval
    :data:`WRITER_CHECKPOINT_PAGES`, with the WAL cut back only beyond twice that.  (Statement
    journals stay where SQLite puts them: held in memory, SQLite's journal is a chunk list walked
    from its start at every statement's end, which made a long savepoint quadratic.)"""
    if is_postgres(conn):
        return
    try:
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={max(WAL_KEEP_BYTES, 2 * WRITER_CHECKPOINT_PAGES * page)}")
    except sqlite3.Error as exc:
        conn.close()
        raise CatalogError(f"cannot set up the catalog writer: {exc}") from exc


def table_columns(conn: Any, table: str) -> list[str]:
    """The columns of ``table`` in declaration order (empty if there is no such table)."""
    if is_postgres(conn):
        rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                            "AND table_schema = current_schema() ORDER BY ordinal_position",
                            (table,)).fetchall()
        return [str(r[0]) for r in rows]
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]


def compact(conn: Any) -> None:
    """Push freed pages out of reach after an erasure: SQLite truncates its WAL (secure_delete has
    zeroed the pages); PostgreSQL's VACUUM is left to autovacuum (a dead tuple is unreachable
    through SQL, and the erased numbers were only ever stored encrypted)."""
    if not is_postgres(conn):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def integrity_check(conn: Any) -> str:
    """The engine's own consistency check: 'ok' or what it found."""
    if is_postgres(conn):
        conn.execute("SELECT 1").fetchone()
        return "ok"
    return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def max_rowid(conn: Any, table: str) -> int:
    row = conn.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()
    return int(row[0] or 0)


def secure_delete(conn: Any) -> None:
    """Erased rows leave no bytes in free pages (SQLite's ``secure_delete``; see :func:`compact`)."""
    if not is_postgres(conn):
        conn.execute("PRAGMA secure_delete=ON")


def lock_writes(conn: Any) -> None:
    """Inside a transaction: be the only writer of the hash chains until it ends.  SQLite's
    ``BEGIN IMMEDIATE`` already holds the database's write lock; on PostgreSQL this takes the
    transaction-scoped advisory lock ``BEGIN IMMEDIATE`` takes (re-entrant), so two nodes never
    append to the ledger or the audit log from the same head."""
    if is_postgres(conn):
        from pbx_recorder.catalog.pg_connection import CATALOG_WRITE_LOCK

        conn.execute("SELECT pg_advisory_xact_lock(?)", (CATALOG_WRITE_LOCK,))


def issued_max(conn: Any, table: str) -> int:
    """The highest id ever issued in a chained table (``ledger``, ``audit_log``), deleted rows
    included: a chain whose tail was cut shows it.  SQLite keeps it in ``sqlite_sequence``
    (AUTOINCREMENT); on PostgreSQL the appends note it in ``catalog_settings``."""
    if is_postgres(conn):
        row = conn.execute("SELECT value FROM catalog_settings WHERE name = ?",
                           (f"issued:{table}",)).fetchone()
        return int(row[0]) if row else 0
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    except sqlite3.OperationalError:  # no AUTOINCREMENT table yet
        return 0
    return int(row[0]) if row and row[0] is not None else 0


def note_issued(conn: Any, table: str, seq: int) -> None:
    """Record ``seq`` as issued in ``table`` (PostgreSQL; SQLite's AUTOINCREMENT does it itself)."""
    if is_postgres(conn):
        conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) ON CONFLICT (name) "
                     "DO UPDATE SET value = excluded.value", (f"issued:{table}", str(int(seq))))


@contextlib.contextmanager
def pipelined(conn: Any) -> Iterator[None]:
    """Inside a write transaction: on PostgreSQL, statements are sent without waiting for each
    one's result (one round trip per read instead of one per statement; see
    ``PgConnection.pipelined``).  SQLite runs in-process: nothing to batch."""
    if is_postgres(conn):
        with conn.pipelined():
            yield
    else:
        yield


@contextlib.contextmanager
def write_transaction(conn: Any, failed: str = "catalog query failed") -> Iterator[Any]:
    """One write transaction (``BEGIN IMMEDIATE``: the writers' lock on either engine) for the
    block: committed when it ends, rolled back on any exception (a refusal too, never left open);
    a statement's error comes out as :class:`CatalogError` ``"<failed>: <error>"``."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, db_errors()):
            raise CatalogError(f"{failed}: {exc}") from exc
        raise


def release_memory(conn: Any) -> None:
    """Give back what the connection caches (SQLite's page cache: a long write of rows nobody
    reads again, an export's audit rows, would otherwise fill it to ``cache_size`` on top of the
    job's bounded memory).  PostgreSQL's cache is the server's: nothing to do here."""
    if not is_postgres(conn):
        conn.execute("PRAGMA shrink_memory")


def is_connection(obj: Any) -> bool:
    """``obj`` is a catalog connection (either engine), not a ``Catalog``."""
    return isinstance(obj, sqlite3.Connection) or is_postgres(obj)


def no_index_hint(conn: Any) -> str:
    """SQLite's ``NOT INDEXED`` (walk the table in key order, not through an index); PostgreSQL's
    planner takes no hints and needs none here."""
    return "" if is_postgres(conn) else "NOT INDEXED"
