"""``pbx-recorder review sample [--week YYYY-Www] [--dry-run]``: run the QA sampling rules
(``web.qa_sampling``) over one ISO week and assign the picked calls to the QA reviewers
(:mod:`pbx_recorder.service.qa_sampling_run`).  Root or the service user only, like ``users``:
it writes the catalog, which no one else can open; a root front end acting for a named operator
needs ``qa.assign`` (admin).  The default week is the last full one.  The agent is printed through
``mask_channel``: a remote agent is a dial string holding their mobile number.  A ``--dry-run``
assigns nothing but prints the same calls and agents, so it writes one ``qa.sample.dry_run`` row
(target: the week; picks per rule) before printing, as a run writes its ``qa.assign`` rows.
"""

from __future__ import annotations

import time

import click

from pbx_recorder import audit_trail
from pbx_recorder.cli import authz
from pbx_recorder.cli.privilege import require_privileged
from pbx_recorder.core.masking import mask_channel

DRY_RUN_ACTION = "qa.sample.dry_run"  #: the audit row of a dry run (the calls and agents it shows)


@click.group(name="review")
def review_group() -> None:
    """QA review: sample each agent's calls for the reviewers."""


@review_group.command("sample")
@click.option("--week", help="ISO week YYYY-Www, days in the config's timezone "
              "(default: the last full week).")
@click.option("--dry-run", is_flag=True, help="Print what would be assigned; write nothing.")
@click.pass_context
def sample_cmd(ctx: click.Context, week: str | None, dry_run: bool) -> None:
    """Assign each agent's sampled calls of the week to the rules' reviewers (idempotent)."""
    from zoneinfo import ZoneInfo

    from pbx_recorder.catalog.number_keys import protection_for
    from pbx_recorder.config import load_config
    from pbx_recorder.errors import ConfigError
    from pbx_recorder.lifecycle.journal import open_catalog
    from pbx_recorder.service import access_seal, qa_sampling, qa_sampling_run
    from pbx_recorder.service.context import seal_key_of

    require_privileged("'pbx-recorder review sample'")
    config = load_config(ctx.obj["config_path"])
    who = authz.host_admin_or_authorize(config, None, "qa.assign")
    rules = config.web.qa_sampling
    if not rules:
        raise ConfigError("web.qa_sampling: no sampling rule is configured")
    tz, now = ZoneInfo(config.timezone), time.time()
    try:
        week = week or qa_sampling.last_full_week(now, tz)
        bounds = qa_sampling.week_bounds(week, tz)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--week") from exc
    public_key = seal_key_of(config)  # with it, a pick whose call row fails its seal is not assigned
    check = (qa_sampling_run.sealed_row_check(public_key, protection_for(config))
             if public_key is not None else None)
    conn = open_catalog(config.catalog.target)
    try:
        seed = qa_sampling_run.seed_of(conn, config.web)
        results = qa_sampling_run.run(conn, rules, seed, week, bounds, actor=who.actor, role=who.role,
                                      now=now, dry_run=dry_run, seal=access_seal.of_config(config),
                                      row_problem=check)
        if dry_run:  # a run writes its qa.assign and qa.sample rows; a dry run shows the same picks
            audit_trail.record(conn, actor=who.actor, role=who.role, action=DRY_RUN_ACTION, target=week,
                               detail={"client": "cli", "rules": {r.rule: len(r.picks) for r in results},
                                       "results": sum(len(r.picks) for r in results)}, now=now)
    finally:
        conn.close()
    for result in results:
        for pick in result.picks:
            agent = mask_channel(pick.agent)  # a remote agent's dial string holds their mobile
            click.echo(f"{week}  {result.rule:<16} {agent:<16} {pick.call_id:<40} -> {pick.reviewer}")
        verb = "would assign" if dry_run else f"assigned {result.new} new of"
        click.echo(f"rule {result.rule}: {verb} {len(result.picks)} call(s) picked for {week}")
        if result.refused:
            click.echo(f"rule {result.rule}: ALERT {len(result.refused)} picked call(s) not assigned, their "
                       f"row fails its seal (see `pbx-recorder verify`): {', '.join(result.refused)}")


def register(group: click.Group) -> None:
    group.add_command(review_group)
