"""``pbx-recorder retention report|apply|set-class``."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import click

from pbx_recorder.lifecycle.job_lease import exclusive_job
from pbx_recorder.lifecycle.runtime import Runtime


@click.group()
def retention() -> None:
    """Retention review and disposal (holds and protected classes always win)."""


@retention.command("report")
@click.option("--json", "as_json", is_flag=True)
@click.option("--at", "at", type=float, default=None, help="Evaluate at this epoch time (default: now).")
@click.pass_context
def report_cmd(ctx: click.Context, as_json: bool, at: float | None) -> None:
    """What would be disposed of now, and why; what is refused, and why."""
    rt = Runtime.load(ctx.obj["config_path"], "retention.report")
    items = rt.retention().report(at or time.time())
    rt.audit("retention.report", "", {"items": len(items)})
    if as_json:
        click.echo(json.dumps([asdict(d) for d in items], indent=2))
        return
    for d in items:
        click.echo(f"{d.action:8} {d.recording_id}  call {d.call_id}  [{d.policy}]  {d.reason}")
    n = sum(d.action == "dispose" for d in items)
    click.echo(f"{n} to dispose, {len(items) - n} refused")


@retention.command("apply")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def apply_cmd(ctx: click.Context, yes: bool) -> None:
    """Dispose of every expired recording not under hold or protection."""
    rt = Runtime.load(ctx.obj["config_path"], "retention.apply")
    if not yes:
        click.confirm("Delete expired recordings permanently?", abort=True)
    with exclusive_job(rt.config, "retention-apply") as busy:
        if busy:
            click.echo(busy)
            return
        res = rt.retention().apply(time.time(), rt.actor)
    rt.audit(
        "retention.apply",
        "",
        {"disposed": len(res.disposed), "refused": len(res.refused), "failed": len(res.failed)},
    )
    for d in res.refused:
        click.echo(f"refused  {d.recording_id}: {d.reason}")
    click.echo(f"disposed {len(res.disposed)}, refused {len(res.refused)}, failed {len(res.failed)}")


@retention.command("set-class")
@click.argument("call_id")
@click.argument("class_name")
@click.pass_context
def set_class_cmd(ctx: click.Context, call_id: str, class_name: str) -> None:
    """Change a call's retention class (recomputes retain_until; audited)."""
    rt = Runtime.load(ctx.obj["config_path"], "retention.set_class", call_id)
    changes = rt.retention().set_class(call_id, class_name, actor=rt.actor, role=rt.role, now=time.time())
    click.echo(f"call {call_id}: class {class_name}, {len(changes)} recording(s) updated")


def register(group: click.Group) -> None:
    group.add_command(retention)
