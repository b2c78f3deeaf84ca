"""``pbx-recorder rules explain``: which rule decides a call, and why every other did not."""

from __future__ import annotations

import json
import time
from datetime import datetime

import click

from pbx_recorder.cli.authz import authorize
from pbx_recorder.core.rules import CallContext, RuleDecision, evaluate
from pbx_recorder.errors import ConfigError


def _parse_at(text: str | None) -> float | datetime:
    if not text:
        return time.time()
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an ISO date-time like 2026-11-21T10:00") from exc


def _action_line(d: RuleDecision) -> str:
    parts = [f"mode={d.mode}", f"consent={d.consent}", f"start_on={d.start_on}",
             f"record_notice={'yes' if d.record_notice else 'no'}"]
    for name in ("prompt", "language", "retention_class", "goodbye_prompt"):
        value = getattr(d, name)
        if value:
            parts.append(f"{name}={value}")
    if d.tags:
        parts.append("tags=" + ",".join(d.tags))
    parts.append(f"refusal={d.refusal_route}")
    return " ".join(parts)


def register(group: click.Group) -> None:
    @group.group("rules")
    def rules() -> None:
        """Inspect the recording rules."""

    @rules.command("explain")
    @click.option("--caller", default="", help="Caller number.")
    @click.option("--dialed", default="", help="Dialed number (DID for inbound calls).")
    @click.option("--direction", type=click.Choice(["inbound", "outbound", "internal", ""]),
                  default="inbound", show_default=True,
                  help='Call direction ("" = unknown: a call outside the consent Gosub).')
    @click.option("--queue", default="")
    @click.option("--agent", default="")
    @click.option("--region", default="")
    @click.option("--vip", is_flag=True, help="The caller is on the VIP list.")
    @click.option("--at", "at_text", default=None,
                  help="When (ISO, e.g. 2026-11-21T10:00; without an offset: wall time in each "
                       "rule's zone).  Default: now.")
    @click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
    @click.pass_context
    def explain(ctx: click.Context, caller: str, dialed: str, direction: str, queue: str, agent: str,
                region: str, vip: bool, at_text: str | None, as_json: bool) -> None:
        """Show the winning rule, its action, and each rule's match or miss reason."""
        from pbx_recorder.config import load_config

        config = load_config(ctx.obj["config_path"])
        if config is None or not hasattr(config, "rules"):
            raise ConfigError("the configuration has no rules", key="rules")
        authorize(config, None, "rules.explain")
        call = CallContext(direction=direction, dialed=dialed, caller=caller, queue=queue, agent=agent,
                           vip=vip, region=region, at=_parse_at(at_text))
        decision = evaluate(config.rules, call)
        if as_json:
            click.echo(json.dumps(decision.to_dict(), indent=2, sort_keys=True))
            return
        verdict = "RECORD" if decision.record else "DO NOT RECORD"
        winner = (f"rule {decision.rule!r} ({decision.verdict})" if decision.rule
                  else "default (no rule decided)")
        click.echo(f"decision: {verdict} by {winner}")
        if decision.record:
            click.echo(f"action:   {_action_line(decision)}")
        click.echo("rules considered:")
        for line in decision.explanation:
            click.echo(f"  {line}")
