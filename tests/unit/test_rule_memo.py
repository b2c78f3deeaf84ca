"""pbx_recorder.core.rule_memo: the remembered decision is the decision ``rules.evaluate`` makes."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from pbx_recorder.core.rule_memo import RuleMemo
from pbx_recorder.core.rules import CallContext, evaluate, rules_from_dicts

RULES = rules_from_dicts(
    [
        {"name": "hr-never", "match": {"dialed": ["_+4930123457XX"]}, "action": {"record": "never"}},
        {"name": "vip", "match": {"vip": True, "caller": ["_49X."]}, "action": {"record": "force"}},
        {
            "name": "office-hours",
            "match": {"time": ["Mon-Fri 09:00-18:00"], "direction": ["inbound"]},
            "action": {"record": "yes", "consent": "notify"},
            "timezone": "Europe/Berlin",
        },
        {"name": "queue", "match": {"queue": ["support"], "region": ["eu"]}, "action": {"record": "yes"}},
        {"name": "all-day", "match": {"time": ["Mon-Sun 00:00-23:59"]}, "action": {"record": "no"},
         "timezone": "UTC"},
    ]
)


def random_context(rnd: random.Random) -> CallContext:
    return CallContext(
        direction=rnd.choice(["", "inbound", "outbound"]),
        dialed=rnd.choice(["", "+493012345700", "+493012345799", "4930", "x" * 200]),
        caller=rnd.choice(["", "4915112345678", "+4915112345678", "1\r\nEvent: x"]),
        queue=rnd.choice(["", "support", "sales"]),
        agent=rnd.choice(["", "agent1"]),
        vip=rnd.choice([True, False]),
        region=rnd.choice(["", "eu", "us"]),
        at=1_764_600_000.0 + rnd.randrange(0, 14 * 86400),
    )


def test_memo_gives_what_evaluate_gives_explanation_included() -> None:
    memo = RuleMemo(RULES)
    rnd = random.Random(3)
    contexts = [random_context(rnd) for _ in range(600)]
    for ctx in contexts + contexts:  # the second pass is answered from the memo
        assert memo.evaluate(ctx) == evaluate(RULES, ctx)
    assert memo.hits >= len(contexts)


def test_fields_no_rule_looks_at_do_not_split_the_memo() -> None:
    rules = rules_from_dicts([{"name": "did", "match": {"dialed": ["8001"]}, "action": {"record": "yes"}}])
    memo = RuleMemo(rules)
    for n in range(50):  # fifty callers, one DID: one evaluation
        ctx = CallContext(direction="inbound", dialed="8001", caller=f"49151{n:06d}", at=1_764_600_000.0 + n)
        assert memo.evaluate(ctx) == evaluate(rules, ctx)
    assert (memo.misses, memo.hits) == (1, 49)


def test_a_window_is_remembered_per_local_minute_only() -> None:
    rules = rules_from_dicts(
        [{"name": "day", "match": {"time": ["Mon-Fri 09:00-18:00"]}, "action": {"record": "yes"},
          "timezone": "Europe/Berlin"}]
    )
    memo = RuleMemo(rules)
    before = datetime(2026, 12, 1, 7, 59, 59, tzinfo=UTC).timestamp()  # 08:59:59 in Berlin: outside
    for at in (before - 30, before, before + 1, before + 2):
        ctx = CallContext(at=at)
        assert memo.evaluate(ctx) == evaluate(rules, ctx)
    assert memo.evaluate(CallContext(at=before)).record is False
    assert memo.evaluate(CallContext(at=before + 1)).record is True
    aware = CallContext(at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC))  # not remembered: evaluated
    assert memo.evaluate(aware) == evaluate(rules, aware)


def test_every_call_gets_its_own_explanation_list() -> None:
    memo = RuleMemo(RULES)
    ctx = CallContext(direction="inbound", dialed="4930", at=1_764_600_000.0)
    first = memo.evaluate(ctx)
    first.explanation.append("changed by one call")
    assert memo.evaluate(ctx) == evaluate(RULES, ctx)


def test_memo_is_bounded() -> None:
    memo = RuleMemo(RULES, max_entries=16)
    for n in range(100):
        memo.evaluate(CallContext(dialed=f"+4930{n:08d}", at=1_764_600_000.0))
    assert len(memo._memo) <= 16
