"""Account administration: one implementation behind ``pbx-recorder users`` and the admin API
(``/api/users``, ``/api/tokens``, the ``/admin/users`` page).

Every change is audited as an admin change (actor, the actor's role, the target) in the same
transaction as the change.  An approver's account (admin, auditor) is made, given its role, a new
password or a new second factor on the host only (:mod:`pbx_recorder.service.provisioning`).
The last enabled admin can be neither disabled nor demoted (checked
in that transaction, so two admins demoting each other at once cannot both win).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pbx_recorder import audit_trail
from pbx_recorder.errors import AccessDenied, ConfigError
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import access_seal, api_token_store, provisioning, request_tag
from pbx_recorder.service.accounts import Accounts, User, check_name
from pbx_recorder.service.roles import ROLES
from pbx_recorder.service.totp import TotpStore

MAX_TEAM = 64


def _audit(acc: Accounts, actor: str, actor_role: str, action: str, target: str, detail: dict[str, Any],
           now: float) -> None:
    audit_trail.record(acc.conn, actor=actor, role=actor_role, action=action, target=target,
                       detail=request_tag.tagged(detail), now=now)


def user_rows(acc: Accounts, now: float) -> list[dict[str, Any]]:
    """Every account, its role, teams and state (never a hash or a secret)."""
    totp = TotpStore(acc.conn, None)
    return [{"name": u.name, "role": u.role, "teams": list(u.teams), "disabled": u.disabled,
             "locked": bool(u.locked_until and u.locked_until > now), "failed_logins": u.failed_logins,
             "totp": totp.state(u.name)} for u in acc.list()]


def team_rows(acc: Accounts) -> list[dict[str, Any]]:
    """Every team: its accounts (name, role, disabled) and the PBX agents it covers, whose calls
    its supervisors see.  Only rows that pass their seal count, as in the row scopes they make."""
    users = acc.list()
    return [{"team": team,
             "members": [{"name": u.name, "role": u.role, "disabled": u.disabled}
                         for u in users if team in u.teams],
             "agents": agents}
            for team, agents in acc.team_map().items()]


def _keep_an_admin(acc: Accounts, name: str) -> None:
    """AccessDenied when ``name`` is the last enabled admin (an admin row that fails its seal is
    not one)."""
    others = sum(1 for u in acc.list() if u.role == "admin" and not u.disabled and u.name != name)
    target = acc.get(name)
    if target is not None and target.role == "admin" and not target.disabled and others == 0:
        raise AccessDenied(f"{name} is the last enabled admin")


def _teams(teams: Iterable[str]) -> list[str]:
    out = sorted({t.strip() for t in teams if t.strip()})
    for team in out:
        check_name(team, "team name")
    return out


def add(acc: Accounts, name: str, role: str, password: str, teams: Iterable[str], *, actor: str,
        actor_role: str, now: float) -> User:
    provisioning.require_host_for_approver(actor_role, role, name, "the account")
    return acc.add(name, role, password, teams=_teams(teams), actor=actor, actor_role=actor_role, now=now)


def disable(acc: Accounts, name: str, *, actor: str, actor_role: str, now: float) -> None:
    with Tx(acc.conn):
        _keep_an_admin(acc, name)
        acc.disable(name, actor=actor, actor_role=actor_role, now=now)


def reset_password(acc: Accounts, name: str, password: str, *, actor: str, actor_role: str,
                   now: float) -> None:
    provisioning.require_host_for_approver(actor_role, acc._existing(name).role, name, "a new password")
    acc.reset_password(name, password, actor=actor, actor_role=actor_role, now=now)


def set_role(acc: Accounts, name: str, role: str, *, actor: str, actor_role: str, now: float) -> None:
    """New role; the user's sessions end (their verbs changed) and tokens wider than the new role
    stop working (checked at each use)."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    acc._existing(name)
    provisioning.require_host_for_approver(actor_role, role, name, "the role")
    with Tx(acc.conn):
        if role != "admin":
            _keep_an_admin(acc, name)
        access_seal.update(acc.conn, acc.seal, "users", {"name": name}, {"role": role, "updated_at": now})
        acc.conn.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
        _audit(acc, actor, actor_role, "users.set_role", name, {"role": role}, now)


def set_teams(acc: Accounts, name: str, teams: Iterable[str], *, actor: str, actor_role: str,
              now: float) -> None:
    acc._existing(name)
    teams = _teams(teams)
    with Tx(acc.conn):
        acc.conn.execute("DELETE FROM user_teams WHERE user_name = ?", (name,))
        for team in teams:
            access_seal.insert(acc.conn, acc.seal, "user_teams", {"user_name": name, "team": team})
        _audit(acc, actor, actor_role, "users.set_teams", name, {"teams": teams}, now)


def set_team_agents(acc: Accounts, team: str, agents: Iterable[str], *, actor: str, actor_role: str,
                    now: float) -> None:
    check_name(team, "team name")
    named = [check_name(a, "agent name") for a in agents]
    acc.set_team_agents(team, named, actor=actor, actor_role=actor_role, now=now)


def assign_review(acc: Accounts, call_id: str, reviewer: str, *, actor: str, actor_role: str,
                  now: float) -> None:
    user = acc._existing(reviewer)
    if user.role != "qa":
        raise ConfigError(f"{reviewer} is not a QA reviewer (role {user.role})")
    acc.assign_review(call_id, reviewer, actor=actor, actor_role=actor_role, now=now)


def reset_totp(acc: Accounts, name: str, *, actor: str, actor_role: str, now: float) -> None:
    role = acc._existing(name).role
    provisioning.require_host_for_approver(actor_role, role, name, "a second factor reset")
    with Tx(acc.conn):
        TotpStore(acc.conn, None, acc.seal).reset(name)
        acc.conn.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
        _audit(acc, actor, actor_role, "users.reset_totp", name, {}, now)


def create_token(acc: Accounts, owner: str, role: str, days: int, label: str, *, max_days: int, actor: str,
                 actor_role: str, now: float) -> tuple[str, api_token_store.ApiToken]:
    user = acc._existing(owner)
    if user.disabled:
        raise ConfigError(f"{owner} is disabled")
    if owner != actor:  # a token is a credential: another approver's is made on the host
        provisioning.require_host_for_approver(actor_role, user.role, owner, "an API token")
    with Tx(acc.conn):
        token, record = api_token_store.create(acc.conn, owner, user.role, role, days, label, now,
                                               max_days=max_days, seal=acc.seal)
        _audit(acc, actor, actor_role, "tokens.create", owner,
               {"id": record.id_hash[:16], "role": role, "days": days, "label": label}, now)
    return token, record


def token_rows(acc: Accounts, owner: str | None = None) -> list[dict[str, Any]]:
    return [{"id": t.id_hash[:16], "user": t.user, "role": t.role, "label": t.label,
             "created_at": t.created_at, "expires_at": t.expires_at, "last_used": t.last_used,
             "revoked": t.revoked}
            for t in api_token_store.listing(acc.conn, owner, acc.seal)]


def revoke_token(acc: Accounts, token_id: str, *, actor: str, actor_role: str, now: float) -> None:
    with Tx(acc.conn):
        record = api_token_store.revoke(acc.conn, token_id, acc.seal)
        _audit(acc, actor, actor_role, "tokens.revoke", record.user, {"id": record.id_hash[:16]}, now)
