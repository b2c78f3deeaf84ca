"""``pbx-recorder run``: the recorder daemon (AMI + consent FastAGI + pipeline + shipper)."""

from __future__ import annotations

import click


@click.command("run")
@click.pass_context
def run_command(ctx: click.Context) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT (exit 0 after a graceful stop)."""
    from pbx_recorder.app import build_app
    from pbx_recorder.config import load_config
    from pbx_recorder.daemon import run_daemon

    config = load_config(ctx.obj.get("config_path"))
    summary = run_daemon(build_app(config))
    click.echo(f"stopped: {summary.line()}", err=True)


def register(group: click.Group) -> None:
    group.add_command(run_command)
