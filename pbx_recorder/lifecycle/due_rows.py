"""The recordings a retention or migration pass may have to act on, read through index ranges
(schema 14: ``recordings_due`` on ``(state, retention_class, created_at)``, and the partial
``recordings_retain_until``).

Both passes used to walk the recordings table in rowid order and let SQL drop rows that could not
be due: every live recording for retention, every hot one past the shortest ``cold_after_days`` for
migration -- minutes at 10 M calls, whatever was due.  Here each configured class with a period is
one index range per state (recordings of that class created before the class's cutoff), read in
keyset batches on ``(created_at, rowid)``; rows with an explicit ``retain_until`` come from the
partial index.  So a pass reads what may be due and nothing else.

This only narrows: the ranges hold every row the core could decide is due (a second of slack at
each cutoff, so float rounding never drops one), and the core (``retention.disposal_candidates``,
``retention.migration_candidates``) still decides each row. A class that is not configured, or
keeps forever, has no range: the core would keep its rows too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pbx_recorder.core import retention

#: seconds added to each cutoff: the range is a superset of what the core decides is due
SLACK_S = 1.0


def _walk(conn: Any, columns: Sequence[str], where: str, params: Sequence[Any], order: str,
          batch: int) -> Iterator[list[dict[str, Any]]]:
    """Rows of ``recordings`` matching ``where``, in batches, keyset on ``(order, rowid)``."""
    cols = ", ".join(columns)
    first = f"SELECT rowid, {cols} FROM recordings WHERE {where} ORDER BY {order}, rowid LIMIT ?"
    after = (f"SELECT rowid, {cols} FROM recordings WHERE {where} AND ({order}, rowid) > (?, ?) "
             f"ORDER BY {order}, rowid LIMIT ?")
    size = max(1, int(batch))
    got = conn.execute(first, (*params, size)).fetchall()
    at = list(columns).index(order) + 1
    while got:
        yield [dict(zip(columns, r[1:], strict=True)) for r in got]
        if len(got) < size:
            return
        got = conn.execute(after, (*params, got[-1][at], got[-1][0], size)).fetchall()


def retention_due(conn: Any, columns: Sequence[str], classes: Mapping[str, retention.ClassPolicy],
                  now: float, *, batch: int) -> Iterator[list[dict[str, Any]]]:
    """Live recordings whose retention may have ended by ``now``: without an explicit
    ``retain_until``, those of a class with a period created at least that period ago; and those
    whose explicit ``retain_until`` is not after ``now``."""
    for state in retention.LIVE_STATES:
        for name, cls in sorted(classes.items()):
            if cls.days is None or cls.days <= 0:
                continue  # kept forever (the core's retain_until is None)
            yield from _walk(conn, columns, "state = ? AND retention_class = ? AND retain_until IS NULL "
                             "AND created_at <= ?", (state, name, now - cls.days * retention.DAY + SLACK_S),
                             "created_at", batch)
    # the few rows with an explicit retain_until (set-class): the state is checked here, so the
    # partial index is the only one this range can use
    explicit = "retain_until IS NOT NULL AND retain_until <= ?"
    for chunk in _walk(conn, columns, explicit, (now,), "retain_until", batch):
        live = [r for r in chunk if r.get("state") in retention.LIVE_STATES]
        if live:
            yield live


def migration_due(conn: Any, columns: Sequence[str], classes: Mapping[str, retention.ClassPolicy],
                  hot_tiers: Sequence[str], now: float, *, batch: int) -> Iterator[list[dict[str, Any]]]:
    """Recordings on a hot tier (state stored/verified) of a class with ``cold_after_days``,
    created at least that long ago."""
    tiers = sorted(set(hot_tiers))
    if not tiers:
        return
    marks = ", ".join("?" * len(tiers))
    for state in ("stored", "verified"):
        for name, cls in sorted(classes.items()):
            if cls.cold_after_days is None:
                continue
            cutoff = now - cls.cold_after_days * retention.DAY + SLACK_S
            yield from _walk(conn, columns, f"state = ? AND retention_class = ? AND created_at <= ? "
                             f"AND tier IN ({marks})", (state, name, cutoff, *tiers), "created_at", batch)
