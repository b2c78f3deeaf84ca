"""The rows of QA review: scorecards, reviews and manual assignments (portable SQL: SQLite and
PostgreSQL, ``?`` placeholders, booleans as 0/1).  Who may do what is the API's business
(:mod:`pbx_recorder.service.api_qa` and friends); this module reads and writes, inside the
caller's transaction where it writes.

The agent of a review or an assignment is the call's ``agent`` column: for a remote agent reached
through a queue that is a dial string carrying their mobile number (``Local/4915112345678@...``).
Every reader here whose rows go to an operator masks it as the call API does (``mask_channel``:
``Local/491******5678@...``; an account name such as ``carol`` is left as it is), unless the
caller asks for ``unmask``; no QA output asks, as ``/api/calls`` shows the clear value only on an
explicit, audited ``?unmask=1`` by a role holding ``calls.unmask``."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pbx_recorder.catalog.scopes import Scope, scope_clause
from pbx_recorder.core.masking import mask_channel
from pbx_recorder.service import access_seal
from pbx_recorder.service.access_seal import AccessSeal

CARD_FIELDS = ("id", "name", "criteria", "created_by", "created_at", "retired")
REVIEW_FIELDS = (
    "id",
    "call_id",
    "reviewer",
    "agent",
    "scorecard_id",
    "answers",
    "score",
    "comments",
    "created_at",
    "updated_at",
)
_JSON = {"criteria", "answers", "comments"}
MAX_LISTED = 500


def _row(fields: tuple[str, ...], row: Any) -> dict[str, Any]:
    out = dict(zip(fields, row, strict=True))
    for key in _JSON & set(out):
        try:
            out[key] = json.loads(out[key]) if isinstance(out[key], str) else out[key]
        except ValueError:
            out[key] = None  # a damaged cell: shown empty, refused by the checks on use
    if "retired" in out:
        out["retired"] = bool(out["retired"])
    return out


# -- scorecards ----------------------------------------------------------------------------
def scorecards(conn: sqlite3.Connection, *, include_retired: bool = True) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(CARD_FIELDS)} FROM qa_scorecards"
    rows = conn.execute(sql + ("" if include_retired else " WHERE retired = 0") + " ORDER BY name").fetchall()
    return [_row(CARD_FIELDS, r) for r in rows]


def scorecard(conn: sqlite3.Connection, card_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {', '.join(CARD_FIELDS)} FROM qa_scorecards WHERE id = ?", (card_id,)
    ).fetchone()
    return _row(CARD_FIELDS, row) if row else None


def name_taken(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM qa_scorecards WHERE name = ?", (name,)).fetchone() is not None


def add_scorecard(
    conn: sqlite3.Connection, name: str, criteria: list[dict[str, Any]], by: str, now: float
) -> int:
    row = conn.execute(
        "INSERT INTO qa_scorecards (name, criteria, created_by, created_at, retired) "
        "VALUES (?, ?, ?, ?, 0) RETURNING id",
        (name, json.dumps(criteria, ensure_ascii=False), by, now),
    ).fetchone()
    return int(row[0])


def retire_scorecard(conn: sqlite3.Connection, card_id: int) -> None:
    conn.execute("UPDATE qa_scorecards SET retired = 1 WHERE id = ?", (card_id,))


def _agent_shown(item: dict[str, Any], unmask: bool) -> dict[str, Any]:
    """``item`` with its ``agent`` masked like the call API's (numbers in a dial string)."""
    if not unmask and isinstance(item.get("agent"), str):
        item["agent"] = mask_channel(item["agent"])
    return item


# -- reviews -------------------------------------------------------------------------------
def review(conn: sqlite3.Connection, review_id: int, *, unmask: bool = False) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {', '.join(REVIEW_FIELDS)} FROM qa_reviews WHERE id = ?", (review_id,)
    ).fetchone()
    return _agent_shown(_row(REVIEW_FIELDS, row), unmask) if row else None


def review_by(conn: sqlite3.Connection, call_id: str, reviewer: str, card_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {', '.join(REVIEW_FIELDS)} FROM qa_reviews WHERE call_id = ? "
        "AND reviewer = ? AND scorecard_id = ?",
        (call_id, reviewer, card_id),
    ).fetchone()
    return _row(REVIEW_FIELDS, row) if row else None


def readable_clause(role: str, name: str, scope: Scope, params: list[Any]) -> str:
    """The ``qa.read`` rows of a reviews query (alias ``v``): admin all, an agent the reviews of
    their own calls, a QA reviewer the reviews they wrote, a lead their team's (the agents of
    their scope); anything else nothing."""
    if role == "admin":
        return "1 = 1"
    if role == "qa":
        params.append(name)
        return "v.reviewer = ?"
    if role in ("agent", "supervisor") and scope.kind == "agents" and scope.agents:
        agents = sorted(scope.agents)
        params.extend(agents)
        return f"v.agent IN ({', '.join('?' for _ in agents)})"
    return "1 = 0"


