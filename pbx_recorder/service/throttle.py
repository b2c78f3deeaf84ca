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

:func:`admit` is the one implementation: the service (``api_calls``) and the CLI run by root for
a named operator (``calls search``) both go through it, so the rule is the same on every path.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from pbx_recorder import audit_trail
from pbx_recorder.catalog.queries import CallFilters
from pbx_recorder.lifecycle.journal import Tx

FULL_ACTION = "calls.search.number"
LAST4_ACTION = "calls.search.last4"


def number_kind(f: CallFilters) -> str | None:
    """'full', 'last4' or None: what kind of number the search names (full wins).  An agent named
    by a dial string with more than 4 digits (a remote agent's mobile, ``Local/<number>@...``:
    masked in every list) is a full number too: its exact match was an unthrottled oracle for
    the digits the mask hides (session-45 review).  So is a keyword with more than 4 digits (the
    marks' text is searched as stored; shown, its numbers are masked); one with 1-4 is audited as
    a last-4 search."""
    kinds = [("full" if sum(c.isdigit() for c in v) > 4 else "last4") for v in (f.caller, f.callee) if v]
    if f.agent and sum(c.isdigit() for c in f.agent) > 4:
        kinds.append("full")
    # a keyword is looked for in the marks' text as stored, where a number typed into a note is
    # whole (shown masked): digits in it probe those numbers (since session 46)
    digits = sum(c.isdigit() for c in f.keyword or "")
    if digits:
        kinds.append("full" if digits > 4 else "last4")
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


def admit(conn: sqlite3.Connection, *, actor: str, role: str, kind: str, detail: dict[str, Any], now: float,
          limit: int, window_s: float, exempt: bool) -> int:
    """Audit one number-valued search (``kind`` 'full' or 'last4'); 0 when it may run, else the
    seconds to wait (the search is then audited as ``throttled:...``).  ``exempt``: the role
    holds unmask (it sees the numbers anyway)."""
    action = FULL_ACTION if kind == "full" else LAST4_ACTION
    retry = 0
    with Tx(conn):  # the catalog's write lock: the count and the append are one step for every node
        if kind == "full" and not exempt and recent_full_searches(conn, actor, now, window_s) >= limit:
            oldest = oldest_in_window(conn, actor, now, window_s)
            retry = max(1, math.ceil((oldest or now) + window_s - now))
            action = "throttled:" + FULL_ACTION
        audit_trail.record(conn, actor=actor, role=role, action=action, target="", detail=detail, now=now)
    return retry
