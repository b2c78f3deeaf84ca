"""``pbx-recorder review sample``: the QA sampling rules (:mod:`pbx_recorder.service.qa_sampling`)
run over one ISO week of the catalog, their picks written to ``qa_assignments``.

The week's calls are the answered calls with an agent and at least one recording (a call without
audio cannot be reviewed) that started in the week, days counted in the config's ``timezone``.
Every reviewer of a rule must be an active ``qa`` account, else nothing is written.  All rules'
assignments go in one transaction (``assigned_by = 'sampling'``), each audited as ``qa.assign``
like a manual assignment, plus one ``qa.sample`` row per run; a pick already assigned is not
written again, so running twice assigns nothing new.  The seed is ``web.qa_sampling_seed`` or,
without it, a random secret made once and kept in the catalog (``catalog_settings``), which only
the service user and root can read; it is never printed, logged or audited.

With the signing key's public half, each pick's call row must hold its seal (``row_problem``,
:func:`sealed_row_check`): the pick's agent, and so the own-call rule and whose calls a reviewer
gets, come from the row's ``agent`` column, which an insider who can write the catalog could
rewrite.  A pick whose row fails is not assigned (an ALERT, and the call named in the run's
``qa.sample`` row); the quotas are still counted over the rows as stored.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pbx_recorder import audit_trail
from pbx_recorder.config.model import QaSamplingRule, WebConfig
from pbx_recorder.errors import ConfigError
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import qa_store
from pbx_recorder.service.accounts import Accounts
from pbx_recorder.service.qa_sampling import SAMPLED_BY, Pick, WeekCall, matches, select

SEED_SETTING = "qa_sampling_seed"
log = logging.getLogger(__name__)
#: (connection, call id) -> why the call's row may not be trusted ('' when it may)
RowProblem = Callable[[sqlite3.Connection, str], str]


@dataclass
class RuleResult:
    rule: str
    picks: list[Pick] = field(default_factory=list)  # what the rule picked this run
    new: int = 0  # of which written now (0 on a dry run)
    refused: list[str] = field(default_factory=list)  # picked, but the call's row fails its seal


def seed_of(conn: sqlite3.Connection, web: WebConfig) -> bytes:
    if web.qa_sampling_seed is not None:
        return web.qa_sampling_seed.reveal().encode("utf-8")
    with Tx(conn):
        conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                     (SEED_SETTING, secrets.token_hex(32)))
        row = conn.execute("SELECT value FROM catalog_settings WHERE name = ?", (SEED_SETTING,)).fetchone()
    return bytes.fromhex(str(row[0]))


def _tags(value: Any) -> tuple[str, ...]:
    try:
        tags = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return ()
    return tuple(str(t) for t in tags) if isinstance(tags, list) else ()


def sealed_row_check(public_key: Any, numbers: Any = None) -> RowProblem:
    """The check of a picked call's row: its seal under ``public_key``, and the ledger's word on it
    (``recording.call_seal.call_seal_problem``); a row gone since the week's calls were read is
    not trusted either."""
    from pbx_recorder.recording.call_seal import call_seal_problem

    def problem(conn: sqlite3.Connection, call_id: str) -> str:
        why = call_seal_problem(conn, call_id, public_key, numbers)
        if why or conn.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone():
            return why
        return "call row gone"

    return problem


def week_calls(conn: sqlite3.Connection, start: float, end: float) -> list[WeekCall]:
    rows = conn.execute(
        "SELECT call_id, agent, queue, tags FROM calls WHERE started_at >= ? AND started_at < ? "
        "AND status = 'answered' AND agent IS NOT NULL AND agent != '' "
        "AND EXISTS (SELECT 1 FROM recordings r WHERE r.call_id = calls.call_id)", (start, end)).fetchall()
    return [WeekCall(str(r[0]), str(r[1]), str(r[2] or ""), _tags(r[3])) for r in rows]


def _sampled(conn: sqlite3.Connection, start: float, end: float) -> list[tuple[WeekCall, str]]:
    """The week's calls sampled before, with their reviewer."""
    rows = conn.execute(
        "SELECT c.call_id, c.agent, c.queue, c.tags, q.reviewer FROM qa_assignments q "
        "JOIN calls c ON c.call_id = q.call_id WHERE q.assigned_by = ? AND c.started_at >= ? "
        "AND c.started_at < ?", (SAMPLED_BY, start, end)).fetchall()
    return [(WeekCall(str(r[0]), str(r[1] or ""), str(r[2] or ""), _tags(r[3])), str(r[4])) for r in rows]


def check_reviewers(conn: sqlite3.Connection, rules: Sequence[QaSamplingRule], seal: Any = None) -> None:
    """ConfigError unless every reviewer the rules name is an enabled QA account (whose row holds
    its seal, with ``seal``)."""
    accounts = Accounts(conn, seal=seal)
    for i, rule in enumerate(rules):
        for reviewer in rule.reviewers:
            user = accounts.get(reviewer)
            if user is None or user.role != "qa" or user.disabled:
                raise ConfigError(f"web.qa_sampling[{i}].reviewers: {reviewer!r} is not an active QA "
                                  "account (pbx-recorder users add NAME --role qa)")


def run(conn: sqlite3.Connection, rules: Sequence[QaSamplingRule], seed: bytes, week: str,
        bounds: tuple[float, float], *, actor: str, role: str, now: float,
        dry_run: bool = False, seal: Any = None, row_problem: RowProblem | None = None) -> list[RuleResult]:
    """``seal``: the access rows' seal (``service.access_seal``): assignments are written sealed
    (a row there that fails its seal is replaced).  ``row_problem``: each pick's call row is
    checked (:func:`sealed_row_check`); one that fails is not assigned."""
    check_reviewers(conn, rules, seal)
    start, end = bounds
    calls, results = week_calls(conn, start, end), []
    with Tx(conn):  # the catalog's write lock: two runs at once cannot both top a quota up
        before = _sampled(conn, start, end)
        for rule in rules:
            already: dict[str, set[str]] = {}
            for call, reviewer in before:
                if reviewer in rule.reviewers and matches(call, rule):
                    already.setdefault(call.agent, set()).add(call.call_id)
            picks = select(calls, rule, seed, week, {a: frozenset(c) for a, c in already.items()})
            result = RuleResult(rule.name)
            for pick in picks:
                why = row_problem(conn, pick.call_id) if row_problem is not None else ""
                if why:
                    log.error("ALERT call=%s: %s; not assigned for QA review (its agent column is not "
                              "trusted; see `pbx-recorder verify`)", pick.call_id, why)
                    result.refused.append(pick.call_id)
                else:
                    result.picks.append(pick)
            results.append(result)
            if dry_run:
                continue
            for pick in result.picks:
                if not qa_store.assign(conn, pick.call_id, pick.reviewer, SAMPLED_BY, now, seal):
                    continue
                audit_trail.record(conn, actor=actor, role=role, action="qa.assign", target=pick.call_id,
                                   detail={"reviewer": pick.reviewer, "assigned_by": SAMPLED_BY,
                                           "rule": rule.name, "week": week}, now=now)
                result.new += 1
        if not dry_run:
            audit_trail.record(conn, actor=actor, role=role, action="qa.sample", target=week,
                               detail={"calls": len(calls), "rules": {r.rule: r.new for r in results},
                                       **({"refused": {r.rule: r.refused for r in results if r.refused}}
                                          if any(r.refused for r in results) else {})},
                               now=now)
    return results
