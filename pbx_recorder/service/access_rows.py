"""The access rows as a whole (``pbx-recorder users seal``, the service's start-up check): which
rows have no seal, which fail theirs, and sealing them once an admin has checked them.

A row with no seal (``''``) was written before schema 21, or by a recorder without
``web.secret_key_file``, or by hand; one whose seal does not hold was changed outside the
recorder.  :func:`seal_rows` seals the rows that have none (and, asked to, those that fail): it
is an admin's statement that the rows as they stand are right, so it is audited, names every row
it sealed with what it grants, and never runs by itself.  Once the catalog has been sealed with
the key (:func:`sealed_before`: an account row holds its seal, which no insider can make), a row
without a seal was not written by the recorder and is treated like one that fails its seal: it is
sealed only when asked to (``include_broken``), and the service starts without honouring it.
Sessions are not sealed after the fact: an unsealed or failing session is ended (its user logs
in again).

The QA tables (scorecards, reviews) were sealed from schema 23 on, after the access rows: each
counts as sealed before only once one of its own rows holds its seal
(:func:`tables_sealed_before`), so the rows a catalog sealed at schema 21 already held in them are
sealed by a plain ``users seal`` after the upgrade, like the access rows were at schema 21; but
only those that are what the audit log wrote (:mod:`~pbx_recorder.service.qa_evidence`): a table
whose seals an insider blanked after changing a score looks just upgraded, and the changed row is
then refused like one failing its seal (``differs``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pbx_recorder import audit_trail
from pbx_recorder.core.masking import mask_channel
from pbx_recorder.errors import CatalogError
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import access_seal, qa_evidence
from pbx_recorder.service.access_seal import ACCESS_TABLES, FIELDS, KEYS, AccessSeal

#: how a row is named in a report: sessions and tokens by a prefix of their hash, never in full
_HASH_SHOWN = 16
_AUDITED = 200  #: rows named per table in the ``users.seal`` audit row (all are counted)


@dataclass
class RowReport:
    """Per table, the rows without a seal and those failing theirs (each named by its key)."""

    unsealed: dict[str, list[str]] = field(default_factory=dict)
    broken: dict[str, list[str]] = field(default_factory=dict)
    #: QA rows without a seal that are not what the audit log wrote (``qa_evidence``): sealed only
    #: with ``include_broken``, like a row failing its seal
    differs: dict[str, list[str]] = field(default_factory=dict)
    _differing: set[tuple[str, tuple[Any, ...]]] = field(default_factory=set)
    #: every row the survey listed, by (table, key): its sealed values and seal as read then
    #: (:func:`seal_rows` seals a row only as listed: one added or changed since is left)
    _listed: dict[tuple[str, tuple[Any, ...]], tuple[Any, ...]] = field(default_factory=dict)
    moved: dict[str, list[str]] = field(default_factory=dict)  #: changed while :func:`seal_rows` ran
    unsealable: dict[str, list[str]] = field(default_factory=dict)  #: left failing by :func:`seal_rows`
    sealed: dict[str, int] = field(default_factory=dict)  #: rows sealed by :func:`seal_rows`
    sessions_ended: int = 0
    sealed_before: bool = False  #: the catalog was sealed with this key before (:func:`sealed_before`)
    #: the tables whose rows without a seal were not written by the recorder (:func:`tables_sealed_before`)
    sealed_tables: frozenset[str] = frozenset()

    @property
    def clean(self) -> bool:
        return not any((*self.unsealed.values(), *self.broken.values(), *self.differs.values()))

    def differing(self, table: str, row: dict[str, Any]) -> bool:
        return (table, tuple(row[k] for k in KEYS[table])) in self._differing

    def list_row(self, table: str, row: dict[str, Any]) -> None:
        self._listed[(table, tuple(row[k] for k in KEYS[table]))] = _as_listed(table, row)

    def as_listed(self, table: str, row: dict[str, Any]) -> bool:
        """True when ``row`` is what the survey listed (not added nor changed since)."""
        return self._listed.get((table, tuple(row[k] for k in KEYS[table]))) == _as_listed(table, row)


def _as_listed(table: str, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in (*FIELDS[table], "seal"))


def _name(table: str, row: dict[str, Any]) -> str:
    """The row's key and what it grants (never a hash in full or a secret), for the admin's check."""
    parts = [str(row[k]) for k in KEYS[table]]
    if table in ("sessions", "api_tokens"):
        parts = [parts[0][:_HASH_SHOWN]]
    name = "/".join(parts)
    if table == "users":
        return (f"{name} (role {row['role']}{', disabled' if row['disabled'] else ''}"
                f"{', no password' if not row['password_hash'] else ''})")
    if table == "api_tokens":
        return (f"{name} (user {row['user_name']}, role {row['role']}, expires {_day(row['expires_at'])}"
                f"{', revoked' if row['revoked'] else ''})")
    if table == "sessions":
        return f"{name} (user {row['user_name']}, stage {row['stage']})"
    if table == "qa_reviews":
        return (f"{name} (call {row['call_id']}, reviewer {row['reviewer']}, agent "
                f"{mask_channel(str(row['agent']))}, scorecard {row['scorecard_id']}, score {row['score']})")
    if table == "qa_scorecards":
        return f"{name} ({row['name']}{', retired' if row['retired'] else ''})"
    if table == "replay_grants":
        by = f" by {row['approver']}" if row["approver"] else ""
        return f"{name} (call {row['call_id']}, requester {row['requester']}, {row['state']}{by})"
    return name


def _day(at: Any) -> str:
    return datetime.fromtimestamp(float(at), UTC).strftime("%Y-%m-%d") if at is not None else "-"


def _named(rows: dict[str, list[str]]) -> dict[str, Any]:
    """An audit row's list of rows: the first :data:`_AUDITED` names of each table, and the count."""
    return {t: {"count": len(names), "rows": names[:_AUDITED]} for t, names in rows.items()
            if t != "sessions" and names}


