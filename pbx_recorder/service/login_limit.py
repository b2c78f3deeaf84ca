"""The per-client-address login limit, in addition to the per-account lockout.

An address that failed ``web.login_failures_per_ip`` logins (default 20: wrong password, unknown
name, locked or disabled account, wrong TOTP code) within ``web.login_ip_window_s`` (default
600 s) gets 429 with ``Retry-After`` for its next login, audited as ``throttled:login``.  The
lockout stops guessing one account's password; this stops one address trying one password on
many accounts (spraying).  An IPv6 client is counted by its /64 network (one host can change its
address within it at will).

Like the number-search rule (:mod:`pbx_recorder.service.throttle`) the memory is the audit log,
rows whose actor is ``client:<address>``, counted through the ``(actor, action, at)`` index, so
the limit holds across restarts and across every node on one catalog.  Behind a proxy the
address is the one ``web.trusted_proxies`` lets through.

An attempt is counted *before* its password or code is checked (:func:`begin`: the count and a
``login.attempt.client`` row in one transaction under the catalog's write lock), and a login that
passes writes ``login.passed.client``: the failures are the attempts that did not pass, those
still in flight included.  Before (session 45) a failure was written after the check, so logins
sent at once all passed the test made before any of them failed: a spray got the limit plus the
service's worker threads per window.  A process that dies mid-check leaves its attempt counted
(fail closed).  ``login.failed.client`` rows (failures counted one by one: a second-factor
confirmation by a logged-in user, and rows of older versions) count too.
"""

from __future__ import annotations

import ipaddress
import math
import sqlite3
from typing import Any

from pbx_recorder import audit_trail
from pbx_recorder.lifecycle.journal import Tx

ACTION = "login.failed.client"  #: a failure counted on its own
ATTEMPT = "login.attempt.client"  #: an attempt counted before its check
PASSED = "login.passed.client"  #: ... that passed


def actor_of_client(client: str) -> str:
    """Whose failures count together: an IPv4 address, or the /64 network of an IPv6 one (a
    single IPv6 host usually holds a whole /64 and can try from a new address every time)."""
    return f"client:{limited_network(client)[:64]}"


def limited_network(client: str) -> str:
    try:
        address = ipaddress.ip_address(client.strip("[]"))
    except ValueError:  # (not an address: a test client's name, a proxy that sent garbage)
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # an IPv4 client on a dual-stack socket
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def record(conn: sqlite3.Connection, client: str, now: float, action: str = ACTION) -> None:
    audit_trail.record(conn, actor=actor_of_client(client), role="", action=action, target=client[:64],
                       detail={"client": client[:64]}, now=now)


def begin(conn: sqlite3.Connection, client: str, now: float, web: Any) -> int | None:
    """Count an attempt from ``client`` before it is checked: None (counted as a failure until
    :func:`passed`), or the seconds until the address may try again (nothing counted)."""
    with Tx(conn):
        retry = retry_after(conn, client, now, web)
        if retry is None:
            record(conn, client, now, ATTEMPT)
    return retry


def passed(conn: sqlite3.Connection, client: str, now: float) -> None:
    """The attempt :func:`begin` counted passed its check."""
    record(conn, client, now, PASSED)


def failures(conn: sqlite3.Connection, client: str, since: float) -> int:
    """The failed logins of ``client``'s address after ``since``: the failures counted one by one
    plus the attempts that did not pass (those in flight included)."""
    counts = dict(conn.execute("SELECT action, COUNT(*) FROM audit_log WHERE actor = ? "
                               "AND action IN (?, ?, ?) AND at > ? GROUP BY action",
                               (actor_of_client(client), ACTION, ATTEMPT, PASSED, since)).fetchall())
    return int(counts.get(ACTION, 0)) + max(0, int(counts.get(ATTEMPT, 0)) - int(counts.get(PASSED, 0)))


def retry_after(conn: sqlite3.Connection, client: str, now: float, web: Any) -> int | None:
    """Seconds until the address may try again, or None while it is under the limit."""
    window, limit = float(web.login_ip_window_s), int(web.login_failures_per_ip)
    actor, since = actor_of_client(client), now - window
    failed = failures(conn, client, since)
    if failed < limit:
        return None
    # the count drops below the limit once enough of the oldest failures leave the window (an
    # attempt that passed among them: the answer is early, and the next try is told again)
    rows = conn.execute("SELECT at FROM audit_log WHERE actor = ? AND action IN (?, ?) AND at > ? "
                        "ORDER BY at LIMIT ?",
                        (actor, ACTION, ATTEMPT, since, failed - limit + 1)).fetchall()
    return max(1, math.ceil(float(rows[-1][0]) + window - now))
