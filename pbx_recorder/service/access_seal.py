"""Seals on the rows that decide who may do what in the operator service.

The service's access control lives in the catalog: accounts and roles (``users``), teams
(``user_teams``, ``team_agents``), sessions, API tokens, QA assignments and four-eyes replay
grants; and since schema 23 the QA rows that grade people (scorecards, reviews: a row that fails
its seal is not shown, counted in a report or edited).  Without a seal, anyone who can write the
catalog (a PostgreSQL DBA, a stolen database password) could make themselves an admin, mint a
session or an API token by writing the SHA-256 of a token they chose, add an agent to their team,
write a replay grant, or change an agent's grade.

With ``web.secret_key_file`` set, every such row carries ``seal``: HMAC-SHA256 over the table's
name and the row's security columns (:data:`FIELDS`), keyed by a key derived (HKDF-SHA256) from
that file, which only the recorder's own account (and root) can read.  The service and the
``users`` CLI write the seal with every insert and every change of those columns
(:func:`insert`, :func:`update`; an update first checks the row's current seal and refuses a row
that fails it, so a change never launders a forged value); every read that decides access checks
it (:func:`valid`) and ignores a row that fails (fail closed: the account cannot log in, the
session or token is not one, the agent or the call is not in the scope, the grant is not
honoured), logging the row.  Columns outside the seal (failed logins, last use, language) change
nothing a reader could widen.

What a seal cannot tell (no freshness: nothing outside the catalog counts versions): a row put
back to a value it once had, with the seal it had then (a demoted admin's older row, a token's
row before its revocation), or a row the recorder deleted put back with its seal (an ended
session until its absolute timeout, an agent removed from a team, an assignment withdrawn); the
audit log keeps every change for that question.
Without ``web.secret_key_file`` no row is sealed or checked (as before).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from pbx_recorder.catalog import schema_access_seal
from pbx_recorder.errors import CatalogError
from pbx_recorder.service.secret_box import subkey

log = logging.getLogger(__name__)

PREFIX = "a1."
_INFO = b"pbx-recorder access rows v1"

#: each sealed table's security columns, in the order the seal covers them
FIELDS: dict[str, tuple[str, ...]] = {
    "users": ("name", "role", "password_hash", "disabled", "totp_secret", "totp_last_step"),
    "user_teams": ("user_name", "team"),
    "team_agents": ("team", "agent"),
    "sessions": ("id_hash", "user_name", "csrf_hash", "created_at", "stage"),
    "api_tokens": ("id_hash", "user_name", "role", "created_at", "expires_at", "revoked"),
    "qa_assignments": ("call_id", "reviewer"),
    "replay_grants": ("id", "call_id", "requester", "state", "approver", "decided_at", "expires_at"),
    # the QA rows that grade people (schema 23): a scorecard's criteria weigh its reviews; a review's
    # answers and score are the agent's grade.  Not its comments: free text that an erasure of the
    # call replaces (``marks.forget_call``), as a replay grant's reason is not sealed either.
    "qa_scorecards": ("id", "name", "criteria", "created_by", "created_at", "retired"),
    "qa_reviews": ("id", "call_id", "reviewer", "agent", "scorecard_id", "answers", "score", "created_at",
                   "updated_at"),
}
#: each sealed table's key columns (how one row is named)
KEYS: dict[str, tuple[str, ...]] = {
    "users": ("name",), "user_teams": ("user_name", "team"), "team_agents": ("team", "agent"),
    "sessions": ("id_hash",), "api_tokens": ("id_hash",), "qa_assignments": ("call_id", "reviewer"),
    "replay_grants": ("id",), "qa_scorecards": ("id",), "qa_reviews": ("id",),
}
#: tables whose key the database assigns (the seal is written once the row has it)
_ASSIGNED_KEY = {"replay_grants", "qa_scorecards", "qa_reviews"}
#: the tables sealed since schema 21, with the accounts; the QA tables came with schema 23
#: (``access_rows.tables_sealed_before`` asks each of those on its own)
ACCESS_TABLES = schema_access_seal.TABLES


class RowFailsSeal(CatalogError):
    """A sealed row that is there but fails its seal (changed outside the recorder): not changed
    (and, where one row is asked for by its key, not shown) until an admin has checked it."""


def _canonical(table: str, values: Sequence[Any]) -> bytes:
    """The bytes a seal covers: numbers as floats (SQLite's REAL and PostgreSQL's double precision
    both give back what was written; an int written to a REAL column comes back a float)."""
    out: list[Any] = [table]
    for value in values:
        if isinstance(value, bool | int | float):
            out.append(float(value))
        elif value is None or isinstance(value, str):
            out.append(value)
        else:
            raise CatalogError(f"{table}: a sealed column holds a {type(value).__name__}")
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class AccessSeal:
    """The HMAC key of the access rows (derived from the 32 bytes of ``web.secret_key_file``)."""

    def __init__(self, secret: bytes) -> None:
        self._key = subkey(secret, _INFO)

    def mac(self, table: str, row: Mapping[str, Any]) -> str:
        digest = hmac.new(self._key, _canonical(table, [row[c] for c in FIELDS[table]]), hashlib.sha256)
        return PREFIX + digest.hexdigest()

    def check(self, table: str, row: Mapping[str, Any]) -> bool:
        """True when the row holds its seal; a row whose sealed columns hold what the recorder never
        writes (bytes: a blob written by hand) fails it, as any row changed outside the recorder."""
        try:
            expected = self.mac(table, row)
        except CatalogError:
            return False
        return hmac.compare_digest(str(row.get("seal") or ""), expected)


def columns(table: str) -> str:
    """The SELECT list a check needs: the sealed columns and ``seal``."""
    return ", ".join((*FIELDS[table], "seal"))


def as_row(table: str, values: Sequence[Any]) -> dict[str, Any]:
    """A row read with :func:`columns` as a mapping."""
    return dict(zip((*FIELDS[table], "seal"), values, strict=True))


def valid(seal: AccessSeal | None, table: str, row: Mapping[str, Any]) -> bool:
    """True when ``row`` (read with :func:`columns`) may be trusted: no seal configured, or its seal
    holds.  A row that fails is logged (its key, never its values)."""
    if seal is None or seal.check(table, row):
        return True
    short = 16 if table in ("sessions", "api_tokens") else None  # a hash named by its start only
    name = "/".join(str(row.get(k))[:short] for k in KEYS[table])
    if row.get("seal"):
        log.error("access row %s %s fails its seal: ignored (changed outside the recorder?)", table, name)
    else:
        log.error("access row %s %s has no seal: ignored (pbx-recorder users seal)", table, name)
    return False


def insert(conn: sqlite3.Connection, seal: AccessSeal | None, table: str, values: Mapping[str, Any], *,
           suffix: str = "") -> Any:
    """``INSERT INTO table`` the ``values`` (every sealed column but an assigned key among them) with
    their seal; ``suffix`` is appended (``ON CONFLICT DO NOTHING``, ``RETURNING id``).  Returns the
    cursor's first row when ``suffix`` returns one, else the cursor's rowcount."""
    cols = list(values)
    if seal is not None and table not in _ASSIGNED_KEY:
        cols.append("seal")
        params = [*values.values(), seal.mac(table, values)]
    else:
        params = list(values.values())
    cur = conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
                       f" {suffix}", params)
    result: Any = cur.fetchone() if "RETURNING" in suffix.upper() else cur.rowcount
    if seal is not None and table in _ASSIGNED_KEY and result is not None:
        key = KEYS[table][0]
        row = {**values, key: result[0]}
        conn.execute(f"UPDATE {table} SET seal = ? WHERE {key} = ?", (seal.mac(table, row), result[0]))
    return result


def update(conn: sqlite3.Connection, seal: AccessSeal | None, table: str, key: Mapping[str, Any],
           changes: Mapping[str, Any], *, where: str = "", params: Sequence[Any] = ()) -> int:
    """``UPDATE table SET changes`` of the row ``key`` names (``AND where`` with ``params``
    appended); the number of rows changed.  When a sealed column changes and a seal is configured,
    the row's current seal is checked first (a row that fails it is refused, :class:`RowFailsSeal`,
    never re-sealed) and the new seal is written with the change, compare-and-set on the old seal
    and every sealed value as checked (a value changed in between is never sealed)."""
    cond = " AND ".join(f"{k} = ?" for k in key) + (f" AND {where}" if where else "")
    sets = ", ".join(f"{c} = ?" for c in changes)
    if seal is None or not set(changes) & set(FIELDS[table]):
        cur = conn.execute(f"UPDATE {table} SET {sets} WHERE {cond}",
                           (*changes.values(), *key.values(), *params))
        return int(cur.rowcount)
    found = conn.execute(f"SELECT {columns(table)} FROM {table} WHERE "
                         + " AND ".join(f"{k} = ?" for k in key), tuple(key.values())).fetchone()
    if found is None:
        return 0
    row = as_row(table, found)
    if not seal.check(table, row):
        valid(seal, table, row)  # logged
        raise RowFailsSeal(f"{table} row {'/'.join(str(v) for v in key.values())} fails its seal (written "
                           "outside the recorder?): not changed; check it, then `pbx-recorder users seal`")
    new_seal = seal.mac(table, {**row, **changes})
    same = [f"{c} IS NULL" if row[c] is None else f"{c} = ?" for c in FIELDS[table]]
    cur = conn.execute(f"UPDATE {table} SET {sets}, seal = ? WHERE {cond} AND seal = ? AND "
                       + " AND ".join(same),
                       (*changes.values(), new_seal, *key.values(), *params, row["seal"],
                        *(row[c] for c in FIELDS[table] if row[c] is not None)))
    return int(cur.rowcount)


def from_file(path: Any) -> AccessSeal:
    """The seal keyed by ``web.secret_key_file`` (checked as :class:`SecretBox` checks it)."""
    from pbx_recorder.service.secret_box import read_key

    return AccessSeal(read_key(path))


def of_config(config: Any) -> AccessSeal | None:
    """The seal of the access rows ``config`` names (``web.secret_key_file``), else None."""
    path = config.web.secret_key_file
    return None if path is None else from_file(path)