def reviews(
    conn: sqlite3.Connection, role: str, name: str, scope: Scope, *, call_id: str | None = None,
    unmask: bool = False,
) -> list[dict[str, Any]]:
    """The reviews the actor may read (of one call, or the newest :data:`MAX_LISTED`), with the
    scorecard's name."""
    params: list[Any] = []
    where = [readable_clause(role, name, scope, params)]
    if call_id is not None:
        where.append("v.call_id = ?")
        params.append(call_id)
    cols = ", ".join(f"v.{f}" for f in REVIEW_FIELDS)
    rows = conn.execute(
        f"SELECT {cols}, s.name FROM qa_reviews v LEFT JOIN qa_scorecards s "
        f"ON s.id = v.scorecard_id WHERE {' AND '.join(where)} "
        f"ORDER BY v.updated_at DESC, v.id DESC LIMIT {MAX_LISTED}",
        params,
    ).fetchall()
    out = []
    for r in rows:
        item = _agent_shown(_row(REVIEW_FIELDS, r[:-1]), unmask)
        item["scorecard"] = r[-1] or ""
        out.append(item)
    return out


def add_review(conn: sqlite3.Connection, values: dict[str, Any], now: float) -> int:
    row = conn.execute(
        "INSERT INTO qa_reviews (call_id, reviewer, agent, scorecard_id, answers, score, comments, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            values["call_id"],
            values["reviewer"],
            values["agent"],
            values["scorecard_id"],
            json.dumps(values["answers"]),
            float(values["score"]),
            json.dumps(values["comments"], ensure_ascii=False),
            now,
            now,
        ),
    ).fetchone()
    return int(row[0])


def update_review(
    conn: sqlite3.Connection,
    review_id: int,
    answers: dict[str, Any],
    score: float,
    comments: list[dict[str, Any]],
    now: float,
) -> None:
    conn.execute(
        "UPDATE qa_reviews SET answers = ?, score = ?, comments = ?, updated_at = ? WHERE id = ?",
        (json.dumps(answers), float(score), json.dumps(comments, ensure_ascii=False), now, review_id),
    )


# -- assignments ---------------------------------------------------------------------------
def assigned(conn: sqlite3.Connection, call_id: str, reviewer: str, seal: AccessSeal | None = None) -> bool:
    """True when ``call_id`` is assigned to ``reviewer`` by a row that holds its seal."""
    table = "qa_assignments"
    row = conn.execute(
        f"SELECT {access_seal.columns(table)} FROM {table} WHERE call_id = ? AND reviewer = ?",
        (call_id, reviewer),
    ).fetchone()
    return row is not None and access_seal.valid(seal, table, access_seal.as_row(table, row))


def assign(conn: sqlite3.Connection, call_id: str, reviewer: str, by: str, now: float,
           seal: AccessSeal | None = None) -> bool:
    """True when the assignment is new (a row there that fails its seal is replaced by this one)."""
    if assigned(conn, call_id, reviewer, seal):
        return False
    conn.execute("DELETE FROM qa_assignments WHERE call_id = ? AND reviewer = ?", (call_id, reviewer))
    access_seal.insert(conn, seal, "qa_assignments",
                       {"call_id": call_id, "reviewer": reviewer, "assigned_by": by, "assigned_at": now})
    return True


def unassign(conn: sqlite3.Connection, call_id: str, reviewer: str, seal: AccessSeal | None = None) -> bool:
    """True when there was an assignment (a row failing its seal was none; it goes all the same)."""
    found = assigned(conn, call_id, reviewer, seal)
    conn.execute("DELETE FROM qa_assignments WHERE call_id = ? AND reviewer = ?", (call_id, reviewer))
    return found


def assignments(
    conn: sqlite3.Connection, scope: Scope, *, reviewer: str | None = None, unmask: bool = False,
    seal: AccessSeal | None = None,
) -> list[dict[str, Any]]:
    """Assignments of calls in ``scope`` (of one reviewer), newest call first, each with the call's
    agent and start and whether the reviewer has reviewed it (an assignment whose row fails its
    seal is not one)."""
    params: list[Any] = []
    where = []
    clause = scope_clause(scope, params, "c")
    if clause:
        where.append(clause)
    if reviewer is not None:
        where.append("q.reviewer = ?")
        params.append(reviewer)
    sql = (
        "SELECT q.call_id, q.reviewer, q.assigned_by, q.assigned_at, c.agent, c.started_at, "
        "(SELECT COUNT(*) FROM qa_reviews v WHERE v.call_id = q.call_id AND v.reviewer = q.reviewer), q.seal "
        "FROM qa_assignments q JOIN calls c ON c.call_id = q.call_id"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY c.started_at DESC, q.call_id LIMIT {MAX_LISTED}"
    )
    keys = ("call_id", "reviewer", "assigned_by", "assigned_at", "agent", "started_at", "reviews", "seal")
    out = [dict(zip(keys, r, strict=True)) for r in conn.execute(sql, params).fetchall()]
    out = [item for item in out if access_seal.valid(seal, "qa_assignments", item)]
    for item in out:
        item.pop("seal")
        item["reviewed"] = int(item.pop("reviews") or 0) > 0
        _agent_shown(item, unmask)
    return out


def qa_accounts(conn: sqlite3.Connection) -> list[str]:
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM users WHERE role = 'qa' AND disabled = 0 ORDER BY name"
        ).fetchall()
    ]
