"""What the audit log says a QA row held, for ``pbx-recorder users seal``: a scorecard or a review
without a seal is sealed by a plain ``users seal`` only when it is what the recorder's own audit
rows wrote (:func:`review_problem` / :func:`scorecard_problem` return None).

Why: a QA table without a sealed row looks like a catalog just upgraded to schema 23, and a plain
``users seal`` seals what such a table holds.  An insider who can write the catalog could change a
score and blank the table's seals (or insert a review into an empty table) and have the admin seal
the forgery.  The audit rows were written by the service with each review, edit, scorecard and
retirement (``qa.review``, ``qa.review.edit``, ``qa.scorecards.add``, ``qa.scorecards.retire``).

No audit row is evidence unless the whole audit chain verifies first (:func:`gather`: one streaming
pass of :func:`pbx_recorder.audit_trail.verify_chain_from`, every row's hash, link and MAC, and the
signed heads when the configuration names the signing key), and then only a row that pass covered
(not one "before the chain", without a hash, nor one added since), that is still what it verified,
and that is keyed (its MAC checked with this process's key) or lies under the newest signed head:
a chain rewritten from genesis without its MACs verifies on its own, but not against a signed
head.  A hidden edit or retirement breaks the chain.  A keyed row after the last signed head can
still be deleted unnoticed (the audit log's known residual): an edit written after that head
could be rolled back that way.

What a review must match: its reviewer and scorecard (the ``qa.review`` row), its newest score and
answers (the newest ``qa.review`` or ``qa.review.edit`` row), its times (the rows' clocks, within
:data:`CLOCK_SLACK_S`), and its agent: since schema 23 the ``qa.review`` row holds a keyed digest
of the agent as written (:func:`agent_digest`) and the agent masked as the audit log masks
numbers; an older row neither, and then the call's agent is compared, under the call's seal when
the signing key's public half is at hand (as stored otherwise); a review whose call is gone and
whose audit row names no agent is not sealed by default.  A scorecard: name, author, criteria,
time, and retired exactly when a ``qa.scorecards.retire`` row says so.  Texts are compared as the
audit log stores them (masked by ``audit_trail.scrub``: a label or name that differs only in
masked digits passes; scores, answers and weights are numbers, never masked).  Anything that
cannot be read or compared is a problem, never an error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pbx_recorder import audit_key, audit_trail

#: the audit actions a QA row's evidence is read from
_ACTIONS = frozenset({"qa.review", "qa.review.edit", "qa.scorecards.add", "qa.scorecards.retire"})
#: seconds between a row's own clock and its audit row's (both read in the same request)
CLOCK_SLACK_S = 60.0
_COLS = "id, at, actor, action, detail, role, target, prev_hash, hash, mac"
_AGENT_INFO = b"pbx-recorder qa review agent v1\0"


@dataclass(frozen=True)
class Evidence:
    """What the checks may trust.  ``chain_problem``: None when the audit chain verified (else why
    no audit row is evidence); ``first_id`` .. ``last_id``: the chained rows that pass covered
    (rows outside it, such as rows with no hash "before the chain", are never evidence);
    ``head_seq``: the position the newest valid signed head pins (0: none checked), the only
    cover an unkeyed row can have; ``key``: the audit rows' key (:mod:`pbx_recorder.audit_key`);
    the call seal's public key and the catalog's number protection (None: a call's agent is
    compared as stored)."""

    chain_problem: str | None
    public_key: Any = None
    numbers: Any = None
    first_id: int = 0
    last_id: int = 0
    head_seq: int = 0
    key: bytes | None = None
    #: the hash the pass verified of each ``qa.*`` audit row (a row used must still be that one:
    #: PostgreSQL's isolation does not keep out a change made after the pass)
    hashes: Mapping[int, str] = field(default_factory=dict)


def agent_digest(key: bytes, agent: str) -> str:
    """A keyed digest of a review's agent as written (the audit row's ``agent`` is masked), in
    letters only (``audit_trail.scrub`` masks runs of digits in free text)."""
    mac = hmac.new(key, _AGENT_INFO + agent.encode("utf-8"), hashlib.sha256).digest()
    return "".join(chr(97 + (b >> 4)) + chr(97 + (b & 15)) for b in mac)


def agent_fields(conn: sqlite3.Connection, agent: str) -> dict[str, str]:
    """What a ``qa.review`` audit row says of the review's agent: the agent (the audit log masks
    it) and, with the audit rows' key, its keyed digest."""
    key = audit_key.for_connection(conn)
    return {"agent": agent, **({"agent_digest": agent_digest(key, agent)} if key is not None else {})}


