"""Who may read which report (pure).  ``reports.read``: admin and auditor any team or the overall
report; a supervisor only the teams they lead (``user_teams``), never the overall report; every
other role nothing.  ``reports.schedule`` saves a schedule for a report one may read."""

from __future__ import annotations

from pbx_recorder.service.roles import may

ANY_TEAM_ROLES = frozenset({"admin", "auditor"})


def may_read(role: str, teams: tuple[str, ...] | frozenset[str], team: str) -> bool:
    """``team`` '' is the overall report."""
    if not may(role, "reports.read"):
        return False
    if role in ANY_TEAM_ROLES:
        return True
    return role == "supervisor" and bool(team) and team in teams


def readable_teams(role: str, teams: tuple[str, ...], every_team: list[str]) -> list[str]:
    """The picker's choices ('' first = overall, when allowed)."""
    if role in ANY_TEAM_ROLES and may(role, "reports.read"):
        return ["", *every_team]
    return [t for t in sorted(set(teams)) if may_read(role, teams, t)]


def sees_every_produced(role: str) -> bool:
    """Admin lists every produced report; everyone else their own."""
    return role == "admin"
