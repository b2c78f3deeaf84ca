"""The resumable walk of a ``catalog migrate`` data step over ids in keyset batches.

Each batch is read outside any transaction (storage reads, seal checks: never inside the write
lock) and written in one transaction together with the walk's state (``step_state``): the cursor
and how many items were left undone so far.  A crash loses at most the batch under way; the next
run goes on after the last batch committed.  A walk that reaches the end is done when it left
nothing undone; otherwise the next run walks everything again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pbx_recorder.catalog import engine, step_state

T = TypeVar("T")
MAX_NAMED = 50  #: items a step names in its report (ids only); the rest are counted


class StepReport(Protocol):
    calls: int  # items walked
    done: bool
    skipped: bool  # done by an earlier run


def pending(conn: Any, name: str) -> bool:
    """Has the step still to run over this catalog (no walk of it ended with nothing left)?"""
    state = step_state.load(conn, name)
    return state is None or not state.get("done")


def name(errors: list[str], line: str) -> None:
    """One more item the step could not do, named in its report (at most :data:`MAX_NAMED`)."""
    if len(errors) < MAX_NAMED:
        errors.append(line)


def call_rows(conn: Any, ids: list[str], *, lock: bool = False) -> dict[str, dict[str, Any]]:
    """Call id -> its ``calls`` row, for ``ids``; ``lock`` (inside the batch's write transaction):
    on PostgreSQL locked until it ends, so no column changes between the step's check and its
    write (SQLite's BEGIN IMMEDIATE already excludes every other writer)."""
    if not ids:
        return {}
    locked = " FOR UPDATE" if lock and engine.is_postgres(conn) else ""
    cur = conn.execute(f"SELECT * FROM calls WHERE call_id IN ({','.join('?' * len(ids))}){locked}", ids)
    names = [d[0] for d in cur.description]
    rows = (dict(zip(names, r, strict=True)) for r in cur.fetchall())
    return {str(row["call_id"]): row for row in rows}


def start(conn: Any, name: str, force: bool) -> dict[str, Any] | None:
    """The state to walk from; None when an earlier walk finished the step (unless ``force``)."""
    state = step_state.load(conn, name)
    if state is not None and state.get("done") and not force:
        return None
    if state is None or state.get("done") or state.get("walked"):  # a new walk
        return {"cursor": "", "left": 0, "done": False}
    return state


def walk(conn: Any, name: str, state: dict[str, Any], *, ids: Callable[[str], list[str]],
         read: Callable[[list[str]], T], write: Callable[[T], None], left: Callable[[], int],
         walked: Callable[[int], None]) -> bool:
    """Walk from ``state`` to the end: ``ids(cursor)`` the next batch (empty at the end),
    ``read(batch)`` what to write (no transaction), ``write(read)`` in the batch's transaction,
    ``left()`` the items left undone so far in this run, ``walked(n)`` after each batch committed.
    Returns whether the step is done."""
    while True:
        batch = ids(str(state["cursor"]))
        left_before = left()
        found = read(batch)
        conn.execute("BEGIN IMMEDIATE")
        try:
            write(found)
            undone = int(state.get("left", 0)) + left() - left_before
            state = ({**state, "cursor": batch[-1], "left": undone} if batch
                     else {"cursor": "", "left": undone, "walked": True, "done": not undone})
            step_state.save(conn, name, state)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if not batch:
            return bool(state["done"])
        walked(len(batch))


def run(conn: Any, name: str, report: StepReport, *, force: bool, label: str,
        progress: Callable[[str, int], None] | None, ids: Callable[[str], list[str]],
        read: Callable[[list[str]], T], write: Callable[[T], None], left: Callable[[], int]) -> None:
    """A data step's whole run: skipped when an earlier walk finished it (unless ``force``), else
    :func:`walk` from where the last run stopped, ``report.calls`` counting the items walked
    (``progress(label, calls)`` after each batch) and ``report.done`` set at the end."""
    state = start(conn, name, force)
    if state is None:
        report.done = report.skipped = True
        return

    def walked(n: int) -> None:
        report.calls += n
        if progress is not None:
            progress(label, report.calls)

    report.done = walk(conn, name, state, ids=ids, read=read, write=write, left=left, walked=walked)
