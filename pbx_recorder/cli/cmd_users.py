"""``pbx-recorder users add|disable|reset-password|set-role|set-teams|list|teams|team-agents|assign-review``:
the operator service's local accounts, through the same functions as the admin API
(``pbx_recorder.service.user_admin``).

Only root or the service user (``pbx-recorder``) may run these: they write the catalog, which no
one else can open.  A root front end acting for a named operator (``PBX_RECORDER_USER``) needs a
role that allows ``users.manage`` (admin), and the audit names that operator.  Passwords are read
from a prompt (typed twice) or, with ``--password-stdin``, from the first line of stdin; never from
the command line, where ``ps`` and shell history would keep them.  Every change is audited with
the OS user as actor and role ``host-admin`` (or the named operator and their role), and so is
every read (``users list``: ``users.list``; ``users token list``: ``tokens.list``, one row per run,
before anything is printed), as the service's account and token lists are.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from pbx_recorder import audit_trail
from pbx_recorder.cli import authz, privilege
from pbx_recorder.service import user_admin
from pbx_recorder.service.roles import ROLES

ACTOR_ROLE = authz.HOST_ADMIN
ACTION = "users.manage"  #: what a named operator's role must allow (``core/access_policy.py``)


def _require_privileged() -> str:
    """The one check of ``cli/privilege.py`` (also run by the gate before this callback); the
    actor: the named operator when a root front end acts for one, else the OS account."""
    privilege.require_privileged("managing accounts")
    return authz.current_actor()


@contextmanager
def admin_session(ctx: click.Context) -> Iterator[tuple[Any, authz.Principal]]:
    """The accounts (catalog closed afterwards) and who acts: root or the service user as
    ``host-admin``; a named operator only when their role allows ``users.manage`` (a refusal is
    audited in the catalog, AccessDenied, exit 7).  Nothing else (no password prompt) comes first."""
    with admin_session_config(ctx) as (_config, accounts, who):
        yield accounts, who


@contextmanager
def admin_session_config(ctx: click.Context) -> Iterator[tuple[Any, Any, authz.Principal]]:
    """``admin_session`` with the configuration it loaded (read once per command)."""
    from pbx_recorder.config import load_config
    from pbx_recorder.lifecycle.journal import open_catalog
    from pbx_recorder.service import access_seal
    from pbx_recorder.service.accounts import Accounts

    _require_privileged()
    config = load_config(ctx.obj["config_path"])
    conn = open_catalog(config.catalog.target)
    try:
        who = authz.host_admin_or_authorize(config, conn, ACTION)
        yield config, Accounts(conn, seal=access_seal.of_config(config)), who
    finally:
        conn.close()


def admin_change(ctx: click.Context, operation: Any, *args: Any, **kwargs: Any) -> Any:
    """``user_admin.<operation>(accounts, *args)`` in an ``admin_session``, audited by ``user_admin``
    with the session's actor and role."""
    with admin_session(ctx) as (accounts, who):
        return operation(accounts, *args, actor=who.actor, actor_role=who.role, now=time.time(), **kwargs)


def admin_read(ctx: click.Context, action: str, query: Any, *args: Any,
               shown: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``user_admin.<query>(accounts, *args)`` in an ``admin_session``, and the read's one audit row
    (``action``, as the service's list of the same rows: ``client`` ``cli``, ``shown`` (the filter)
    and the rows returned), written before the caller prints anything: no row, no output."""
    with admin_session(ctx) as (accounts, who):
        rows: list[dict[str, Any]] = query(accounts, *args)
        audit_trail.record(accounts.conn, actor=who.actor, role=who.role, action=action, target="",
                           detail={"client": "cli", **(shown or {}), "results": len(rows)}, now=time.time())
        return rows


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group(name="users")
def users_group() -> None:
    """Accounts of the operator service (root or the service user only)."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--team", "teams", multiple=True, help="A team the user leads (supervisor); repeatable.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def add_cmd(ctx: click.Context, name: str, role: str, teams: tuple[str, ...], password_stdin: bool) -> None:
    """Create an account (the password is asked for, never given as an argument)."""
    with admin_session(ctx) as (accounts, who):  # authorized before the password is read
        user_admin.add(accounts, name, role, _password(password_stdin), teams, actor=who.actor,
                       actor_role=who.role, now=time.time())
    click.echo(f"user {name} added (role {role})")


@users_group.command("disable")
@click.argument("name")
@click.pass_context
def disable_cmd(ctx: click.Context, name: str) -> None:
    """Disable an account and end its sessions."""
    admin_change(ctx, user_admin.disable, name)
    click.echo(f"user {name} disabled")


@users_group.command("reset-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def reset_cmd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a new password; clears the lock and ends the user's sessions."""
    with admin_session(ctx) as (accounts, who):  # authorized before the password is read
        user_admin.reset_password(accounts, name, _password(password_stdin), actor=who.actor,
                                  actor_role=who.role, now=time.time())
    click.echo(f"password of {name} reset")


@users_group.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@click.pass_context
def set_role_cmd(ctx: click.Context, name: str, role: str) -> None:
    """Give NAME another role (ends their sessions; never demotes the last enabled admin)."""
    admin_change(ctx, user_admin.set_role, name, role)
    click.echo(f"user {name}: role {role}")


@users_group.command("set-teams")
@click.argument("name")
@click.argument("teams", nargs=-1)
@click.pass_context
def set_teams_cmd(ctx: click.Context, name: str, teams: tuple[str, ...]) -> None:
    """Set the teams NAME leads (none: no team)."""
    admin_change(ctx, user_admin.set_teams, name, teams)
    click.echo(f"user {name}: teams {', '.join(sorted(set(teams))) or '-'}")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """The accounts, their roles, teams and state (never a hash)."""
    rows = admin_read(ctx, "users.list", user_admin.user_rows, time.time())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "disabled" if r["disabled"] else "locked" if r["locked"] else "active"
        click.echo(f"{r['name']:<24} {r['role']:<11} {state:<9} {','.join(r['teams'])}")


@users_group.command("teams")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def teams_cmd(ctx: click.Context, as_json: bool) -> None:
    """Every team: its accounts and the PBX agents it covers (audited ``teams.list``)."""
    rows = admin_read(ctx, "teams.list", user_admin.team_rows)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        members = ",".join(f"{m['name']}({m['role']}{', disabled' if m['disabled'] else ''})"
                           for m in r["members"])
        click.echo(f"{r['team']:<24} accounts: {members or '-'}")
        agents = ",".join(r["agents"]) or "- (its supervisors see no calls through it)"
        click.echo(f"{'':<24} agents:   {agents}")


@users_group.command("team-agents")
@click.argument("team")
@click.argument("agents", nargs=-1)
@click.pass_context
def team_agents_cmd(ctx: click.Context, team: str, agents: tuple[str, ...]) -> None:
    """Set the PBX agent names TEAM covers (a supervisor of TEAM sees their calls)."""
    admin_change(ctx, user_admin.set_team_agents, team, agents)
    click.echo(f"team {team}: {len(set(agents))} agent(s)")


@users_group.command("assign-review")
@click.argument("call_id")
@click.argument("reviewer")
@click.pass_context
def assign_cmd(ctx: click.Context, call_id: str, reviewer: str) -> None:
    """Assign CALL_ID to the QA reviewer REVIEWER (who then sees that call)."""
    admin_change(ctx, user_admin.assign_review, call_id, reviewer)
    click.echo(f"call {call_id} assigned to {reviewer}")


def register(group: click.Group) -> None:
    from pbx_recorder.cli import users_auth_commands

    users_auth_commands.attach(users_group)
    group.add_command(users_group)
