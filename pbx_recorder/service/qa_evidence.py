"""What the audit log says a QA row held, for ``pbx-recorder users seal``: a scorecard or a review
without a seal is sealed by a plain ``users seal`` only when it is what the recorder's own audit
rows wrote (:func:`review_problem` / :func:`scorecard_problem` return None).

Why: a QA table without a sealed row looks like a catalog just upgraded to schema 23, and a plain
``users seal`` seals what such a table holds.  An insider who can write the catalog could change a
score and blank the table's seals (or insert a review into an empty table) and have the admin seal
the forgery.  The audit rows were written by the service with each review, edit, scorecard and
retirement (``qa.review``, ``qa.review.edit``, ``qa.scorecards.add``, ``qa.scorecards.retire``).

No audit row is evidence unless the whole audit chain verifies first (:func:`gather`: one streaming
pass of :func:`pbx_recorder.audit_status.check`, every row's hash, link and MAC, keyedness read from
the hashes, and the signed head when the configuration names the signing key): a rewritten row
before keying changes every later hash, which the keyed rows' MACs and the signed head pin; a
hidden edit or retirement breaks the chain.  A row of the chain after the last signed head can
still be deleted unnoticed (the audit log's known residual): an edit written after it could be
rolled back that way.  A chain never keyed and without a signing key pins nothing.

What a review must match: its reviewer and scorecard (the ``qa.review`` row), its newest score and
answers (the newest ``qa.review`` or ``qa.review.edit`` row), its times (the rows' clocks, within
:data:`CLOCK_SLACK_S`), and its agent: the ``qa.review`` row's (written since schema 23, masked
as the audit log masks numbers), else the call's, under the call's seal when the signing key's
public half is at hand; a review whose call is gone and whose audit row names no agent is not
sealed by default.  A scorecard: name, author, criteria, time, and retired exactly when a
``qa.scorecards.retire`` row says so.  Values are compared as the audit log stores them (masked by
``audit_trail.scrub``).  Anything that cannot be read or compared is a problem, never an error.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pbx_recorder import audit_trail

#: seconds between a row's own clock and its audit row's (both read in the same request)
CLOCK_SLACK_S = 60.0
_COLS = "id, at, actor, action, detail"


@dataclass(frozen=True)
class Evidence:
    """What the checks may trust: ``chain_problem`` None when the audit chain verified (else why
    no audit row is evidence); the call seal's public key and the catalog's number protection
    (None: a call's agent is compared as stored)."""

    chain_problem: str | None
    public_key: Any = None
    numbers: Any = None


def gather(conn: sqlite3.Connection, config: Any = None, public_key: Any = None,
           numbers: Any = None) -> Evidence:
    """The audit chain checked once (with its signed head when ``config`` names the signing key)."""
    from pbx_recorder import audit_status

    try:
        status = audit_status.check(conn, config)
    except Exception as exc:  # noqa: BLE001 - a chain that cannot be read is no evidence
        return Evidence(f"the audit log cannot be checked ({type(exc).__name__})", public_key, numbers)
    if not status.ok:
        return Evidence(f"the audit log does not verify ({status.problems[0]}): pbx-recorder audit verify",
                        public_key, numbers)
    return Evidence(None, public_key, numbers)


def _audited(conn: sqlite3.Connection, target: str, actions: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """The audit rows of ``actions`` on ``target`` (index ``audit_target``), oldest first."""
    marks = ", ".join("?" for _ in actions)
    return list(conn.execute(f"SELECT {_COLS} FROM audit_log WHERE target = ? AND action IN ({marks}) "
                             "ORDER BY id", (target, *actions)).fetchall())


def _detail(row: tuple[Any, ...]) -> dict[str, Any]:
    found = json.loads(row[4])
    return found if isinstance(found, dict) else {}


def _as_audited(key: str, value: Any) -> Any:
    """``value`` as the audit log stores it under ``key`` (numbers masked, JSON types)."""
    return json.loads(json.dumps(audit_trail.scrub({key: value}), sort_keys=True, default=str))[key]


def _same_id(value: Any, row_id: Any) -> bool:
    return type(value) is int and type(row_id) is int and value == row_id


def _same_time(at: Any, value: Any) -> bool:
    return abs(float(at) - float(value)) <= CLOCK_SLACK_S


def _guarded(check: Callable[..., str | None]) -> Callable[..., str | None]:
    """``check`` whose failure to read or compare a value is a problem, never an error."""
    def guarded(conn: sqlite3.Connection, row: Mapping[str, Any], evidence: Evidence) -> str | None:
        if evidence.chain_problem is not None:
            return evidence.chain_problem
        try:
            return check(conn, row, evidence)
        except (TypeError, ValueError, OverflowError, KeyError, AttributeError) as exc:
            return f"cannot be checked against the audit log ({type(exc).__name__})"
    return guarded


@_guarded
def review_problem(conn: sqlite3.Connection, row: Mapping[str, Any], evidence: Evidence) -> str | None:
    """None when the review (its sealed columns as stored) is what its audit rows wrote."""
    rows = [r for r in _audited(conn, str(row["call_id"]), ("qa.review", "qa.review.edit"))
            if _same_id(_detail(r).get("review_id"), row["id"])]
    made = [r for r in rows if r[3] == "qa.review"]
    if len(made) != 1 or made[0] is not rows[0]:
        return "no audit row wrote it" if not made else "its audit rows are not one review's"
    first, newest = _detail(made[0]), rows[-1]
    if made[0][2] != row["reviewer"] or not _same_id(first.get("scorecard_id"), row["scorecard_id"]):
        return "its reviewer or scorecard is not the audit row's"
    last = _detail(newest)
    if newest[3] == "qa.review.edit":
        after = last.get("after")
        last = after if isinstance(after, dict) else {}
    if (_as_audited("score", float(row["score"])) != last.get("score")
            or _as_audited("answers", json.loads(row["answers"])) != last.get("answers")):
        return "its score or answers are not the newest audit row's"
    if not _same_time(made[0][1], row["created_at"]) or not _same_time(newest[1], row["updated_at"]):
        return "its times are not its audit rows'"
    return _agent_problem(conn, row, first, evidence)


def _agent_problem(conn: sqlite3.Connection, row: Mapping[str, Any], first: Mapping[str, Any],
                   evidence: Evidence) -> str | None:
    if "agent" in first:  # (written since schema 23)
        same = _as_audited("agent", str(row["agent"])) == first["agent"]
        return None if same else "its agent is not the audit row's"
    call = conn.execute("SELECT agent FROM calls WHERE call_id = ?", (row["call_id"],)).fetchone()
    if call is None:
        return "its call is gone and no audit row names its agent"
    if str(call[0] or "") != str(row["agent"]):
        return "its agent is not the call's"
    if evidence.public_key is not None:
        from pbx_recorder.recording.call_seal import call_seal_problem

        why = call_seal_problem(conn, str(row["call_id"]), evidence.public_key, evidence.numbers)
        if why:
            return f"its call's row fails its seal ({why})"
    return None


@_guarded
def scorecard_problem(conn: sqlite3.Connection, row: Mapping[str, Any], evidence: Evidence) -> str | None:
    """None when the scorecard (its sealed columns as stored) is what its audit rows wrote."""
    target = f"scorecard:{row['id']}"
    made = _audited(conn, target, ("qa.scorecards.add",))
    if len(made) != 1:
        return "no audit row wrote it" if not made else "more than one audit row made it"
    first = _detail(made[0])
    if (made[0][2] != row["created_by"] or first.get("name") != _as_audited("name", row["name"])
            or first.get("criteria") != _as_audited("criteria", json.loads(row["criteria"]))):
        return "its name, author or criteria are not the audit row's"
    if not _same_time(made[0][1], row["created_at"]):
        return "its time is not its audit row's"
    if bool(_audited(conn, target, ("qa.scorecards.retire",))) != bool(row["retired"]):
        return "retired or not, unlike the audit rows"
    return None


#: the QA tables checked against the audit log before a plain ``users seal`` seals a row
CHECKS: dict[str, Callable[[sqlite3.Connection, Mapping[str, Any], Evidence], str | None]] = {
    "qa_reviews": review_problem, "qa_scorecards": scorecard_problem}
