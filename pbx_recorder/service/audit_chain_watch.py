"""The audit page's chain status without recomputing millions of rows on every page load.

A full pass (every row recomputed, as ``audit verify`` does) runs at most every
``FULL_EVERY_S`` per service process; in between, only the rows written since the last clean
pass are recomputed and linked to it (``audit_status.check`` with ``after_id``), and the signed
head is checked each time.  Any problem found clears the memory, so the next load runs a full pass
again.  The status says which kind of pass it was and when.
"""

from __future__ import annotations

import threading
from typing import Any

from pbx_recorder import audit_status
from pbx_recorder.audit_status import ChainStatus

FULL_EVERY_S = 300.0


class ChainWatch:
    def __init__(self, full_every_s: float = FULL_EVERY_S) -> None:
        self.full_every_s = full_every_s
        self._lock = threading.Lock()
        self._last_full: float | None = None
        self._cursor: tuple[int, str] = (0, "")

    def status(self, conn: Any, config: Any, now: float, *, force_full: bool = False) -> ChainStatus:
        with self._lock:
            due = force_full or self._last_full is None or now - self._last_full >= self.full_every_s
            full = due or not self._cursor[0]
            status = audit_status.check(conn, config, *((0, "") if full else self._cursor))
            if not status.ok:
                self._last_full, self._cursor = None, (0, "")
                return status
            if status.last_id:
                self._cursor = (status.last_id, status.last_hash)
            if full:
                self._last_full = now
            return status


def watch_of(app: Any) -> ChainWatch:
    """The application's one watch (created on first use)."""
    watch = getattr(app.state, "audit_chain_watch", None)
    if watch is None:
        watch = ChainWatch()
        app.state.audit_chain_watch = watch
    return watch
