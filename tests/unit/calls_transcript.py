"""Load the readable call transcripts in tests/fixtures/calls/*.yaml and play them through a CallBook.

A transcript is a YAML list of steps:
  {event: <events.py class name>, at: <s>, call: <linkedid>, chan: <uniqueid>, ...other fields}
  {tick: <now>}        CallBook.tick(now)
  {restart: true}      snapshot every live call, build a new CallBook, restore them (daemon restart)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import Command
from pbx_recorder.core.rules import rules_from_dicts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "calls"
NODE = "pbx1"
MONITOR = "/var/spool/asterisk/monitor/pbxrec"


def load_rules():
    return rules_from_dicts(yaml.safe_load((FIXTURES / "rules.yaml").read_text()))


def to_event(step: dict[str, Any]) -> object:
    data = dict(step)
    cls = getattr(E, data.pop("event"))
    if "call" in data:
        data["call_id"] = str(data.pop("call"))
    if "chan" in data:
        data["channel_id"] = str(data.pop("chan"))
    if "live_call_ids" in data:
        data["live_call_ids"] = frozenset(str(c) for c in data["live_call_ids"])
    return cls(**data)


@dataclass
class Run:
    book: CallBook
    commands: list[Command] = field(default_factory=list)
    per_step: list[tuple[dict[str, Any], list[Command]]] = field(default_factory=list)

    def of(self, kind: type) -> list[Any]:
        return [c for c in self.commands if isinstance(c, kind)]


def new_book(mute_all: bool | None = True, **kwargs: Any) -> CallBook:
    """A call book on a PBX whose MixMonitorMute reaches every MixMonitor of a channel (Asterisk
    22), unless ``mute_all`` says otherwise; a ``PbxBooted`` with a version sets it as the daemon's
    does (which MixMonitor a pause mutes: tests/unit/test_mixmonitor_order.py)."""
    book = CallBook(NODE, MONITOR, load_rules(), **kwargs)
    book.mute_all = mute_all
    return book


def play(name: str, **kwargs: Any) -> Run:
    steps = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    run = Run(new_book(**kwargs))
    for step in steps:
        if "tick" in step:
            cmds = run.book.tick(float(step["tick"]))
        elif "restart" in step:
            saved = [json.loads(json.dumps(run.book.snapshot(cid))) for cid in run.book.live_call_ids()]
            run.book = new_book(**kwargs)
            for snap in saved:
                run.book.restore(snap)
            cmds = []
        else:
            cmds = run.book.handle(to_event(step), float(step["at"]))
        run.per_step.append((step, cmds))
        run.commands += cmds
    return run
