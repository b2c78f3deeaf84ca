"""bench_catalog's filters: the 20 catalog filters of each case of issue 11 and the equivalent
queries on Asterisk's ``cdr`` table (the baseline), drawn from the calls the fill kept as samples."""

from __future__ import annotations

import random
from typing import Any

from bench.catalog_data import AGENTS, QUEUES, TAGS, Generated, cdr_time
from pbx_recorder.catalog import CallFilters
from pbx_recorder.catalog.queries import preset_range

DAY = 86400.0
SAMPLES = 20

#: (name, 20 catalog filters, the 20 equivalent cdr queries)
Case = tuple[str, list[CallFilters], list[tuple[str, list[Any]]]]


def filter_cases(samples: list[Generated], now: float) -> list[Case]:
    """Every filter of issue 11: (name, 20 catalog filters, the 20 equivalent cdr queries)."""
    rnd, s = random.Random(9), samples
    pick = [rnd.choice(s) for _ in range(SAMPLES)]
    recent = [g for g in s if g.call["started_at"] >= now - 7 * DAY] or s
    since7, since30 = now - 7 * DAY, now - 30 * DAY
    order = " ORDER BY calldate DESC LIMIT 50"
    last4 = [g.call["caller_num"][-4:] for g in pick]
    cases: list[Case] = [
        (
            "last 4 digits, all time",
            [CallFilters(caller=d) for d in last4],
            [("SELECT * FROM cdr WHERE substr(src, -4) = ?" + order, [d]) for d in last4],
        ),
        (
            "last 4 digits, last 7 days",
            [
                CallFilters(caller=g.call["caller_num"][-4:], preset="7d")
                for g in (rnd.choice(recent) for _ in range(SAMPLES))
            ],
            [],
        ),
        ("30 d + queue + answered + consent", [], []),
        ("agent, all time", [CallFilters(agent=a) for a in rnd.sample(AGENTS, SAMPLES)], []),
        ("agent, 30 days", [CallFilters(agent=a, preset="30d") for a in rnd.sample(AGENTS, SAMPLES)], []),
        (
            "full caller number",
            [CallFilters(caller=g.call["caller_num"]) for g in pick],
            [("SELECT * FROM cdr WHERE src = ?" + order, [g.call["caller_num"]]) for g in pick],
        ),
        (
            "call id",
            [CallFilters(call_id=g.call["call_id"]) for g in pick],
            [("SELECT * FROM cdr WHERE uniqueid = ?" + order, [g.call["linkedid"]]) for g in pick],
        ),
    ]
    cases[1][2].extend(
        (
            "SELECT * FROM cdr WHERE calldate >= ? AND substr(src, -4) = ?" + order,
            [cdr_time(since7), f.caller],
        )
        for f in cases[1][1]
    )
    combo = [
        (rnd.choice(QUEUES), rnd.choice(["granted", "refused", "not_required", "timeout"]))
        for _ in range(SAMPLES)
    ]
    cases[2][1].extend(CallFilters(preset="30d", queue=q, status="answered", consent=c) for q, c in combo)
    cases[2][2].extend(
        (
            "SELECT * FROM cdr WHERE calldate >= ? AND lastdata LIKE ? AND disposition = "
            "'ANSWERED' AND userfield LIKE ?" + order,
            [cdr_time(since30), f"{q},%", f"consent={c};%"],
        )
        for q, c in combo
    )
    for name in ("agent, all time", "agent, 30 days"):
        case = next(c for c in cases if c[0] == name)
        case[2].extend(
            (
                "SELECT * FROM cdr WHERE "
                + ("calldate >= ? AND " if f.preset else "")
                + "dstchannel LIKE ?"
                + order,
                [*([cdr_time(since30)] if f.preset else []), f"PJSIP/{f.agent}-%"],
            )
            for f in case[1]
        )
    for preset in ("today", "yesterday", "7d", "30d"):
        lo, hi = preset_range(preset, now)
        cases.append(
            (
                f"preset {preset}",
                [CallFilters(preset=preset)] * SAMPLES,
                [
                    (
                        "SELECT * FROM cdr WHERE calldate >= ? AND calldate < ?" + order,
                        [cdr_time(lo), cdr_time(hi)],
                    )
                ]
                * SAMPLES,
            )
        )
    for status, disp in (("answered", "ANSWERED"), ("no_answer", "NO ANSWER"), ("failed", "FAILED")):
        cases.append(
            (
                f"status {status}",
                [CallFilters(status=status)] * SAMPLES,
                [("SELECT * FROM cdr WHERE disposition = ?" + order, [disp])] * SAMPLES,
            )
        )
    queues = rnd.sample(QUEUES, SAMPLES)
    cases.append(
        (
            "queue, 30 days",
            [CallFilters(queue=q, preset="30d") for q in queues],
            [
                (
                    "SELECT * FROM cdr WHERE calldate >= ? AND lastdata LIKE ?" + order,
                    [cdr_time(since30), f"{q},%"],
                )
                for q in queues
            ],
        )
    )
    for consent in ("refused", "timeout"):
        cases.append(
            (
                f"consent {consent}",
                [CallFilters(consent=consent)] * SAMPLES,
                [("SELECT * FROM cdr WHERE userfield LIKE ?" + order, [f"consent={consent};%"])]
                * SAMPLES,
            )
        )
    for tag in ("vip", "escalated", "no-such-tag"):
        cases.append(
            (
                f"tag {tag}",
                [CallFilters(tag=tag)] * SAMPLES,
                [
                    (
                        "SELECT * FROM cdr WHERE ',' || substr(userfield, instr(userfield, 'tags=') + 5) "
                        "|| ',' LIKE ?" + order,
                        [f"%,{tag},%"],
                    )
                ]
                * SAMPLES,
            )
        )
    # filters combined beside a tag and beside an agent, over all time (schema 16 and 17: the
    # other filters are tested inside the tag's or the agent's index)
    consents = ["granted", "refused", "not_required", "timeout"]
    tagged = [(rnd.choice([t for t, _pct in TAGS]), rnd.choice(consents)) for _ in range(SAMPLES)]
    cases.append(
        (
            "tag + answered + consent",
            [CallFilters(tag=t, status="answered", consent=c) for t, c in tagged],
            [
                (
                    "SELECT * FROM cdr WHERE disposition = 'ANSWERED' AND userfield LIKE ?" + order,
                    [f"consent={c};tags=%{t}%"],
                )
                for t, c in tagged
            ],
        )
    )
    agents = [(a, rnd.choice(consents)) for a in rnd.sample(AGENTS, SAMPLES)]
    cases.append(
        (
            "agent + answered + consent",
            [CallFilters(agent=a, status="answered", consent=c) for a, c in agents],
            [
                (
                    "SELECT * FROM cdr WHERE dstchannel LIKE ? AND disposition = 'ANSWERED' "
                    "AND userfield LIKE ?" + order,
                    [f"PJSIP/{a}-%", f"consent={c};%"],
                )
                for a, c in agents
            ],
        )
    )
    return cases


#: a team lead's searches over all time: (name, the filter inside the team's scope, the cdr condition)
TEAM_SEARCHES = (("team of 20 + failed, all time", CallFilters(status="failed"), "disposition = 'FAILED'"),
                 ("team of 20 + refused, all time", CallFilters(consent="refused"),
                  "userfield LIKE 'consent=refused;%'"))


def teams() -> list[list[str]]:
    """20 teams of 20 agents (the console's row scope of a team lead)."""
    rnd = random.Random(6)
    return [sorted(rnd.sample(AGENTS, 20)) for _ in range(SAMPLES)]
