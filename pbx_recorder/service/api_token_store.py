"""API tokens for automation (table ``api_tokens``): creation, lookup, listing, revocation.

A token is ``pbxr_`` + 256 random bits (``secrets``), shown once at creation; the catalog keeps
its SHA-256 only.  Each token carries a role whose verbs are a subset of its owner's (checked at
creation and again at every use, so demoting the owner narrows or voids their tokens) and an
expiry (at most ``web.token_max_days``).  A revoked or expired token, or one whose owner is
disabled, answers 401.  ``last_used`` is rewritten at most every ``web.token_touch_s`` seconds.  With
``web.secret_key_file`` the row is sealed (:mod:`~pbx_recorder.service.access_seal`): a row
written by hand (the SHA-256 of a token someone chose, a wider role, a later expiry, a revoked flag
cleared) is no token; the row as it was before its revocation, put back with its seal of then,
still is until it expires (``access_seal``: no freshness).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

from pbx_recorder.errors import ConfigError, NotFound
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import access_seal
from pbx_recorder.service.access_seal import AccessSeal
from pbx_recorder.service.roles import PERMISSIONS, ROLES

PREFIX = "pbxr_"
MAX_TOKEN_CHARS = 128
MAX_LABEL = 64


@dataclass(frozen=True, slots=True)
class ApiToken:
    id_hash: str
    user: str
    role: str
    label: str
    created_at: float
    expires_at: float
    last_used: float | None
    revoked: bool


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def within(role: str, owner_role: str) -> bool:
    """True when ``role``'s verbs are a subset of ``owner_role``'s (and both are known)."""
    if role not in ROLES or owner_role not in ROLES:
        return False
    return PERMISSIONS[role] <= PERMISSIONS[owner_role]


_COLUMNS = "id_hash, user_name, role, label, created_at, expires_at, last_used, revoked, seal"


def _token(row: tuple) -> ApiToken:  # type: ignore[type-arg]
    return ApiToken(str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]), float(row[5]),
                    None if row[6] is None else float(row[6]), bool(row[7]))


def _sealed(row: tuple, seal: AccessSeal | None) -> bool:  # type: ignore[type-arg]
    """True when the token row (read with :data:`_COLUMNS`) holds its seal (or none is configured)."""
    return access_seal.valid(seal, "api_tokens", {"id_hash": row[0], "user_name": row[1], "role": row[2],
                                                  "created_at": row[4], "expires_at": row[5],
                                                  "revoked": row[7], "seal": row[8]})


def create(conn: sqlite3.Connection, owner: str, owner_role: str, role: str, days: int, label: str,
           now: float, *, max_days: int, seal: AccessSeal | None = None) -> tuple[str, ApiToken]:
    """A new token of ``owner``: (the token, shown once; its record).  ConfigError when the role
    is wider than the owner's, the lifetime is not 1..``max_days`` days or the label is too long."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    if not within(role, owner_role):
        raise ConfigError(f"role {role} is wider than {owner}'s role {owner_role}")
    if not 1 <= days <= max_days:
        raise ConfigError(f"a token lives 1 to {max_days} days (web.token_max_days)")
    if len(label) > MAX_LABEL or not label.isprintable():
        raise ConfigError(f"a label has at most {MAX_LABEL} printable characters")
    token = PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(digest(token), owner, role, label, now, now + days * 86400.0, None, False)
    with Tx(conn):
        access_seal.insert(conn, seal, "api_tokens", {
            "id_hash": record.id_hash, "user_name": owner, "role": role, "label": label, "created_at": now,
            "expires_at": record.expires_at, "last_used": None, "revoked": 0})
    return token, record


def resolve(conn: sqlite3.Connection, token: str, now: float, *, touch_s: float,
            seal: AccessSeal | None = None) -> ApiToken | None:
    """The live token ``token`` is, else None (unknown, revoked, expired, or its row fails its seal)."""
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE id_hash = ?", (digest(token),)).fetchone()
    if row is None or not _sealed(row, seal):
        return None
    found = _token(row)
    if found.revoked or found.expires_at <= now:
        return None
    if found.last_used is None or now - found.last_used >= touch_s:
        with Tx(conn):
            conn.execute("UPDATE api_tokens SET last_used = ? WHERE id_hash = ?", (now, found.id_hash))
    return found


def listing(conn: sqlite3.Connection, owner: str | None = None,
            seal: AccessSeal | None = None) -> list[ApiToken]:
    """The tokens (of ``owner``), oldest first; a row that fails its seal is none."""
    sql = f"SELECT {_COLUMNS} FROM api_tokens" + (" WHERE user_name = ?" if owner else "")
    rows = conn.execute(sql + " ORDER BY created_at, id_hash", (owner,) if owner else ()).fetchall()
    return [_token(r) for r in rows if _sealed(r, seal)]


def revoke(conn: sqlite3.Connection, id_prefix: str, seal: AccessSeal | None = None) -> ApiToken:
    """Revoke the token whose hash starts with ``id_prefix`` (at least 12 hex digits, unique)."""
    id_prefix = id_prefix.lower()
    if len(id_prefix) < 12 or any(c not in "0123456789abcdef" for c in id_prefix):
        raise NotFound("a token is named by at least 12 hex digits of its id")
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE id_hash LIKE ?",
                        (id_prefix + "%",)).fetchall()
    if len(rows) != 1:
        raise NotFound(f"no single token with id {id_prefix}")
    with Tx(conn):
        if _sealed(rows[0], seal):
            access_seal.update(conn, seal, "api_tokens", {"id_hash": rows[0][0]}, {"revoked": 1})
        else:  # a forged row: it was never a token; revoking it removes it
            conn.execute("DELETE FROM api_tokens WHERE id_hash = ?", (rows[0][0],))
    return _token(rows[0])
