"""``pbx-recorder users totp-key init | reset-totp NAME | token create|list|revoke``: the second
factor's sealing key and API tokens (root or the service user only, like ``users``; a named
operator of a root front end needs ``users.manage``).

``totp-key init`` creates ``web.secret_key_file`` (32 random bytes, 0600, never overwritten).
``token create`` prints the token once; the catalog keeps its SHA-256 only.
"""

from __future__ import annotations

import json
import time

import click

from pbx_recorder.cli import authz, cmd_users
from pbx_recorder.errors import ConfigError


@click.group("totp-key")
def totp_key_group() -> None:
    """The key that seals TOTP secrets (web.secret_key_file)."""


@totp_key_group.command("init")
@click.pass_context
def totp_key_init(ctx: click.Context) -> None:
    """Create web.secret_key_file (0600); refuses to overwrite an existing key."""
    from pbx_recorder.config import load_config
    from pbx_recorder.service.secret_box import create_key_file

    cmd_users._require_privileged()
    config = load_config(ctx.obj["config_path"])
    authz.host_admin_or_authorize(config, None, cmd_users.ACTION)  # a named operator: admin only
    if config.web.secret_key_file is None:
        raise ConfigError("web.secret_key_file: is required to seal TOTP secrets (set it, then run this)")
    click.echo(f"created {create_key_file(config.web.secret_key_file)}")


@click.command("reset-totp")
@click.argument("name")
@click.pass_context
def reset_totp_cmd(ctx: click.Context, name: str) -> None:
    """Remove NAME's second factor (they enrol again at their next login)."""
    from pbx_recorder.service import user_admin

    cmd_users.admin_change(ctx, user_admin.reset_totp, name)
    click.echo(f"second factor of {name} removed")


@click.group("token")
def token_group() -> None:
    """API tokens for automation (Authorization: Bearer)."""


@token_group.command("create")
@click.argument("name")
@click.option("--role", required=True, help="No wider than NAME's own role.")
@click.option("--days", type=int, required=True, help="Lifetime in days (at most web.token_max_days).")
@click.option("--label", default="", help="Shown in the audit log of every request the token makes.")
@click.pass_context
def token_create(ctx: click.Context, name: str, role: str, days: int, label: str) -> None:
    """Create a token of NAME and print it once."""
    from pbx_recorder.config import load_config
    from pbx_recorder.service import user_admin

    cmd_users._require_privileged()  # before the config is read
    max_days = load_config(ctx.obj["config_path"]).web.token_max_days
    token, record = cmd_users.admin_change(ctx, user_admin.create_token, name, role, days, label,
                                           max_days=max_days)
    click.echo(token)
    click.echo(f"id {record.id_hash[:16]}, role {role}, expires in {days} day(s); shown once", err=True)


@token_group.command("list")
@click.option("--user", "owner", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def token_list(ctx: click.Context, owner: str | None, as_json: bool) -> None:
    """The tokens (id prefix, owner, role, label, expiry, last use; never the token)."""
    from pbx_recorder.service import user_admin

    rows = cmd_users.admin_read(ctx, "tokens.list", user_admin.token_rows, owner,
                                shown={"user": owner} if owner else None)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "revoked" if r["revoked"] else "expired" if r["expires_at"] <= time.time() else "live"
        click.echo(f"{r['id']} {r['user']:<20} {r['role']:<10} {state:<8} {r['label']}")


@token_group.command("revoke")
@click.argument("token_id")
@click.pass_context
def token_revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke the token whose id starts with TOKEN_ID (from `token list`)."""
    from pbx_recorder.service import user_admin

    cmd_users.admin_change(ctx, user_admin.revoke_token, token_id)
    click.echo(f"token {token_id} revoked")


def attach(group: click.Group) -> None:
    from pbx_recorder.cli.users_seal_command import seal_cmd

    group.add_command(seal_cmd)
    group.add_command(totp_key_group)
    group.add_command(reset_totp_cmd)
    group.add_command(token_group)
