"""The operator service's roles, their verbs and their row scopes (pure, no I/O).

Verbs are separate permissions (the audit tells a play from a download)::

    verb              admin supervisor qa  agent auditor legal it
    calls.view          x       x      x     x      x      x
    calls.play          x       x      x     x      x      x
    calls.download      x       x                          x
    calls.export        x                                  x
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

Row scopes (:mod:`pbx_recorder.catalog.scopes`): admin, auditor and legal see every call; a
supervisor the calls whose agent is in one of their teams (``team_agents``); an agent the calls
whose ``agent`` is their own account name; a QA reviewer the calls assigned to them
(``qa_assignments``); ``it`` no call at all.  An unknown role gets no verb and no row.

``calls.mark`` (add marks; delete one's own, admin any): the roles that review conversations;
legal annotates evidence; the auditor stays read-only; agents and IT may not.  ``calls.restore``
(bring a cold, archive-class recording back for a few days, which costs a retrieval fee): the
roles that listen for the organisation (lead, compliance, legal); an agent could otherwise order
the retrieval of every call of theirs.
"""

from __future__ import annotations

from collections.abc import Mapping

from pbx_recorder.catalog.scopes import Scope

ROLES: tuple[str, ...] = ("admin", "supervisor", "qa", "agent", "auditor", "legal", "it")

VERBS: tuple[str, ...] = (
    "calls.view", "calls.play", "calls.download", "calls.export", "calls.delete", "calls.unmask",
    "audit.read", "users.manage", "health.read", "calls.mark", "calls.restore", "tokens.manage",
    "calls.replay_approve", "calls.pause",
)

PERMISSIONS: Mapping[str, frozenset[str]] = {
    "admin": frozenset(VERBS),
    "supervisor": frozenset({"calls.view", "calls.play", "calls.download", "calls.unmask", "calls.mark",
                             "calls.restore", "calls.pause"}),
    "qa": frozenset({"calls.view", "calls.play", "calls.mark"}),
    "agent": frozenset({"calls.view", "calls.play", "calls.pause"}),
    "auditor": frozenset({"calls.view", "calls.play", "calls.unmask", "audit.read", "calls.restore",
                          "calls.replay_approve"}),
    "legal": frozenset({"calls.view", "calls.play", "calls.download", "calls.export", "calls.unmask",
                        "calls.mark", "calls.restore"}),
    "it": frozenset({"health.read"}),
}


def may(role: str | None, verb: str) -> bool:
    """True when ``role`` holds ``verb``; unknown roles and verbs are refused."""
    return bool(role) and verb in VERBS and verb in PERMISSIONS.get(str(role), frozenset())


def scope_for(role: str, name: str, team_agents: frozenset[str] = frozenset()) -> Scope:
    """The rows ``name`` (with ``role``) may see; ``team_agents``: the agents of their teams."""
    if role in ("admin", "auditor", "legal"):
        return Scope.everything()
    if role == "supervisor":
        return Scope.of_agents(team_agents)
    if role == "agent":
        return Scope.of_agents(frozenset({name}))
    if role == "qa":
        return Scope.of_reviewer(name)
    return Scope.nothing()
