"""The rows of QA review: scorecards, reviews and manual assignments (portable SQL: SQLite and
PostgreSQL, ``?`` placeholders, booleans as 0/1).  Who may do what is the API's business
(:mod:`pbx_recorder.service.api_qa` and friends); this module reads and writes, inside the
caller's transaction where it writes.

The agent of a review or an assignment is the call's ``agent`` column: for a remote agent reached
through a queue that is a dial string carrying their mobile number (``Local/4915112345678@...``).
Every reader here whose rows go to an operator masks it as the call API does (``mask_channel``:
``Local/491******5678@...``; an account name such as ``carol`` is left as it is), unless the
caller asks for ``unmask``; no QA output asks, as ``/api/calls`` shows the clear value only on an
explicit, audited ``?unmask=1`` by a role holding ``calls.unmask``.

With the service's seal (``web.secret_key_file``) scorecards and reviews are sealed rows
(:mod:`pbx_recorder.service.access_seal`, schema 23): written with their seal, changed
compare-and-set on it, and a row that fails it is not listed, counted or changed (one asked for by
its id raises :class:`RowFailsSeal`)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pbx_recorder.catalog.scopes import Scope, scope_clause
from pbx_recorder.core.masking import mask_channel, shown_text
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
#: pages of :data:`MAX_LISTED` a reviews list reads at most to find that many rows holding their
#: seal (rows written by hand past the newest do not hide the genuine ones behind them)
_PAGES_READ = 20


def _row(fields: tuple[str, ...], row: Any) -> dict[str, Any]:
    return _parsed(dict(zip(fields, row, strict=True)))


def _parsed(out: dict[str, Any]) -> dict[str, Any]:
    for key in _JSON & set(out):
        try:
            out[key] = json.loads(out[key]) if isinstance(out[key], str) else out[key]
        except ValueError:
            out[key] = None  # a damaged cell: shown empty, refused by the checks on use
    if "retired" in out:
        out["retired"] = bool(out["retired"])
    return out


def _sealed(table: str, fields: tuple[str, ...], rows: Any, seal: AccessSeal | None) -> list[dict[str, Any]]:
    """The rows (``fields`` then ``seal``, as stored) that hold their seal, parsed; a row that fails
    it is left out (and logged by ``access_seal.valid``): it was written outside the recorder."""
    out = []
    for values in rows:
        raw = dict(zip((*fields, "seal"), values, strict=True))
        if access_seal.valid(seal, table, raw):
            raw.pop("seal")
            out.append(_parsed(raw))
    return out


#: a QA row that is there but fails its seal: not shown, not changed, until an admin has checked
#: it (``pbx-recorder users seal --check``)
RowFailsSeal = access_seal.RowFailsSeal


# -- scorecards ----------------------------------------------------------------------------
_CARD_COLS = ", ".join((*CARD_FIELDS, "seal"))
_REVIEW_COLS = ", ".join((*REVIEW_FIELDS, "seal"))


def scorecards(conn: sqlite3.Connection, *, include_retired: bool = True,
               seal: AccessSeal | None = None) -> list[dict[str, Any]]:
    """The scorecards that hold their seal (``seal``: the service's, None when it has none)."""
    sql = f"SELECT {_CARD_COLS} FROM qa_scorecards"
    rows = conn.execute(sql + ("" if include_retired else " WHERE retired = 0") + " ORDER BY name").fetchall()
    return _sealed("qa_scorecards", CARD_FIELDS, rows, seal)


def count_scorecards(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM qa_scorecards").fetchone()[0])


def scorecard(conn: sqlite3.Connection, card_id: int,
              seal: AccessSeal | None = None) -> dict[str, Any] | None:
    """The scorecard, None when there is none; :class:`RowFailsSeal` when it fails its seal."""
    return _by_id(conn, "qa_scorecards", CARD_FIELDS, card_id, seal, "scorecard")


def _by_id(conn: sqlite3.Connection, table: str, fields: tuple[str, ...], row_id: int,
           seal: AccessSeal | None, what: str) -> dict[str, Any] | None:
    cols = ", ".join((*fields, "seal"))
    row = conn.execute(f"SELECT {cols} FROM {table} WHERE id = ?", (row_id,)).fetchone()
    if row is None:
        return None
    found = _sealed(table, fields, [row], seal)
    if not found:
        raise RowFailsSeal(f"{what} {row_id} fails its seal (changed outside the recorder)")
    return found[0]


def name_taken(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM qa_scorecards WHERE name = ?", (name,)).fetchone() is not None


def add_scorecard(
    conn: sqlite3.Connection, name: str, criteria: list[dict[str, Any]], by: str, now: float,
    seal: AccessSeal | None = None,
) -> int:
    row = access_seal.insert(conn, seal, "qa_scorecards", {
        "name": name, "criteria": json.dumps(criteria, ensure_ascii=False), "created_by": by,
        "created_at": float(now), "retired": 0}, suffix="RETURNING id")
    return int(row[0])


def retire_scorecard(conn: sqlite3.Connection, card_id: int, seal: AccessSeal | None = None) -> bool:
    """Retired, compare-and-set on its sealed values (False when it changed meanwhile;
    :class:`RowFailsSeal` when it fails its seal)."""
    return access_seal.update(conn, seal, "qa_scorecards", {"id": card_id}, {"retired": 1}) == 1


def _agent_shown(item: dict[str, Any], unmask: bool) -> dict[str, Any]:
    """``item`` with its ``agent`` masked like the call API's (numbers in a dial string)."""
    if not unmask and isinstance(item.get("agent"), str):
        item["agent"] = mask_channel(item["agent"])
    return item


def _comments_shown(item: dict[str, Any], unmask: bool) -> dict[str, Any]:
    """``item`` with its comments' numbers masked like free text (the reviewer reads their own
    as typed: ``unmask``)."""
    comments = item.get("comments")
    if isinstance(comments, list):
        item["comments"] = [{**c, "text": shown_text(c.get("text"), unmask)} if isinstance(c, dict) else c
                            for c in comments]
    return item


# -- reviews -------------------------------------------------------------------------------
def review(conn: sqlite3.Connection, review_id: int, *, unmask: bool = False,
           seal: AccessSeal | None = None) -> dict[str, Any] | None:
    """The review, None when there is none; :class:`RowFailsSeal` when it fails its seal."""
    found = _by_id(conn, "qa_reviews", REVIEW_FIELDS, review_id, seal, "review")
    return None if found is None else _agent_shown(found, unmask)


def review_by(conn: sqlite3.Connection, call_id: str, reviewer: str, card_id: int) -> dict[str, Any] | None:
    """The review ``reviewer`` wrote of the call with the scorecard, sealed or not (whether there
    is one: a second would break the table's unique key)."""
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
    unmask: bool = False, seal: AccessSeal | None = None,
) -> list[dict[str, Any]]:
    """The reviews the actor may read (of one call, or the newest :data:`MAX_LISTED`), with the
    scorecard's name ('' when the scorecard fails its seal); a review that fails its seal is left
    out (and read past: at most :data:`_PAGES_READ` pages)."""
    params: list[Any] = []
    where = [readable_clause(role, name, scope, params)]
    if call_id is not None:
        where.append("v.call_id = ?")
        params.append(call_id)
    cols = ", ".join(f"v.{f}" for f in (*REVIEW_FIELDS, "seal"))
    out: list[dict[str, Any]] = []
    after: list[Any] = []
    for _page in range(_PAGES_READ):  # (rows failing their seal read past, up to a bound)
        rows = conn.execute(
            f"SELECT {cols} FROM qa_reviews v WHERE {' AND '.join(where)}"
            + (" AND (v.updated_at < ? OR (v.updated_at = ? AND v.id < ?))" if after else "")
            + f" ORDER BY v.updated_at DESC, v.id DESC LIMIT {MAX_LISTED}",
            [*params, *after],
        ).fetchall()
        out += _sealed("qa_reviews", REVIEW_FIELDS, rows, seal)
        if len(rows) < MAX_LISTED or len(out) >= MAX_LISTED:
            break
        last = dict(zip(REVIEW_FIELDS, rows[-1][:len(REVIEW_FIELDS)], strict=True))
        after = [last["updated_at"], last["updated_at"], last["id"]]
    out = out[:MAX_LISTED]
    names = {int(c["id"]): str(c["name"]) for c in scorecards(conn, seal=seal)} if out else {}
    for item in out:
        _agent_shown(item, unmask)
        _comments_shown(item, unmask or item.get("reviewer") == name)
        item["scorecard"] = names.get(int(item["scorecard_id"]), "")
    return out


def add_review(conn: sqlite3.Connection, values: dict[str, Any], now: float,
               seal: AccessSeal | None = None) -> int:
    row = access_seal.insert(conn, seal, "qa_reviews", {
        "call_id": values["call_id"],
        "reviewer": values["reviewer"],
        "agent": values["agent"],
        "scorecard_id": int(values["scorecard_id"]),
        "answers": json.dumps(values["answers"]),
        "score": float(values["score"]),
        "comments": json.dumps(values["comments"], ensure_ascii=False),
        "created_at": float(now),
        "updated_at": float(now),
    }, suffix="RETURNING id")
    return int(row[0])


def update_review(
    conn: sqlite3.Connection,
    review_id: int,
    answers: dict[str, Any],
    score: float,
    comments: list[dict[str, Any]],
    now: float,
    seal: AccessSeal | None = None,
) -> bool:
    """The review's answers, score and comments changed, compare-and-set on its sealed values as
    read (False when it changed meanwhile; :class:`RowFailsSeal` when it fails its seal)."""
    return access_seal.update(conn, seal, "qa_reviews", {"id": review_id}, {
        "answers": json.dumps(answers), "score": float(score),
        "comments": json.dumps(comments, ensure_ascii=False), "updated_at": float(now)}) == 1


def reviewed(conn: sqlite3.Connection, pairs: list[tuple[str, str]], seal: AccessSeal | None = None) -> set[
        tuple[str, str]]:
    """Of the (call id, reviewer) pairs, those with a review that holds its seal."""
    found: set[tuple[str, str]] = set()
    calls = sorted({call for call, _ in pairs})
    for start in range(0, len(calls), MAX_LISTED):
        part = calls[start:start + MAX_LISTED]
        rows = conn.execute(f"SELECT {_REVIEW_COLS} FROM qa_reviews WHERE call_id IN "
                            f"({', '.join('?' for _ in part)})", part).fetchall()
        sealed = _sealed("qa_reviews", REVIEW_FIELDS, rows, seal)
        found |= {(str(r["call_id"]), str(r["reviewer"])) for r in sealed}
    return found & set(pairs)


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
        "SELECT q.call_id, q.reviewer, q.assigned_by, q.assigned_at, c.agent, c.started_at, q.seal "
        "FROM qa_assignments q JOIN calls c ON c.call_id = q.call_id"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY c.started_at DESC, q.call_id LIMIT {MAX_LISTED}"
    )
    keys = ("call_id", "reviewer", "assigned_by", "assigned_at", "agent", "started_at", "seal")
    out = [dict(zip(keys, r, strict=True)) for r in conn.execute(sql, params).fetchall()]
    out = [item for item in out if access_seal.valid(seal, "qa_assignments", item)]
    done = reviewed(conn, [(str(i["call_id"]), str(i["reviewer"])) for i in out], seal) if out else set()
    for item in out:
        item.pop("seal")
        item["reviewed"] = (str(item["call_id"]), str(item["reviewer"])) in done  # by a sealed review
        _agent_shown(item, unmask)
    return out


def qa_accounts(conn: sqlite3.Connection) -> list[str]:
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM users WHERE role = 'qa' AND disabled = 0 ORDER BY name"
        ).fetchall()
    ]
