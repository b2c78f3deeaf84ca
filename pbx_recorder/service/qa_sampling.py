"""The QA sampling rule (``web.qa_sampling``): which of a week's answered calls each agent gets
reviewed, and by whom.  Pure: no I/O, no clock; the command ``pbx-recorder review sample``
(:mod:`pbx_recorder.service.qa_sampling_run`) reads the calls and writes the assignments.

Per rule and agent, the calls that pass the rule's filters (queue, tag) are ranked by
HMAC-SHA256(seed, rule name, week, call id) and the first ``quota`` are taken:

* ``percent``: ceil(percent x calls / 100), so every agent with a call in the rule is reviewed;
  ``count``: that many, or every call of an agent who had fewer;
* the seed is a secret (config ``web.qa_sampling_seed`` or one the catalog keeps): the same week
  samples the same calls on every run, and an agent, who knows neither the seed nor the other
  calls, cannot tell which of their calls will be picked;
* calls the rule already sampled for that agent and week (``already``) count towards the quota
  and are not picked again: a second run over the same week assigns nothing new, and a run
  after more calls arrived only tops the quota up;
* the picks, in rank order, go to the least loaded of the rule's reviewers (ties in turn), so
  each gets the same share (+-1); a reviewer is never given a call they took as the agent (when
  the rule has another reviewer).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from pbx_recorder.config.model import QaSamplingRule

SAMPLED_BY = "sampling"  #: qa_assignments.assigned_by of every sampled call


@dataclass(frozen=True, slots=True)
class WeekCall:
    call_id: str
    agent: str
    queue: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Pick:
    call_id: str
    agent: str
    reviewer: str
    rule: str


def parse_week(text: str) -> tuple[int, int]:
    """(ISO year, ISO week) of ``YYYY-Www``; ValueError otherwise."""
    year, sep, week = text.partition("-W")
    if not (sep and len(year) == 4 and year.isdigit() and len(week) == 2 and week.isdigit()):
        raise ValueError(f"week {text!r}: use YYYY-Www (ISO week, e.g. 2026-W48)")
    try:
        date.fromisocalendar(int(year), int(week), 1)
    except ValueError as exc:
        raise ValueError(f"week {text!r}: no such ISO week") from exc
    return int(year), int(week)


def week_bounds(text: str, tz: tzinfo) -> tuple[float, float]:
    """[Monday 00:00, next Monday 00:00) of the ISO week ``text`` in ``tz``, as epoch seconds."""
    year, week = parse_week(text)
    monday = date.fromisocalendar(year, week, 1)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=tz)
    nxt = monday + timedelta(days=7)
    return start.timestamp(), datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()


def last_full_week(now: float, tz: tzinfo) -> str:
    """The ISO week before the one ``now`` falls in (the default: a week is sampled once it ended)."""
    year, week, _ = (datetime.fromtimestamp(now, tz).date() - timedelta(days=7)).isocalendar()
    return f"{year:04d}-W{week:02d}"


def quota(calls: int, rule: QaSamplingRule) -> int:
    if rule.count is not None:
        return min(rule.count, calls)
    return min(calls, math.ceil(calls * float(rule.percent or 0) / 100 - 1e-9))


def rank(seed: bytes, rule: str, week: str, call_id: str) -> bytes:
    return hmac.new(seed, f"{rule}\x00{week}\x00{call_id}".encode(), hashlib.sha256).digest()


def matches(call: WeekCall, rule: QaSamplingRule) -> bool:
    return bool(call.agent) and (not rule.queue or call.queue == rule.queue) \
        and (not rule.tag or rule.tag in call.tags)


def select(calls: Iterable[WeekCall], rule: QaSamplingRule, seed: bytes, week: str,
           already: Mapping[str, frozenset[str]] | None = None) -> list[Pick]:
    """The new picks of ``rule`` for ``week``; ``already``: agent -> call ids the rule sampled before."""
    if not seed:
        raise ValueError("QA sampling needs a secret seed")
    done = already or {}
    per_agent: dict[str, list[tuple[bytes, WeekCall]]] = {}
    for call in calls:
        if matches(call, rule):
            per_agent.setdefault(call.agent, []).append((rank(seed, rule.name, week, call.call_id), call))
    chosen: list[tuple[bytes, WeekCall]] = []
    for agent, ranked in sorted(per_agent.items()):
        before = done.get(agent, frozenset())
        fresh = sorted((r, c) for r, c in ranked if c.call_id not in before)
        want = quota(len({c.call_id for _, c in ranked} | before), rule) - len(before)
        chosen += fresh[:max(0, want)]
    reviewers = list(rule.reviewers)
    # the calls of an agent who is also a reviewer first (they have fewer choices), then the others
    # fill up whoever is least loaded: equal shares +-1
    chosen.sort(key=lambda rc: (rc[1].agent not in reviewers, rc[0]))
    picks, load = [], dict.fromkeys(reviewers, 0)
    for i, (_, call) in enumerate(chosen):
        turn = [reviewers[(i + k) % len(reviewers)] for k in range(len(reviewers))]
        eligible = [r for r in turn if r != call.agent] or turn
        reviewer = min(eligible, key=lambda r: load[r])  # the least loaded, ties in turn order
        load[reviewer] += 1
        picks.append(Pick(call.call_id, call.agent, reviewer, rule.name))
    return picks