def gather(conn: sqlite3.Connection, config: Any = None, public_key: Any = None,
           numbers: Callable[[], Any] | None = None) -> Evidence:
    """The audit chain checked once: every row's hash, link and MAC, and, with ``config`` and the
    signing key's ``public_key``, the signed heads (``numbers``: made only when a call seal is to be
    checked)."""
    try:
        return _gather(conn, config, public_key, numbers)
    except Exception as exc:  # noqa: BLE001 - a chain (or key) that cannot be read is no evidence
        return Evidence(f"the audit log cannot be checked ({type(exc).__name__}: {str(exc)[:200]})")


def _gather(conn: sqlite3.Connection, config: Any, public_key: Any,
            numbers: Callable[[], Any] | None) -> Evidence:
    signed: list[Any] = []  # the valid signed heads, read before the pass
    store = None
    if config is not None and public_key is not None:
        from pbx_recorder.recording import chain_head

        store = chain_head.store_for(config)
        signed = [cp for cp in store.read_all("audit")[0] if cp.valid(public_key) and cp.chain == "audit"]
    stats: dict[str, int] = {}
    hashes: dict[int, str] = {}  # the qa.* rows' hashes as verified
    at_heads: dict[int, str] = {}  # the hashes at the signed heads' positions, as verified
    positions = {cp.seq for cp in signed}

    def note(row_id: int, action: str, digest: str) -> None:
        if action in _ACTIONS:
            hashes[row_id] = digest
        if row_id in positions:
            at_heads[row_id] = digest

    problems, _legacy, last_id, _ = audit_trail.verify_chain_from(conn, stats=stats, on_row=note)
    if problems:
        return Evidence(f"the audit log does not verify ({problems[0]}): pbx-recorder audit verify")
    if stats.get("unchecked"):
        return Evidence(f"{stats['unchecked']} keyed audit row(s) this process has no key to check "
                        "(web.secret_key_file)")
    head_seq = 0
    if store is not None:
        from pbx_recorder.recording import chain_head

        # every signed head held to the hash the pass itself read at its position (a second read
        # could see another state: on PostgreSQL an insider's statements do not wait for our lock)
        for cp in signed:
            if cp.seq > 0 and at_heads.get(cp.seq) != cp.head:  # (position 0: an empty chain signed)
                return Evidence(f"audit row {cp.seq} differs from the signed head (chain rewritten): "
                                "pbx-recorder audit verify")
        head_problems, _notes = chain_head.check(conn, "audit", store, public_key)  # (its other findings)
        if head_problems:
            return Evidence(f"the audit log does not hold to its signed head ({head_problems[0]}): "
                            "pbx-recorder audit verify")
        head_seq = max((cp.seq for cp in signed), default=0)
    first = min(hashes, default=0)
    return Evidence(None, public_key, numbers() if numbers is not None and public_key is not None else None,
                    first, last_id, head_seq, audit_key.for_connection(conn), hashes)


def _audited(conn: sqlite3.Connection, target: str, actions: tuple[str, ...],
             evidence: Evidence) -> list[tuple[Any, ...]]:
    """The audit rows of ``actions`` on ``target`` (index ``audit_target``) that the verified pass
    covered, oldest first."""
    marks = ", ".join("?" for _ in actions)
    return list(conn.execute(f"SELECT {_COLS} FROM audit_log WHERE target = ? AND action IN ({marks}) "
                             "AND hash <> '' AND id BETWEEN ? AND ? ORDER BY id",
                             (target, *actions, evidence.first_id, evidence.last_id)).fetchall())


