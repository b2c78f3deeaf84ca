"""What the audit log says a QA row held, for ``pbx-recorder users seal``: a scorecard or a review
without a seal is sealed by a plain ``users seal`` only when it is what the recorder's own audit
rows wrote (:func:`problem` returns None).

Why: a QA table without a sealed row looks like a catalog just upgraded to schema 23, and a plain
``users seal`` seals what such a table holds.  An insider who can write the catalog could change a
score and blank the table's seals (or insert a review into an empty table) and have the admin seal
the forgery.  The audit rows were written by the service with each review, edit, scorecard and
retirement (``qa.review``, ``qa.review.edit``, ``qa.scorecards.add``, ``qa.scorecards.retire``),
chained, keyed since schema 22 (:mod:`pbx_recorder.audit_key`) and covered by signed heads: a row
that differs from the newest of them, or has none, is refused by default (``--include-broken``
after an admin has checked it).

Each audit row used must hold its own hash, be linked to by the next row, and hold its MAC when
keyed (or be older than the first keyed row): a rewritten audit row would need the key; one whose
later rows were rewritten too is what ``audit verify`` and the signed heads report.  Not checked
here: the times (the audit row's clock and the row's are read apart), the agent of a review whose
call is gone (erased).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from pbx_recorder import audit_key, audit_trail

_COLS = "id, at, actor, role, action, target, detail, prev_hash, hash, mac"


def _intact(conn: sqlite3.Connection, row: tuple[Any, ...]) -> str | None:
    """None when the audit row holds its hash, its link and its MAC; else what fails."""
    row_id, at, actor, role, action, target, detail, prev, digest, mac = row
    try:
        body = json.loads(detail)
    except ValueError:
        return f"audit row {row_id} is damaged"
    if audit_trail.entry_hash(prev or audit_trail.GENESIS, int(row_id), float(at), actor, role, action,
                              target, body, bool(mac)) != digest:
        return f"audit row {row_id} does not hold its hash"
    after = conn.execute("SELECT prev_hash FROM audit_log WHERE id > ? ORDER BY id LIMIT 1",
                         (row_id,)).fetchone()
    if after is not None and after[0] != digest:
        return f"audit row {row_id} is not linked to by the next row"
    if mac:
        key = audit_key.for_connection(conn)
        if key is None:
            return f"audit row {row_id} is keyed and this process has no key to check it"
        if not audit_key.holds(key, digest, mac):
            return f"audit row {row_id} fails its MAC"
    elif conn.execute("SELECT 1 FROM audit_log WHERE id < ? AND mac <> '' LIMIT 1", (row_id,)).fetchone():
        return f"audit row {row_id} has no MAC after keyed rows"
    return None


def _audited(conn: sqlite3.Connection, target: str, actions: tuple[str, ...]) -> list[tuple[Any, ...]]:
    marks = ", ".join("?" for _ in actions)
    return list(conn.execute(f"SELECT {_COLS} FROM audit_log WHERE target = ? AND action IN ({marks}) "
                             "ORDER BY id", (target, *actions)).fetchall())


def _detail(row: tuple[Any, ...]) -> dict[str, Any]:
    try:
        found = json.loads(row[6])
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _same_number(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def review_problem(conn: sqlite3.Connection, row: Mapping[str, Any]) -> str | None:
    """None when the review (its sealed columns as stored) is what its newest audit row wrote."""
    rows = [r for r in _audited(conn, str(row["call_id"]), ("qa.review", "qa.review.edit"))
            if _same_number(_detail(r).get("review_id"), row["id"])]
    made = [r for r in rows if r[4] == "qa.review"]
    if not made:
        return "no audit row wrote it"
    for used in (made[0], rows[-1]):
        broken = _intact(conn, used)
        if broken:
            return broken
    first = _detail(made[0])
    if made[0][2] != row["reviewer"] or not _same_number(first.get("scorecard_id"), row["scorecard_id"]):
        return "its reviewer or scorecard is not the audit row's"
    last = _detail(rows[-1])
    if rows[-1][4] == "qa.review.edit":
        after = last.get("after")
        last = after if isinstance(after, dict) else {}
    if not _same_number(last.get("score"), row["score"]) or _json(row["answers"]) != last.get("answers"):
        return "its score or answers are not the newest audit row's"
    call = conn.execute("SELECT agent FROM calls WHERE call_id = ?", (row["call_id"],)).fetchone()
    if call is not None and str(call[0] or "") != str(row["agent"] or ""):
        return "its agent is not the call's"
    return None


def scorecard_problem(conn: sqlite3.Connection, row: Mapping[str, Any]) -> str | None:
    """None when the scorecard (its sealed columns as stored) is what its audit rows wrote."""
    target = f"scorecard:{row['id']}"
    made = _audited(conn, target, ("qa.scorecards.add",))
    if not made:
        return "no audit row wrote it"
    retired = _audited(conn, target, ("qa.scorecards.retire",))
    for used in (made[0], *retired[-1:]):
        broken = _intact(conn, used)
        if broken:
            return broken
    first = _detail(made[0])
    if (made[0][2] != row["created_by"] or first.get("name") != row["name"]
            or first.get("criteria") != _json(row["criteria"])):
        return "its name, author or criteria are not the audit row's"
    if bool(retired) != bool(row["retired"]):
        return "retired or not, unlike the audit rows"
    return None


#: the QA tables checked against the audit log before a plain ``users seal`` seals a row
CHECKS = {"qa_reviews": review_problem, "qa_scorecards": scorecard_problem}