def _rows(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    order = ", ".join(KEYS[table])
    return [access_seal.as_row(table, r) for r in
            conn.execute(f"SELECT {access_seal.columns(table)} FROM {table} ORDER BY {order}").fetchall()]


def sealed_before(conn: sqlite3.Connection, seal: AccessSeal) -> bool:
    """True when the catalog was sealed with this key: an account row holds its seal (a catalog
    never sealed has none, and no one without the key can make one)."""
    rows = conn.execute(f"SELECT {access_seal.columns('users')} FROM users WHERE seal <> ''").fetchall()
    return any(seal.check("users", access_seal.as_row("users", r)) for r in rows)


def tables_sealed_before(conn: sqlite3.Connection, seal: AccessSeal) -> frozenset[str]:
    """The tables sealed with this key before: none in a catalog never sealed; every access table
    once an account row holds its seal (:func:`sealed_before`); a QA table (schema 23) only once one
    of its own rows holds its seal too (the first that does ends the read)."""
    if not sealed_before(conn, seal):
        return frozenset()
    found = set(ACCESS_TABLES)
    for table in FIELDS:
        if table in found:
            continue
        cur = conn.execute(f"SELECT {access_seal.columns(table)} FROM {table} WHERE seal <> ''")
        if any(seal.check(table, access_seal.as_row(table, r)) for r in cur):
            found.add(table)
    return frozenset(found)


#: how ``users seal`` gathers what the QA rows are checked against (``qa_evidence.gather`` with the
#: configuration's signing key and number protection); by default the audit chain alone
EvidenceSource = Callable[[sqlite3.Connection], qa_evidence.Evidence]


def survey(conn: sqlite3.Connection, seal: AccessSeal, evidence: EvidenceSource | None = None) -> RowReport:
    """Every access row without a seal, or failing it; a QA row without one in a table never
    sealed is checked against the audit log (``evidence``, gathered once, when one is)."""
    tables = tables_sealed_before(conn, seal)
    report = RowReport(sealed_before=bool(tables), sealed_tables=tables)
    gathered: list[qa_evidence.Evidence] = []

    def problem_of(table: str, row: dict[str, Any]) -> str | None:
        if not gathered:
            gathered.append((evidence or qa_evidence.gather)(conn))
        return qa_evidence.CHECKS[table](conn, row, gathered[0])

    for table in FIELDS:
        check = table in qa_evidence.CHECKS and table not in tables
        for row in _rows(conn, table):
            holds = bool(row["seal"]) and seal.check(table, row)
            if not holds:
                report.list_row(table, row)
            if not row["seal"]:
                problem = problem_of(table, row) if check else None
                if problem is None:
                    report.unsealed.setdefault(table, []).append(_name(table, row))
                else:
                    report.differs.setdefault(table, []).append(f"{_name(table, row)}: {problem}")
                    report._differing.add((table, tuple(row[k] for k in KEYS[table])))
            elif not holds:
                report.broken.setdefault(table, []).append(_name(table, row))
    return report


def count_unsealed(conn: sqlite3.Connection) -> dict[str, int]:
    """Per table, how many rows have no seal at all (one query per table; tables with none left out)."""
    counts = {table: int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE seal = ''").fetchone()[0])
              for table in FIELDS}
    return {table: n for table, n in counts.items() if n}


def seal_rows(conn: sqlite3.Connection, seal: AccessSeal, *, include_broken: bool, actor: str, role: str,
              now: float, evidence: EvidenceSource | None = None,
              broken_tables: frozenset[str] | None = None) -> RowReport:
    """Seal every unsealed row (and every failing one with ``include_broken``: of ``broken_tables``
    only, when named), end every session
    that is neither sealed nor holding its seal, in one transaction, audited as ``users.seal``
    (the rows named).  The report says what was found before (``unsealable``: rows left failing
    because they hold what the recorder never writes)."""
    with Tx(conn):
        report = survey(conn, seal, evidence)
        for table in FIELDS:
            count = 0
            for row in _rows(conn, table):
                if row["seal"] and seal.check(table, row):
                    continue
                where = " AND ".join(f"{k} = ?" for k in KEYS[table])
                key = [row[k] for k in KEYS[table]]
                if table == "sessions":  # never sealed after the fact: its user logs in again
                    conn.execute(f"DELETE FROM sessions WHERE {where}", key)
                    report.sessions_ended += 1
                elif ((include_broken and (broken_tables is None or table in broken_tables))
                      or (not row["seal"] and table not in report.sealed_tables
                          and not report.differing(table, row))):
                    if not report.as_listed(table, row):  # added or changed since the survey
                        report.moved.setdefault(table, []).append(_name(table, row))
                        continue
                    try:
                        new_seal = seal.mac(table, row)
                    except CatalogError:  # a value the recorder never writes (bytes): never sealed
                        report.unsealable.setdefault(table, []).append(_name(table, row))
                        continue
                    # compare-and-set on every sealed value as listed: one changed meanwhile (on
                    # PostgreSQL an insider's statement does not wait for the catalog's lock) is left
                    same = [f"{c} IS NULL" if row[c] is None else f"{c} = ?" for c in FIELDS[table]]
                    done = conn.execute(f"UPDATE {table} SET seal = ? WHERE {where} AND seal = ? AND "
                                        + " AND ".join(same),
                                        (new_seal, *key, row["seal"],
                                         *(row[c] for c in FIELDS[table] if row[c] is not None))).rowcount
                    if done != 1:
                        report.moved.setdefault(table, []).append(_name(table, row))
                        continue
                    count += 1
            if count:
                report.sealed[table] = count
        audit_trail.record(conn, actor=actor, role=role, action="users.seal", target="", now=now, detail={
            "client": "cli", "sealed": report.sealed, "sessions_ended": report.sessions_ended,
            "unsealed": _named(report.unsealed), "broken": _named(report.broken),
            "differs": _named(report.differs), "moved": _named(report.moved),
            "include_broken": include_broken,
            "broken_tables": sorted(broken_tables) if broken_tables is not None else None})
    return report