def _unusable(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], evidence: Evidence) -> str | None:
    """Why one of the audit rows a check uses is no evidence (None: all are): each must be a row the
    pass verified, still with the hash it had then and a content that makes that hash (a change
    since, which PostgreSQL's isolation does not keep out, breaks one or the other), its MAC
    holding; one without a MAC must lie under a signed head (a chain rewritten without its MACs
    verifies, but not against the head)."""
    for row_id, at, actor, action, detail, role, target, prev, digest, mac in rows:
        if evidence.hashes.get(int(row_id)) != digest or audit_trail.entry_hash(
                prev, int(row_id), float(at), actor, role, action, target, json.loads(detail),
                bool(mac)) != digest:
            return f"audit row {row_id} is not the row the audit log's check verified"
        if mac:
            if evidence.key is None or not audit_key.holds(evidence.key, digest, mac):
                return f"audit row {row_id}'s MAC does not verify"
        elif int(row_id) > evidence.head_seq:
            return (f"audit row {row_id} is not keyed and no signed head covers it (signing.key_file, "
                    "pbx-recorder ledger checkpoint)")
    return None


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
        except (TypeError, ValueError, OverflowError, KeyError, AttributeError, RecursionError,
                MemoryError) as exc:
            return f"cannot be checked against the audit log ({type(exc).__name__})"
    return guarded


@_guarded
def review_problem(conn: sqlite3.Connection, row: Mapping[str, Any], evidence: Evidence) -> str | None:
    """None when the review (its sealed columns as stored) is what its audit rows wrote."""
    rows = [r for r in _audited(conn, str(row["call_id"]), ("qa.review", "qa.review.edit"), evidence)
            if _same_id(_detail(r).get("review_id"), row["id"])]
    made = [r for r in rows if r[3] == "qa.review"]
    if len(made) != 1 or made[0] is not rows[0]:
        return "no audit row wrote it" if not made else "its audit rows are not one review's"
    unusable = _unusable(conn, rows, evidence)
    if unusable:
        return unusable
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
    """The agent: by the audit row's keyed digest of it (written since schema 23 with the key), else
    by the call's row (under its seal when the signing key's public half is at hand) and, when the
    audit row names it masked, by that too; a review whose call is gone needs the digest or the
    masked name (a masked name alone tells apart less: two agents may mask alike)."""
    digest = first.get("agent_digest")
    if isinstance(digest, str) and evidence.key is not None:
        same = hmac.compare_digest(digest, agent_digest(evidence.key, str(row["agent"])))
        return None if same else "its agent is not the audit row's"
    if "agent" in first and _as_audited("agent", str(row["agent"])) != first["agent"]:
        return "its agent is not the audit row's"
    call = conn.execute("SELECT agent FROM calls WHERE call_id = ?", (row["call_id"],)).fetchone()
    if call is None:
        return None if "agent" in first else "its call is gone and no audit row names its agent"
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
    made = _audited(conn, target, ("qa.scorecards.add",), evidence)
    if len(made) != 1:
        return "no audit row wrote it" if not made else "more than one audit row made it"
    retired = _audited(conn, target, ("qa.scorecards.retire",), evidence)
    unusable = _unusable(conn, made + retired, evidence)
    if unusable:
        return unusable
    first = _detail(made[0])
    if (made[0][2] != row["created_by"] or first.get("name") != _as_audited("name", row["name"])
            or first.get("criteria") != _as_audited("criteria", json.loads(row["criteria"]))):
        return "its name, author or criteria are not the audit row's"
    if not _same_time(made[0][1], row["created_at"]):
        return "its time is not its audit row's"
    if bool(retired) != bool(row["retired"]):
        return "retired or not, unlike the audit rows"
    return None


#: the QA tables checked against the audit log before a plain ``users seal`` seals a row
CHECKS: dict[str, Callable[[sqlite3.Connection, Mapping[str, Any], Evidence], str | None]] = {
    "qa_reviews": review_problem, "qa_scorecards": scorecard_problem}
