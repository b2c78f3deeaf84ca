"""``pbx-recorder retention report|apply|set-class``."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import click

from pbx_recorder.lifecycle.job_lease import exclusive_job
from pbx_recorder.lifecycle.runtime import Runtime
from pbx_recorder.progress import reporter


@click.group()
def retention() -> None:
    """Retention review and disposal (holds and protected classes always win)."""


@retention.command("report")
@click.option("--json", "as_json", is_flag=True)
@click.option("--at", "at", type=float, default=None, help="Evaluate at this epoch time (default: now).")
@click.option("--progress", "show_progress", is_flag=True, help="Progress on stderr (also when piped).")
@click.pass_context
def report_cmd(ctx: click.Context, as_json: bool, at: float | None, show_progress: bool) -> None:
    """What would be disposed of now, and why; what is refused, and why (streamed as found).

    The read is audited before the first line is printed (call ids, recording ids, the reasons
    holds give): a row that cannot be written prints nothing.  The row keeps the evaluation time,
    from which the same report can be produced again; the counts are on the last line."""
    rt = Runtime.load(ctx.obj["config_path"], "retention.report")
    at = at or time.time()
    rt.audit("retention.report", "", {"started": True, "at": at})
    bar = reporter("retention report", force=show_progress)
    n = refused = 0
    if as_json:
        click.echo("[")
    for d in rt.retention().iter_report(at, progress=bar):
        if as_json:  # one object per line, a JSON array as a whole: nothing is held back
            click.echo(("," if n + refused else "") + json.dumps(asdict(d), sort_keys=True))
        else:
            click.echo(f"{d.action:8} {d.recording_id}  call {d.call_id}  [{d.policy}]  {d.reason}")
        n, refused = (n + 1, refused) if d.action == "dispose" else (n, refused + 1)
        bar.extra = f"{n} to dispose, {refused} refused"
    bar.close()
    if as_json:
        click.echo("]")
        return
    click.echo(f"{n} to dispose, {refused} refused")


@retention.command("apply")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--progress", "show_progress", is_flag=True, help="Progress on stderr (also when piped).")
@click.pass_context
def apply_cmd(ctx: click.Context, yes: bool, show_progress: bool) -> None:
    """Dispose of every expired recording not under hold or protection."""
    rt = Runtime.load(ctx.obj["config_path"], "retention.apply")
    if not yes:
        click.confirm("Delete expired recordings permanently?", abort=True)
    with exclusive_job(rt.config, "retention-apply") as busy:
        if busy:
            click.echo(busy)
            return
        bar = reporter("retention apply", force=show_progress)
        res = rt.retention().apply(time.time(), rt.actor, progress=bar)
        bar.close()
    rt.audit(
        "retention.apply",
        "",
        {"disposed": len(res.disposed), "refused": len(res.refused), "failed": len(res.failed),
         "quarantine_deleted": len(res.quarantine_deleted), "exports_withdrawn": res.exports_withdrawn},
    )
    for d in res.refused:
        click.echo(f"refused  {d.recording_id}: {d.reason}")
    for q in res.quarantine_deleted:
        click.echo(f"removed  spool quarantine {q} (a leftover of a disposed recording)")
    for job in res.exports_withdrawn:
        click.echo(f"withdrawn audio export {job} (a disposed recording was in it)")
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
