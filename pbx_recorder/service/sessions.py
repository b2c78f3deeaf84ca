"""Server-side sessions of the operator service (table ``sessions``).

A session token (256 random bits, ``secrets``) lives only in the client's cookie; the catalog keeps
its SHA-256, so a catalog backup or a read of the table lets no one act as a logged-in user.  The
same goes for the session's CSRF token: the client gets it at login (and a page in its
``<meta name="csrf-token">``), and sends it back in the ``X-CSRF-Token`` header of every
state-changing request; the service compares its SHA-256 with the stored one in constant time.
The CSRF token is derived from the session token (:func:`csrf_for`: HMAC-SHA256 keyed by the
session token), so a page rendered for the cookie's holder can carry it while the catalog keeps
hashes only; a cross-site page cannot derive it (it never sees the HttpOnly cookie).

A session ends after ``idle`` seconds without a request and ``absolute`` seconds after login,
whichever comes first; an expired session is deleted when it is next presented.  Login always
creates a new session (a token presented at login is ended first: no fixation).

With ``web.secret_key_file`` the row is sealed (:mod:`~pbx_recorder.service.access_seal`): a row
written by hand into the catalog (the SHA-256 of a token someone chose, another user's name on
one's own session, a stage moved past the second factor) is not a session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass

from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import access_seal
from pbx_recorder.service.access_seal import AccessSeal

TOKEN_BYTES = 32
TOUCH_EVERY_S = 15.0  #: last_seen is rewritten at most this often (not on every request)
MAX_TOKEN_CHARS = 128
_CSRF_LABEL = b"pbx-recorder csrf v1"


@dataclass(frozen=True, slots=True)
class Session:
    id_hash: str
    user: str
    csrf_hash: str
    created_at: float
    last_seen: float
    stage: str = "ok"  #: 'totp': a code is still due; 'enrol': TOTP is required and not enrolled


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_for(token: str) -> str:
    """The CSRF token of the session whose token is ``token`` (HMAC-SHA256, URL-safe base64)."""
    mac = hmac.new(token.encode("utf-8"), _CSRF_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def create(conn: sqlite3.Connection, user: str, client: str, now: float, *, idle: float,
           absolute: float, stage: str = "ok", seal: AccessSeal | None = None) -> tuple[str, str]:
    """A new session of ``user``: (session token, CSRF token), both shown to the client once.
    Sessions of anyone that have expired are deleted on the way (the table does not grow with
    sessions never presented again)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    csrf = csrf_for(token)
    with Tx(conn):
        conn.execute("DELETE FROM sessions WHERE last_seen <= ? OR created_at <= ?",
                     (now - idle, now - absolute))
        access_seal.insert(conn, seal, "sessions", {
            "id_hash": digest(token), "user_name": user, "csrf_hash": digest(csrf), "created_at": now,
            "last_seen": now, "client": client[:200], "stage": stage})
    return token, csrf


def lookup(conn: sqlite3.Connection, token: str | None, now: float, *, idle: float,
           absolute: float, seal: AccessSeal | None = None) -> Session | None:
    """The live session ``token`` names (its last_seen refreshed), else None (expired ones deleted;
    with ``seal``, a row that fails its seal is none)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    id_hash = digest(token)
    row = conn.execute(f"SELECT {access_seal.columns('sessions')}, last_seen FROM sessions WHERE id_hash = ?",
                       (id_hash,)).fetchone()
    if row is None:
        return None
    found = access_seal.as_row("sessions", row[:-1])
    if not access_seal.valid(seal, "sessions", found):
        return None
    session = Session(str(found["id_hash"]), str(found["user_name"]), str(found["csrf_hash"]),
                      float(found["created_at"]), float(row[-1]), str(found["stage"]))
    if now - session.last_seen >= idle or now - session.created_at >= absolute:
        end_hash(conn, id_hash)
        return None
    if now - session.last_seen >= TOUCH_EVERY_S:
        with Tx(conn):
            conn.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, id_hash))
    return session


def end(conn: sqlite3.Connection, token: str | None) -> None:
    if token and len(token) <= MAX_TOKEN_CHARS:
        end_hash(conn, digest(token))


def end_hash(conn: sqlite3.Connection, id_hash: str) -> None:
    with Tx(conn):
        conn.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))


def csrf_ok(session: Session, presented: str | None) -> bool:
    if not presented or len(presented) > MAX_TOKEN_CHARS:
        return False
    return hmac.compare_digest(digest(presented), session.csrf_hash)
