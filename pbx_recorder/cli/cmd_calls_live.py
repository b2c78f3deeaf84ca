"""``pbx-recorder calls live``: calls going on now (from the daemon's saved live-call state),
with their channels and whether they are being recorded, so an operator can pause one.

Every run writes one audit row before it prints anything (``calls.live``, ``calls.live.unmask``
with ``--unmask``: the call ids listed, the ``--channel`` asked for, ``client`` ``cli``): who
watched which calls is personal data read, masked numbers or not."""

from __future__ import annotations

import datetime as dt
import json

import click

from pbx_recorder.cli.authz import authorize
from pbx_recorder.cli.live_calls import channel_matches, live_calls
from pbx_recorder.core.masking import present_record, sanitize


@click.command("live")
@click.option("--channel", help="Only calls with a leg on this channel / endpoint (e.g. PJSIP/1001).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--unmask", is_flag=True, help="Show full numbers (audited).")
@click.pass_context
def live_command(ctx: click.Context, channel: str | None, as_json: bool, unmask: bool) -> None:
    """Calls in progress: call id, caller, agent/queue, channels, recording state."""
    from pbx_recorder.catalog import Catalog
    from pbx_recorder.config import load_config

    config = load_config(ctx.obj.get("config_path"))
    from pbx_recorder.catalog.number_keys import protection_for

    catalog = Catalog(config.catalog.target, numbers=protection_for(config))
    try:
        who = authorize(config, catalog, "calls.search", also=("calls.unmask",) if unmask else ())
        calls = live_calls(catalog.load_live_calls())
        if channel:
            calls = [c for c in calls if any(channel_matches(ch, channel) for ch in c.channels)]
        # the read's one row (the calls it lists), before anything is shown (no row, no output)
        detail = {"client": "cli", **({"channel": channel} if channel else {}),
                  "calls": [c.call_id for c in calls]}
        catalog.audit(who.actor, who.role, "calls.live.unmask" if unmask else "calls.live", "", detail)
    finally:
        catalog.close()
    shown = [present_record({"call_id": c.call_id, "started_at": c.started_at, "state": c.state,
                             "caller_num": c.caller_num, "agent": c.agent, "queue": c.queue,
                             "channels": list(c.channels), "recording": c.recording}, unmask)
             for c in calls]
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for c in shown:
        started = dt.datetime.fromtimestamp(c["started_at"]).strftime("%H:%M:%S") if c["started_at"] else "-"
        channels = ", ".join(sanitize(x, 64) for x in c["channels"])
        click.echo(f"{started}  {c['call_id']}  {sanitize(c['caller_num'], 20):<16} "
                   f"{c['recording'] or 'not recorded':<12}  {channels}")
    click.echo(f"{len(shown)} live call(s)")


def register(group: click.Group) -> None:
    calls = group.commands.get("calls")
    if not isinstance(calls, click.Group):
        calls = click.Group("calls", help="Find and control calls.")
        group.add_command(calls)
    calls.add_command(live_command)
