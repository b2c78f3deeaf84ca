"""``pbx-recorder calls search|show``: find calls in the catalog, numbers masked by default.

Both need ``calls.search`` / ``calls.show``; ``--unmask`` also needs ``calls.unmask`` (not
agents), shows full numbers and is written to the audit log with the actor and role
(``cli.authz``: ``PBX_RECORDER_USER`` or the OS user).  Every search writes one audit row, as the
service's does (``calls.search``, or ``calls.search.unmask``: the filter with numbers masked and
the rows returned, ``client`` ``cli``), whoever runs it: an operator named by the root front end,
and the host administrator or the recorder's own account running the CLI directly (they read the
same personal data).  A number search writes its throttle row first, as in the service.  ``show``
writes one row too, as the service's GET /api/calls/{id} does: ``calls.view`` (``calls.show.unmask``
with ``--unmask``; ``calls.view.absent`` for a call id not in the catalog), target the call.  Each
row is written before anything is printed: when the audit log cannot be written, nothing is shown.
Other modules add sub-commands to the same ``calls`` group (``cmd_calls_control.py``:
pause/resume) via ``register``.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.queries import COUNT_READ_CAP, PRESETS, STATUSES
from pbx_recorder.catalog.repository import SearchPage
from pbx_recorder.cli import number_throttle
from pbx_recorder.cli.authz import Principal, authorize
from pbx_recorder.core import masking
from pbx_recorder.core.masking import sanitize
from pbx_recorder.errors import ConfigError, NotFound
from pbx_recorder.recording import manifest_copy

TABLE = (("started", 19), ("call id", 28), ("status", 9), ("caller", 15), ("callee", 15),
         ("agent", 12), ("queue", 10), ("consent", 11), ("billsec", 7))


def _open(ctx: click.Context) -> tuple[Catalog, tzinfo, Any]:
    from pbx_recorder.config import load_config

    config = load_config(ctx.obj["config_path"])
    try:
        tz: tzinfo = ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {config.timezone!r}", key="timezone") from exc
    from pbx_recorder.catalog.number_keys import protection_for

    return Catalog(config.catalog.target, numbers=protection_for(config)), tz, config


def _parse_time(text: str | None, tz: tzinfo, option: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: use YYYY-MM-DD[THH:MM[:SS]] or epoch seconds",
                                 param_hint=option) from exc
    return (when if when.tzinfo else when.replace(tzinfo=tz)).timestamp()


def _fmt_time(ts: float | None, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def present_call(row: dict[str, Any], unmask: bool) -> dict[str, Any]:
    """A call row for output: ``masking.present_call`` (numbers masked unless ``unmask``)."""
    return masking.present_call(row, unmask)


def present_recording(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("manifest", "wrapped_key")}
    out["files"] = manifest_copy.parse(row.get("manifest")).get("files", [])  # kept in the catalog copy
    return out


def _authorize(catalog: Catalog, config: Any, action: str, unmask: bool, target: str = "") -> Principal:
    """``action``, plus ``calls.unmask`` when full numbers are asked for."""
    return authorize(config, catalog, action, target, also=("calls.unmask",) if unmask else ())


def _footer(page: SearchPage) -> str:
    shown = f"{len(page.rows)} call(s)"
    if page.count is not None:
        shown += f" of {page.count} matching" + ("" if page.count.exact else " (counting stops there)")
    if page.next_cursor:
        shown += f"\nnext page: --after {page.next_cursor}"
    return shown


def _table(rows: list[dict[str, Any]], tz: tzinfo) -> str:
    # the call id is what an operator copies into `calls show`: never cut it (bounded at 64)
    id_width = max([len(str(r.get("call_id") or "")) for r in rows] + [TABLE[1][1]])
    columns = [TABLE[0], (TABLE[1][0], min(id_width, 64)), *TABLE[2:]]
    header = "  ".join(name.ljust(width) for name, width in columns)
    lines = [header, "-" * len(header)]
    for r in rows:
        cells = [_fmt_time(r.get("started_at"), tz), r.get("call_id"), r.get("status"), r.get("caller_num"),
                 r.get("callee_num"), r.get("agent"), r.get("queue"), r.get("consent_decision"),
                 r.get("billsec") if r.get("billsec") is not None else "-"]
        lines.append("  ".join(sanitize(c, w).ljust(w) for c, (_, w) in zip(cells, columns, strict=True)))
    return "\n".join(lines)


@click.group(name="calls")
def calls_group() -> None:
    """Search and inspect recorded calls."""


@calls_group.command("search")
@click.option("--from", "from_", metavar="TIME", help="Start (YYYY-MM-DD[THH:MM], local time, or epoch).")
@click.option("--to", "to", metavar="TIME", help="End, exclusive.")
@click.option("--preset", type=click.Choice(PRESETS), help="Time range preset (overrides --from/--to).")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--caller", help="Caller number, full or last 4 digits.")
@click.option("--callee", help="Callee number, full or last 4 digits.")
@click.option("--call-id")
@click.option("--agent")
@click.option("--queue")
@click.option("--tag")
@click.option("--consent", help="Consent decision (granted, refused, timeout, not_required ...).")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--after", metavar="CURSOR", help="Next page: the cursor the previous page printed.")
@click.option("--json", "as_json", is_flag=True,
              help="JSON output (the calls; the next page's cursor, if any, goes to stderr).")
@click.option("--unmask", is_flag=True, help="Show full numbers (written to the audit log).")
@click.pass_context
def search(ctx: click.Context, from_: str | None, to: str | None, preset: str | None, status: str | None,
           caller: str | None, callee: str | None, call_id: str | None, agent: str | None,
           queue: str | None, tag: str | None, consent: str | None, limit: int, after: str | None,
           as_json: bool, unmask: bool) -> None:
    """Find calls, newest first, a page at a time; numbers are masked unless --unmask."""
    catalog, tz, config = _open(ctx)
    filters = CallFilters(start=_parse_time(from_, tz, "--from"), end=_parse_time(to, tz, "--to"),
                          preset=preset, status=status, caller=caller, callee=callee, call_id=call_id,
                          agent=agent, queue=queue, tag=tag, consent=consent, limit=limit, after=after)
    try:
        who = _authorize(catalog, config, "calls.search", unmask)
        number_throttle.admit(catalog, config, who, filters)  # the service's rule (issue 8)
        page = catalog.search_page(filters, tz=tz, count_read_cap=COUNT_READ_CAP)
        rows = page.rows
        # the search's one list row, before anything is shown (no row, no output)
        catalog.audit(who.actor, who.role, "calls.search.unmask" if unmask else "calls.search", "",
                      search_detail(filters, len(rows)))
    finally:
        catalog.close()
    shown = [present_call(r, unmask) for r in rows]
    if as_json:
        click.echo(json.dumps(shown, indent=2, sort_keys=True, default=str))
        if page.next_cursor:  # stdout stays one JSON document; the way on goes to stderr
            click.echo(f"next page: --after {page.next_cursor}", err=True)
    else:
        click.echo(_table(shown, tz) + "\n" + _footer(page))


def vars_of(filters: CallFilters) -> dict[str, Any]:
    return {f.name: getattr(filters, f.name) for f in dataclasses.fields(filters)}


def search_detail(filters: CallFilters, results: int) -> dict[str, Any]:
    """The audit detail of one search, as the service writes it (``service.list_audit``, not
    imported: it would bring the web stack into the CLI): ``client`` ``cli``, the filter's set
    fields (numbers masked by the audit writer, times as epoch seconds) and the rows returned."""
    return {"client": "cli", **{k: v for k, v in vars_of(filters).items() if v not in (None, "")},
            "results": int(results)}


@calls_group.command("show")
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--unmask", is_flag=True, help="Show full numbers (written to the audit log).")
@click.pass_context
def show(ctx: click.Context, call_id: str, as_json: bool, unmask: bool) -> None:
    """One call: its CDR fields, recordings (tier, key, hash, duration, flags) and consent evidence."""
    catalog, tz, config = _open(ctx)
    try:
        who = _authorize(catalog, config, "calls.show", unmask, call_id)
        row = catalog.get_call(call_id)
        if row is None:  # as the service's GET /api/calls/{id}: the probe is kept too
            catalog.audit(who.actor, who.role, "calls.view.absent", call_id,
                          {"client": "cli", "reason": "absent"})
            raise NotFound(f"no call {sanitize(call_id)!r} in the catalog")
        recordings = catalog.recordings_for_call(call_id)
        # the read's one row, before anything is shown (no row, no output)
        catalog.audit(who.actor, who.role, "calls.show.unmask" if unmask else "calls.view", call_id,
                      {"client": "cli"})
    finally:
        catalog.close()
    call = present_call(row, unmask)
    recs = [present_recording(r) for r in recordings]
    if as_json:
        click.echo(json.dumps({"call": call, "recordings": recs}, indent=2, sort_keys=True, default=str))
        return
    for label, key in (("call id", "call_id"), ("direction", "direction"), ("caller", "caller_num"),
                       ("callee", "callee_num"), ("did", "did"), ("agent", "agent"), ("queue", "queue"),
                       ("region", "region"), ("status", "status"), ("disposition", "disposition"),
                       ("billsec", "billsec"), ("rule", "rule"), ("record decision", "record_decision"),
                       ("consent", "consent_decision"), ("retention", "retention_class")):
        click.echo(f"{label:16} {sanitize(call.get(key))}")
    for label, key in (("started", "started_at"), ("answered", "answered_at"), ("ended", "ended_at")):
        click.echo(f"{label:16} {_fmt_time(call.get(key), tz)}")
    click.echo(f"{'tags':16} {sanitize(','.join(map(str, call.get('tags') or [])))}")
    click.echo(f"{'flags':16} {sanitize(','.join(map(str, call.get('flags') or [])))}")
    click.echo(f"recordings ({len(recs)}):")
    for r in recs:
        dur = f"{r['duration_s']:.1f}s" if r.get("duration_s") is not None else "-"
        flags = ",".join(map(str, r.get("flags") or [])) or "-"
        click.echo(f"  {sanitize(r['recording_id'], 80)}  {r.get('kind')}/{r.get('mode')}"
                   f"  state={r.get('state')}  tier={sanitize(r.get('tier'))}  duration={dur}")
        click.echo(f"    key={sanitize(r.get('storage_key'), 200)}")
        click.echo(f"    sha256={r.get('sha256') or '-'}  flags={flags}")
    raw_evidence = call.get("consent")
    evidence: dict[str, Any] = dict(raw_evidence) if isinstance(raw_evidence, dict) else {}
    links = evidence.pop("transfer", None)  # the calls a transfer joined this one with (call_model)
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict):
            other = sanitize(link.get("call_id"), 120)
            click.echo(f"{'transfer':16} {sanitize(link.get('kind'))} with {other}")
    click.echo("consent evidence:")
    for key in sorted(evidence):
        click.echo(f"  {sanitize(key)}: {sanitize(json.dumps(evidence[key], default=str), 200)}")


def register(group: click.Group) -> None:
    group.add_command(calls_group)
