"""Group commit: the per-call writes of several threads share one catalog transaction.

The daemon, the pipeline and the shipper write one call or one recording at a time, each in its
own transaction; on SQLite (``synchronous`` FULL in WAL mode) and on PostgreSQL each commit waits
for the log to reach the disk, so a writer that commits alone is bound by the disk's flush rate,
not by its CPU.  :meth:`GroupCommit.run` queues a unit of work (a function doing the catalog
writes of one call or recording) and returns its result once the transaction holding it has
committed.  The thread that finds no commit under way becomes the *leader*: it takes every unit
queued so far (after waiting ``window_s`` for more, when set), runs them one after the other on
its own connection inside one ``BEGIN IMMEDIATE`` transaction, and commits once; units that arrive
meanwhile are taken by the next leader.  Alone, a writer commits at once as before; under
concurrency the flushes are shared.

- A unit that raises is rolled back alone and its caller gets its exception; the others of the
  group go on.  The group runs first without savepoints (a savepoint copies every page a unit
  changes to SQLite's statement journal, and is a subtransaction on PostgreSQL): when a unit
  raises, the whole transaction is rolled back and the group runs again with each unit inside
  its own ``SAVEPOINT`` (a group of one is not run again: its rollback is the unit's).  A unit
  may therefore run twice, the first time rolled back entirely: it must do nothing but catalog
  writes through the ``Catalog`` (as every unit does).
- A failed ``BEGIN`` or ``COMMIT`` (disk full, a lost PostgreSQL connection) fails every unit of
  the group: no caller is told its write is stored, and each retries as it would have after a
  failed transaction of its own (the shipper keeps the entry in its spool).
- :meth:`run` returns only after the commit: what a caller does next (the shipper's
  ``after_commit`` hooks, which sign and publish the ledger head) never sees a transaction that
  could still roll back.
- A unit runs on the leader's thread: it must reach the catalog through the ``Catalog`` it was
  given (this thread's connection inside the transaction), not through a connection it holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pbx_recorder.errors import CatalogError

T = TypeVar("T")

#: the most units one transaction takes (a burst beyond it is split over several commits)
MAX_GROUP = 128


@dataclass(eq=False)
class _Unit(Generic[T]):
    work: Callable[[], T]
    result: Any = None
    error: BaseException | None = None
    done: bool = field(default=False)


class GroupCommit:
    """Runs units of catalog work from many threads in shared transactions (see the module)."""

    def __init__(self, catalog: Any, *, window_s: float = 0.0, max_group: int = MAX_GROUP,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.catalog = catalog  # pbx_recorder.catalog.Catalog: its transaction() and this thread's connection
        self.window_s, self.max_group, self.clock = window_s, max(1, max_group), clock
        self._cond = threading.Condition()
        self._queue: list[_Unit[Any]] = []
        self._leading = False
        #: transactions committed and units they held (tests and the bench read them)
        self.commits = 0
        self.units = 0

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work()`` in a shared transaction; its result once that transaction has committed.
        Raises what ``work`` raised (its writes rolled back), or :class:`CatalogError` when the
        transaction could not begin or commit (nothing of the group is stored)."""
        [(result, error)] = self.run_all([work])
        if error is not None:
            raise error
        return result  # type: ignore[no-any-return]

    def run_all(self, works: Sequence[Callable[[], Any]]) -> list[tuple[Any, BaseException | None]]:
        """Several units of one caller (the daemon's batch of call rows) queued at once: each
        one's (result, error), in order, once the transactions holding them have committed."""
        own = getattr(self.catalog._local, "conn", None)  # (a waiting thread takes no connection)
        if own is not None and own.in_transaction:  # a unit calling back: it is in this transaction
            return [_run_inline(work) for work in works]
        units: list[_Unit[Any]] = [_Unit(work) for work in works]
        with self._cond:
            self._queue.extend(units)
        while True:
            with self._cond:
                while self._leading and not all(u.done for u in units):
                    self._cond.wait()
                if all(u.done for u in units):
                    break
                self._leading = True
            self._lead()
        return [(u.result, u.error) for u in units]

    def _lead(self) -> None:
        """Take the queued units (this thread's among them), run and commit them, wake their callers."""
        if self.window_s > 0:
            deadline = self.clock() + self.window_s
            with self._cond:
                while len(self._queue) < self.max_group and self.clock() < deadline:
                    self._cond.wait(max(0.0, deadline - self.clock()))
        with self._cond:
            group, self._queue = self._queue[: self.max_group], self._queue[self.max_group:]
        try:
            self._commit(group)
        finally:
            with self._cond:
                for unit in group:
                    unit.done = True
                self._leading = False
                self._cond.notify_all()

    def run_alone(self, work: Callable[[], T]) -> T:
        """``work()`` in a transaction of its own, as the leader (the bulk path: many calls, all or
        nothing, no savepoint to journal them into), through the writer connection; units queued
        meanwhile go to the next leader.  Inside a transaction the caller has open, it runs there."""
        from pbx_recorder.recording import ledger  # (not at import: the ledger imports the catalog package)

        own = getattr(self.catalog._local, "conn", None)
        if own is not None and own.in_transaction:
            return work()
        with self._cond:
            while self._leading:
                self._cond.wait()
            self._leading = True
        try:
            with self._as_thread_conn(self._writer()):
                with self.catalog.transaction() as conn, ledger.appending(conn):
                    return work()
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()

    def _writer(self) -> Any:
        """SQLite: the catalog's one writer connection, whose page cache outlives the group
        (Catalog.shared_writer); None elsewhere (the leader's own connection)."""
        shared = getattr(self.catalog, "shared_writer", None)
        return shared() if shared is not None else None

    @contextmanager
    def _as_thread_conn(self, writer: Any) -> Iterator[None]:
        """The leader's work reaches ``writer`` as this thread's connection meanwhile (one leader
        at a time); None: this thread's own connection."""
        local = self.catalog._local
        own = getattr(local, "conn", None)
        if writer is not None:
            local.conn = writer
        try:
            yield
        finally:
            if writer is not None:
                local.conn = own

    def _commit(self, group: list[_Unit[Any]]) -> None:
        from pbx_recorder.recording import ledger  # (not at import: the ledger imports the catalog package)

        try:
            writer = self._writer()
        except Exception as exc:  # noqa: BLE001 - it could not be opened: the group fails, as at BEGIN
            _fail(group, exc)
            return
        with self._as_thread_conn(writer):
            self._commit_on(group, ledger)

    def _commit_on(self, group: list[_Unit[Any]], ledger: Any, savepoints: bool = False) -> None:
        """The group in one transaction: first without savepoints; after a unit raised, again
        with each unit inside its own (``savepoints``)."""
        try:
            # the ledger's head is carried from one append to the next through the group (the
            # transaction holds the write lock), and read again after a unit is rolled back
            with self.catalog.transaction() as conn, ledger.appending(conn):
                for unit in group:
                    if savepoints:
                        conn.execute("SAVEPOINT group_unit")
                    try:
                        unit.result = unit.work()
                    except Exception as exc:  # noqa: BLE001 - the unit's caller gets it; the group goes on
                        if not savepoints:
                            raise _UnitFailed(unit, exc) from exc  # the whole transaction rolls back
                        conn.execute("ROLLBACK TO SAVEPOINT group_unit")
                        ledger.reread_head(conn)
                        unit.error = exc
                    if savepoints:
                        conn.execute("RELEASE SAVEPOINT group_unit")
        except _UnitFailed as failed:
            if len(group) == 1:  # the rollback was the unit's own (nothing was committed)
                failed.unit.error = failed.error
                return
            for unit in group:
                unit.result = None
            self._commit_on(group, ledger, savepoints=True)
            return
        except BaseException as exc:  # noqa: BLE001 - BEGIN/COMMIT failed, or the leader was interrupted
            _fail(group, exc)
            if not isinstance(exc, Exception):
                raise
            return
        with self._cond:
            self.commits += 1
            self.units += len(group)


class _UnitFailed(Exception):
    """A unit raised in a group run without savepoints: the transaction is rolled back."""

    def __init__(self, unit: _Unit[Any], error: Exception) -> None:
        super().__init__(str(error))
        self.unit, self.error = unit, error


def _fail(group: list[_Unit[Any]], exc: BaseException) -> None:
    """The group's transaction failed: every unit that has no error of its own gets this one
    (none of them is reported stored)."""
    failed = exc if isinstance(exc, CatalogError) else CatalogError(f"group commit failed: {exc}")
    if failed is not exc:
        failed.__cause__ = exc
    for unit in group:
        if unit.error is None:
            unit.result, unit.error = None, failed


def _run_inline(work: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return work(), None
    except Exception as exc:  # noqa: BLE001 - handed to the caller, as from a group
        return None, exc
