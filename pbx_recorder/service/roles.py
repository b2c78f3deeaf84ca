"""The operator service's roles, their verbs and their row scopes (pure, no I/O).

Verbs are separate permissions (the audit tells a play from a download)::

    verb              admin supervisor qa  agent auditor legal it
    calls.view          x       x      x     x      x      x
    calls.play          x       x      x     x      x      x
    calls.download      x       x                          x
    calls.export        x       x                          x
    calls.delete        x
    calls.unmask        x       x                   x      x
    calls.mark          x       x      x                   x
    calls.restore       x       x                   x      x
    calls.pause         x       x            x                      (live calls in the row scope)
    audit.read          x                           x
    users.manage        x
    health.read         x                                        x
    tokens.manage       x
    calls.replay_approve x                          x
    calls.delete_approve                            x               (never the requester)
    calls.tag           x       x      x     x
    tags.manage         x
    qa.read             x       x      x     x                      (rows: see below)
    qa.review           x              x
    qa.assign           x       x
    qa.scorecards       x
    holds.read          x                           x      x
    holds.manage        x                                  x
    erasure.read        x                           x      x
    erasure.manage      x                                  x
    retention.read      x                           x
    retention.apply     x
    reports.read        x       x                   x
    reports.schedule    x       x
    storage.read        x                                        x

Row scopes (:mod:`pbx_recorder.catalog.scopes`): admin, auditor and legal see every call; a
supervisor the calls whose agent is in one of their teams (``team_agents``); an agent the calls
whose ``agent`` is their own account name; a QA reviewer the calls assigned to them
(``qa_assignments``); ``it`` no call at all.  An unknown role gets no verb and no row.

``calls.mark`` (add marks; delete one's own, admin any): the roles that review conversations;
legal annotates evidence; the auditor stays read-only; agents and IT may not.  ``calls.restore``
(bring a cold, archive-class recording back for a few days, which costs a retrieval fee): the
roles that listen for the organisation (lead, compliance, legal); an agent could otherwise order
the retrieval of every call of theirs.

Working with recordings (issue 9): ``calls.export`` follows the row scope (a lead exports their
team's calls; the auditor and agents never export).  ``calls.delete`` only *requests* a manual
deletion; a second person holding ``calls.delete_approve`` (the compliance role, the auditor)
approves it, never the requester.  ``qa.read`` rows: an agent reads the reviews of their own
calls, a QA reviewer the reviews they wrote, a lead their team's, admin all.  Reports and the
storage page carry no caller data beyond counts.
"""

from __future__ import annotations

from collections.abc import Mapping

from pbx_recorder.catalog.scopes import Scope

ROLES: tuple[str, ...] = ("admin", "supervisor", "qa", "agent", "auditor", "legal", "it")

VERBS: tuple[str, ...] = (
    "calls.view", "calls.play", "calls.download", "calls.export", "calls.delete", "calls.unmask",
    "audit.read", "users.manage", "health.read", "calls.mark", "calls.restore", "tokens.manage",
    "calls.replay_approve", "calls.pause", "calls.delete_approve", "calls.tag", "tags.manage", "qa.read",
    "qa.review", "qa.assign", "qa.scorecards", "holds.read", "holds.manage", "erasure.read", "erasure.manage",
    "retention.read", "retention.apply", "reports.read", "reports.schedule", "storage.read",
)

PERMISSIONS: Mapping[str, frozenset[str]] = {
    "admin": frozenset(VERBS) - {"calls.delete_approve"},  # deletion is approved by compliance only
    "supervisor": frozenset({"calls.view", "calls.play", "calls.download", "calls.unmask", "calls.mark",
                             "calls.restore", "calls.pause", "calls.export", "calls.tag", "qa.read",
                             "qa.assign", "reports.read", "reports.schedule"}),
    "qa": frozenset({"calls.view", "calls.play", "calls.mark", "calls.tag", "qa.read", "qa.review"}),
    "agent": frozenset({"calls.view", "calls.play", "calls.pause", "calls.tag", "qa.read"}),
    "auditor": frozenset({"calls.view", "calls.play", "calls.unmask", "audit.read", "calls.restore",
                          "calls.replay_approve", "calls.delete_approve", "holds.read", "erasure.read",
                          "retention.read", "reports.read"}),
    "legal": frozenset({"calls.view", "calls.play", "calls.download", "calls.export", "calls.unmask",
                        "calls.mark", "calls.restore", "holds.read", "holds.manage", "erasure.read",
                        "erasure.manage"}),
    "it": frozenset({"health.read", "storage.read"}),
}


def may(role: str | None, verb: str) -> bool:
    """True when ``role`` holds ``verb``; unknown roles and verbs are refused."""
    return bool(role) and verb in VERBS and verb in PERMISSIONS.get(str(role), frozenset())


def scope_for(role: str, name: str, team_agents: frozenset[str] = frozenset(),
              assigned: frozenset[str] | None = None) -> Scope:
    """The rows ``name`` (with ``role``) may see; ``team_agents``: the agents of their teams;
    ``assigned``: a reviewer's assigned calls as checked by the service (None: read by the query)."""
    if role in ("admin", "auditor", "legal"):
        return Scope.everything()
    if role == "supervisor":
        return Scope.of_agents(team_agents)
    if role == "agent":
        return Scope.of_agents(frozenset({name}))
    if role == "qa":
        return Scope.of_reviewer(name, assigned)
    return Scope.nothing()
