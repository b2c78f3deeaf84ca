"""The per-client-address login limit, in addition to the per-account lockout.

An address that failed ``web.login_failures_per_ip`` logins (default 20: wrong password, unknown
name, locked or disabled account, wrong TOTP code) within ``web.login_ip_window_s`` (default
600 s) gets 429 with ``Retry-After`` for its next login, audited as ``throttled:login``.  The
lockout stops guessing one account's password; this stops one address trying one password on
many accounts (spraying).  An IPv6 client is counted by its /64 network (one host can change its
address within it at will).

Like the number-search rule (:mod:`pbx_recorder.service.throttle`) the memory is the audit log:
each failure writes a row ``login.failed.client`` whose actor is ``client:<address>``, counted
through the ``(actor, action, at)`` index, so the limit holds across restarts and across every
node on one catalog.  Behind a proxy the address is the one ``web.trusted_proxies`` lets through.
"""

from __future__ import annotations

import ipaddress
import math
import sqlite3
from typing import Any

from pbx_recorder import audit_trail

ACTION = "login.failed.client"


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


def record(conn: sqlite3.Connection, client: str, now: float) -> None:
    audit_trail.record(conn, actor=actor_of_client(client), role="", action=ACTION, target=client[:64],
                       detail={"client": client[:64]}, now=now)


def retry_after(conn: sqlite3.Connection, client: str, now: float, web: Any) -> int | None:
    """Seconds until the address may try again, or None while it is under the limit."""
    window = float(web.login_ip_window_s)
    row = conn.execute("SELECT COUNT(*), MIN(at) FROM audit_log WHERE actor = ? AND action = ? AND at > ?",
                       (actor_of_client(client), ACTION, now - window)).fetchone()
    if int(row[0]) < int(web.login_failures_per_ip):
        return None
    # the count drops below the limit once enough of the oldest failures leave the window
    rows = conn.execute("SELECT at FROM audit_log WHERE actor = ? AND action = ? AND at > ? ORDER BY at "
                        "LIMIT ?", (actor_of_client(client), ACTION, now - window,
                                    int(row[0]) - int(web.login_failures_per_ip) + 1)).fetchall()
    return max(1, math.ceil(float(rows[-1][0]) + window - now))
