"""``pbx-recorder plan``: storage sizing per tier per month (the figures: pbx_recorder/core/planner.py)."""

from __future__ import annotations

import click

from pbx_recorder.core import planner


@click.command("plan")
@click.option("--calls-per-day", type=click.FloatRange(min=0), required=True)
@click.option(
    "--avg-minutes", type=click.FloatRange(min=0), required=True, help="Average recorded minutes per call."
)
@click.option(
    "--format", "fmt", type=click.Choice(sorted(planner.BYTES_PER_HOUR)), default="wav", show_default=True
)
@click.option(
    "--retention",
    default="standard=180",
    show_default=True,
    help="Classes as name=days[:share], comma-separated; shares default to equal.",
)
@click.option(
    "--cold-after",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Days on the hot tier before migration.",
)
@click.option("--no-cold", is_flag=True, help="No cold tier: everything stays hot.")
@click.option("--months", type=click.IntRange(1, 600), default=36, show_default=True)
def plan_cmd(
    calls_per_day: float,
    avg_minutes: float,
    fmt: str,
    retention: str,
    cold_after: int,
    no_cold: bool,
    months: int,
) -> None:
    """Print hot/cold storage at the end of each month and the monthly growth."""
    try:
        classes = planner.parse_retention(retention)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--retention") from exc
    per_hour = planner.BYTES_PER_HOUR[fmt]
    per_day = planner.daily_bytes(calls_per_day, avg_minutes, fmt)
    click.echo(
        f"format {fmt}: {planner.human(per_hour)} per recorded hour; "
        f"{calls_per_day * avg_minutes / 60:,.1f} h/day = {planner.human(per_day)}/day"
    )
    click.echo("classes: " + ", ".join(f"{c.name} {c.days or 'forever'}d x {c.share:.0%}" for c in classes))
    click.echo(f"{'month':>5}  {'hot':>12}  {'cold':>12}  {'total':>12}  {'growth':>12}")
    for r in planner.plan(
        calls_per_day, avg_minutes, fmt, classes, cold_after=None if no_cold else cold_after, months=months
    ):
        click.echo(
            f"{r.month:>5}  {planner.human(r.hot):>12}  {planner.human(r.cold):>12}  "
            f"{planner.human(r.total):>12}  {planner.human(r.growth):>12}"
        )


def register(group: click.Group) -> None:
    group.add_command(plan_cmd)
