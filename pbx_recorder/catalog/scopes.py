"""Row scopes: which calls an operator may see at all, as one SQL clause (pure, no I/O).

A :class:`Scope` is built once per request from the user's account
(:func:`pbx_recorder.service.roles.scope_for`) and handed to the query builders
(:func:`pbx_recorder.catalog.queries.build_search` / ``build_count``), which add its clause to
every search, count and single-call read.  A row outside the scope is never read, so it can
neither be shown nor hinted at.

    kind       clause                                                       who
    all        (none)                                                       admin, auditor, legal
    agents     calls.agent IN (?, ...)     (empty set: nothing)             agent (own), supervisor (teams)
    reviewer   calls.call_id IN (SELECT call_id FROM qa_assignments          qa
                                 WHERE reviewer = ?)
               or, with sealed access rows, calls.call_id IN (?, ...): the
               assignments whose seal held (service.access_seal)
    nothing    1 = 0                                                         it, unknown roles
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ScopeKind = Literal["all", "agents", "reviewer", "nothing"]
#: more agents than this in one IN list is a configuration mistake, not a team
MAX_AGENTS = 5000
#: a reviewer's scope lists at most this many assigned calls (their newest assignments)
MAX_ASSIGNED = 20000


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    agents: frozenset[str] = frozenset()
    reviewer: str = ""
    #: a reviewer's assigned calls as read and checked by the service (None: the subquery)
    calls: frozenset[str] | None = None

    @property
    def reads_agent(self) -> bool:
        """The scope is decided by the call row's own ``agent`` column (own calls, a team's), so a
        reader that can check the row's seal must (``CallSearch.scope_guard``)."""
        return self.kind == "agents"

    @classmethod
    def everything(cls) -> Scope:
        return cls("all")

    @classmethod
    def of_agents(cls, agents: frozenset[str] | set[str]) -> Scope:
        return cls("agents", agents=frozenset(a for a in agents if a))

    @classmethod
    def of_reviewer(cls, reviewer: str, calls: frozenset[str] | None = None) -> Scope:
        return cls("reviewer", reviewer=reviewer, calls=calls) if reviewer else cls("nothing")

    @classmethod
    def nothing(cls) -> Scope:
        return cls("nothing")

    def __post_init__(self) -> None:
        if self.kind not in ("all", "agents", "reviewer", "nothing"):
            raise ValueError(f"unknown scope kind {self.kind!r}")
        if len(self.agents) > MAX_AGENTS:
            raise ValueError(f"a scope of more than {MAX_AGENTS} agents")
        if self.calls is not None and len(self.calls) > MAX_ASSIGNED:
            raise ValueError(f"a scope of more than {MAX_ASSIGNED} assigned calls")


def scope_clause(scope: Scope | None, params: list[Any], table: str = "calls") -> str | None:
    """The WHERE term restricting ``table`` (the ``calls`` table or its alias) to ``scope``, its
    parameters appended to ``params``; None for no restriction (``None`` or ``all``)."""
    if scope is None or scope.kind == "all":
        return None
    if scope.kind == "agents" and scope.agents:
        agents = sorted(scope.agents)
        params.extend(agents)
        return f"{table}.agent IN ({', '.join('?' for _ in agents)})"
    if scope.kind == "reviewer" and scope.reviewer and scope.calls:
        calls = sorted(scope.calls)
        params.extend(calls)
        return f"{table}.call_id IN ({', '.join('?' for _ in calls)})"
    if scope.kind == "reviewer" and scope.reviewer and scope.calls is None:
        params.append(scope.reviewer)
        return f"{table}.call_id IN (SELECT q.call_id FROM qa_assignments q WHERE q.reviewer = ?)"
    return "1 = 0"  # nothing, an empty team, a reviewer without a name: fail closed
