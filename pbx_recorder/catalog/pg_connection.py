"""A PostgreSQL connection that speaks the catalog's SQL the way ``sqlite3`` does.

The catalog's statements are written once, in the subset of SQL that SQLite and PostgreSQL
share (``ON CONFLICT ... DO``, ``excluded.``, a ``rowid`` column that PostgreSQL has as an
identity column, ``COUNT(*) FROM (...) AS t``).  What differs is the driver surface, which this
module bridges, and nothing else:

* parameters: the catalog writes ``?`` (qmark, sqlite3's style); psycopg wants ``%s``.  The
  translation walks the statement, leaves quoted strings and identifiers alone and doubles a
  literal ``%``.  Each distinct statement is translated once (they are module constants).
* ``BEGIN IMMEDIATE`` (SQLite: take the write lock now) becomes ``BEGIN`` plus a
  transaction-scoped advisory lock on the catalog: the ledger and the audit chain append one
  entry after another across every node writing to the database, as they do on SQLite.
* rows: :class:`Row` reads by position and by column name, and ``dict(row)`` works, as
  ``sqlite3.Row`` does; ``executemany``, ``in_transaction`` and ``isolation_level`` (``None``:
  autocommit, which is how the catalog opens SQLite too) behave as the catalog uses them.
* Python ``bool`` is sent as an integer: the schema keeps SQLite's 0/1 flags.

No other rewriting happens: a statement that is not portable fails on PostgreSQL with the
server's own error (tests run the catalog on both engines to find them).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper

#: the advisory lock ``BEGIN IMMEDIATE`` takes: one writer at a time for chained appends
CATALOG_WRITE_LOCK = 0x70627872  # "pbxr"

_BEGIN_IMMEDIATE = ("BEGIN IMMEDIATE", "BEGIN IMMEDIATE TRANSACTION")


class _BoolAsInt(Dumper):
    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """``sql`` with qmark parameters turned into psycopg's ``%s`` (and literal ``%`` doubled)."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out)


class Row(tuple[Any, ...]):
    """A result row readable by position or column name, like ``sqlite3.Row``."""

    _names: tuple[str, ...]
    _index: dict[str, int]

    def __new__(cls, names: tuple[str, ...], index: dict[str, int], values: Sequence[Any]) -> Row:
        row = super().__new__(cls, values)
        row._names, row._index = names, index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._index[key])
            except KeyError:
                raise IndexError(f"no such column: {key}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _has_rows(res: pq.abc.PGresult | None) -> bool:
    """The result carries rows (what ``cursor.description is not None`` says, without building a
    ``Column`` for each of a ``calls`` row's 47 columns on every read)."""
    return res is not None and (res.nfields > 0 or res.status == pq.ExecStatus.TUPLES_OK)


@functools.lru_cache(maxsize=256)
def _names_index(names: tuple[str, ...]) -> dict[str, int]:
    return {n: i for i, n in enumerate(names)}


def _row_factory(cursor: Any) -> Any:
    res = cursor.pgresult
    if not _has_rows(res):
        return tuple
    encoding = cursor.connection.info.encoding
    names = tuple((res.fname(i) or b"").decode(encoding) for i in range(res.nfields))
    index = _names_index(names)

    def make(values: Sequence[Any]) -> Row:
        return Row(names, index, values)

    return make


class PgCursor:
    """The part of ``sqlite3.Cursor`` the catalog uses."""

    def __init__(self, cur: psycopg.Cursor[Any], pipeline: psycopg.Pipeline | None = None) -> None:
        self._cur = cur
        self._pipeline = pipeline  # the statement was queued (:meth:`PgConnection.pipelined`)

    def _result(self) -> bool:
        """Whether the statement returned rows; a queued statement is waited for first."""
        if self._pipeline is not None and self._cur.pgresult is None:
            self._pipeline.sync()  # send what is queued, read every result up to here
        return _has_rows(self._cur.pgresult)

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._result() else None

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall() if self._result() else []

    def fetchmany(self, size: int = 1) -> list[Any]:
        return self._cur.fetchmany(size) if self._result() else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cur) if self._result() else iter(())

    @property
    def rowcount(self) -> int:
        self._result()
        return self._cur.rowcount

    @property
    def description(self) -> Any:
        return self._cur.description

    def close(self) -> None:
        self._cur.close()


class PgConnection:
    """The part of ``sqlite3.Connection`` the catalog uses, over one psycopg connection."""

    engine = "postgresql"

    def __init__(self, raw: psycopg.Connection[Any], *, url: str = "", on_close: Any = None) -> None:
        self.raw = raw
        self.url = url  # what it was opened with (the schema migration connects there too)
        self.raw.autocommit = True  # explicit BEGIN / COMMIT, as on the catalog's SQLite connections
        self.raw.row_factory = _row_factory
        self.raw.adapters.register_dumper(bool, _BoolAsInt)
        self._on_close = on_close
        self._released = False
        self._pipeline: psycopg.Pipeline | None = None

    # -- sqlite3.Connection surface -------------------------------------------------
    isolation_level = None

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] | None = ()) -> PgCursor:
        stripped = sql.strip().rstrip(";").strip().upper()
        if stripped in _BEGIN_IMMEDIATE:
            self.raw.execute("BEGIN")
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (CATALOG_WRITE_LOCK,))
            return PgCursor(self.raw.cursor())
        cur = self.raw.cursor()
        if params:
            cur.execute(translate(sql), tuple(params))
        else:
            cur.execute(sql)  # no parameters: psycopg reads no placeholders
        return PgCursor(cur, self._pipeline)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> PgCursor:
        cur = self.raw.cursor()
        rows = [tuple(p) for p in seq]
        if rows:
            cur.executemany(translate(sql), rows)
        return PgCursor(cur, self._pipeline)

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        """Inside an explicit transaction: statements are sent without waiting for their results
        (libpq's pipeline mode), so a run of writes costs one round trip, not one each.  A
        statement's rows are waited for when they are read (``fetchone`` ...): the writes queued
        before it travel with it.  An error surfaces at that point or when the block ends, and
        the transaction can only be rolled back then, as after any failed statement.  Nested
        blocks join the outer one."""
        if self._pipeline is not None:
            yield
            return
        if not self.in_transaction:
            raise psycopg.ProgrammingError("pipelined() needs an open transaction (BEGIN first)")
        with self.raw.pipeline() as pipeline:
            self._pipeline = pipeline
            try:
                yield
            finally:
                self._pipeline = None

    def commit(self) -> None:
        if self.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.raw.execute("ROLLBACK")

    def __enter__(self) -> PgConnection:
        if not self.in_transaction:
            self.raw.execute("BEGIN")
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def close(self) -> None:
        """Give the connection back to its pool (or close it when it has none), once: after that
        the raw connection belongs to the pool, and this wrapper must never touch it again (its
        ``__del__`` closed the pooled connection here, so every request's released connection
        died when collected and the pool reconnected every other request)."""
        if self._released:
            return
        self._released = True
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close(self)
        elif not self.raw.closed:
            self.raw.close()

    def __del__(self) -> None:
        # a connection dropped without close() goes back to its pool, as an unreferenced sqlite3
        # connection closes itself: a command or request that forgets it must not shrink the pool
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown, pool already closed
            pass
