"""The number-search rule: how a user who may not unmask is kept from turning masked search into
an oracle for full numbers.

A search by a full number (more than 4 digits) from a role without ``calls.unmask`` is allowed
``web.number_searches`` times (default 20) per ``web.number_search_window_s`` (default 600 s) per
user; the next one answers 429 with ``Retry-After`` and is audited as
``throttled:calls.search.number``.  The memory of the rule is the audit log itself (rows
``calls.search.number`` of that user in the window, counted through the ``(actor, action, at)``
index) in the same transaction as the new row, under the catalog's write lock, so it holds across
restarts, across every node on one catalog and across parallel requests.  A last-4 search shows
nothing the masked list does not, and is audited but never throttled.
"""

from __future__ import annotations

import sqlite3

from pbx_recorder.catalog.queries import CallFilters

FULL_ACTION = "calls.search.number"
LAST4_ACTION = "calls.search.last4"


def number_kind(f: CallFilters) -> str | None:
    """'full', 'last4' or None: what kind of number the search names (full wins)."""
    kinds = [("full" if sum(c.isdigit() for c in v) > 4 else "last4") for v in (f.caller, f.callee) if v]
    if not kinds:
        return None
    return "full" if "full" in kinds else "last4"


def recent_full_searches(conn: sqlite3.Connection, user: str, now: float, window_s: float) -> int:
    row = conn.execute("SELECT COUNT(*) FROM audit_log WHERE actor = ? AND action = ? AND at > ?",
                       (user, FULL_ACTION, now - window_s)).fetchone()
    return int(row[0])


def oldest_in_window(conn: sqlite3.Connection, user: str, now: float, window_s: float) -> float | None:
    row = conn.execute("SELECT MIN(at) FROM audit_log WHERE actor = ? AND action = ? AND at > ?",
                       (user, FULL_ACTION, now - window_s)).fetchone()
    return None if row is None or row[0] is None else float(row[0])
