"""The QA sampling rule: the pure selection (percent, count, filters, determinism, spread, an
agent with fewer calls than the count, top-up without re-picking) and its config (errors name
the key)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pbx_recorder.config import ConfigErrors, load_config
from pbx_recorder.config.model import QaSamplingRule
from pbx_recorder.service.qa_sampling import (
    WeekCall,
    last_full_week,
    parse_week,
    quota,
    select,
    week_bounds,
)

SEED = b"s" * 32
WEEK = "2026-W48"


def calls(agent: str, n: int, queue: str = "sales", tags: tuple[str, ...] = ()) -> list[WeekCall]:
    return [WeekCall(f"{agent}-{i:03d}", agent, queue, tags) for i in range(n)]


def rule(**kw: object) -> QaSamplingRule:
    return QaSamplingRule(**{"name": "r", "reviewers": ("qa1", "qa2"), **kw})  # type: ignore[arg-type]


def test_percent_takes_the_ceiling_of_each_agents_share() -> None:
    week = calls("alice", 40) + calls("bob", 7) + calls("carol", 1)
    picks = select(week, rule(percent=10), SEED, WEEK)
    assert Counter(p.agent for p in picks) == {"alice": 4, "bob": 1, "carol": 1}
    assert quota(40, rule(percent=10)) == 4 and quota(41, rule(percent=10)) == 5
    assert quota(0, rule(percent=5)) == 0


def test_count_per_agent_and_an_agent_with_fewer_calls_gets_all_of_them_reviewed() -> None:
    picks = select(calls("alice", 30) + calls("bob", 2), rule(count=5), SEED, WEEK)
    per_agent = Counter(p.agent for p in picks)
    assert per_agent == {"alice": 5, "bob": 2}
    assert {p.call_id for p in picks if p.agent == "bob"} == {"bob-000", "bob-001"}
    assert len({p.call_id for p in picks}) == len(picks)  # never the same call twice


def test_queue_and_tag_filters_and_calls_without_agent() -> None:
    week = (calls("alice", 10, "sales") + calls("alice2", 10, "support", ("complaint",))
            + [WeekCall("x1", "", "sales")])
    assert {p.agent for p in select(week, rule(count=3, queue="sales"), SEED, WEEK)} == {"alice"}
    tagged = select(week, rule(count=3, tag="complaint"), SEED, WEEK)
    assert {p.agent for p in tagged} == {"alice2"} and len(tagged) == 3
    assert select(week, rule(count=3, queue="sales", tag="complaint"), SEED, WEEK) == []
    assert "x1" not in {p.call_id for p in select(week, rule(percent=100), SEED, WEEK)}


def test_the_draw_is_deterministic_per_seed_week_and_rule_and_does_not_follow_call_order() -> None:
    week = calls("alice", 200)
    first = select(week, rule(count=5), SEED, WEEK)
    assert select(list(reversed(week)), rule(count=5), SEED, WEEK) == first
    ids = {p.call_id for p in first}
    others = [{p.call_id for p in select(week, rule(count=5), seed, wk)}
              for seed, wk in ((b"t" * 32, WEEK), (SEED, "2026-W49"))]
    assert all(o != ids for o in others)  # another seed or week draws other calls
    assert ids != {f"alice-{i:03d}" for i in range(5)}  # not the first (or any fixed) calls
    with pytest.raises(ValueError):
        select(week, rule(count=5), b"", WEEK)


def test_picks_are_spread_evenly_over_the_reviewers_and_never_to_the_agent_themself() -> None:
    week = calls("alice", 50) + calls("bob", 50) + calls("qa1", 50)
    picks = select(week, rule(percent=20, reviewers=("qa1", "qa2", "qa3")), SEED, WEEK)
    load = Counter(p.reviewer for p in picks)
    assert sum(load.values()) == 30 and max(load.values()) - min(load.values()) <= 1
    assert not [p for p in picks if p.agent == p.reviewer]
    lonely = select(calls("qa1", 3), rule(count=3, reviewers=("qa1",)), SEED, WEEK)
    assert len(lonely) == 3  # a rule with one reviewer still assigns (nobody else can review)


def test_already_sampled_calls_count_towards_the_quota_and_are_not_picked_again() -> None:
    week = calls("alice", 40)
    first = select(week, rule(percent=10), SEED, WEEK)
    done = {"alice": frozenset(p.call_id for p in first)}
    assert select(week, rule(percent=10), SEED, WEEK, done) == []  # a second run: nothing new
    grown = week + calls("alice", 60)[40:]  # more calls came in: the quota grows from 4 to 6
    more = select(grown, rule(percent=10), SEED, WEEK, done)
    assert len(more) == 2 and not {p.call_id for p in more} & done["alice"]


def test_weeks_are_iso_weeks_in_the_configured_time_zone() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    start, end = week_bounds("2026-W01", shanghai)
    assert datetime.fromtimestamp(start, UTC) == datetime(2025, 12, 28, 16, tzinfo=UTC)
    assert end - start == 7 * 86400
    assert last_full_week(datetime(2026, 12, 2, 1, tzinfo=UTC).timestamp(), UTC) == "2026-W48"
    for bad in ("2026-48", "2026-W4", "2026-W54", "26-W01", "2026-Wxx"):
        with pytest.raises(ValueError):
            parse_week(bad)


def _errors(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as info:
        load_config(path, env={})
    return [(e.key, str(e)) for e in info.value.errors]


def test_config_reads_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("web:\n  qa_sampling:\n    - {percent: 5, reviewers: [qa1, qa2]}\n"
                    "    - {name: complaints, count: 3, queue: sales, tag: complaint, reviewers: qa3}\n")
    web = load_config(path, env={}).web
    assert web.qa_sampling == (
        QaSamplingRule("rule1", ("qa1", "qa2"), percent=5.0),
        QaSamplingRule("complaints", ("qa3",), count=3, queue="sales", tag="complaint"))
    assert web.qa_sampling_seed is None
    path.write_text("web:\n  qa_sampling_seed_file: seed\n")
    (tmp_path / "seed").write_text("0123456789abcdef0123\n")
    seed = load_config(path, env={}).web.qa_sampling_seed
    assert seed is not None and seed.reveal() == "0123456789abcdef0123" and "0123" not in repr(seed)


@pytest.mark.parametrize(("rules", "key", "words"), [
    ("[{reviewers: [qa1]}]", "web.qa_sampling[0].percent", "exactly one of percent or count"),
    ("[{percent: 5, count: 2, reviewers: [qa1]}]", "web.qa_sampling[0].percent", "exactly one"),
    ("[{percent: 0, reviewers: [qa1]}]", "web.qa_sampling[0].percent", "out of range"),
    ("[{percent: 101, reviewers: [qa1]}]", "web.qa_sampling[0].percent", "out of range"),
    ("[{count: 0, reviewers: [qa1]}]", "web.qa_sampling[0].count", "out of range"),
    ("[{count: 2}]", "web.qa_sampling[0].reviewers", "is required"),
    ("[{count: 2, reviewers: [qa1, qa1]}]", "web.qa_sampling[0].reviewers", "twice"),
    ("[{count: 2, reviewers: ['qa 1']}]", "web.qa_sampling[0].reviewers[0]", "not a valid account name"),
    ("[{count: 2, reviewers: [qa1], queu: sales}]", "web.qa_sampling[0].queu", "did you mean 'queue'"),
    ("[{count: 2, reviewers: [qa1]}, {name: rule1, count: 1, reviewers: [qa2]}]",
     "web.qa_sampling[1].name", "another rule"),
    ("{percent: 5}", "web.qa_sampling", "expected a list"),
    ("[]\n  qa_sampling_seed: short", "web.qa_sampling_seed", "too short"),
])
def test_config_errors_name_the_key(tmp_path: Path, rules: str, key: str, words: str) -> None:
    errors = _errors(tmp_path, f"web:\n  qa_sampling: {rules}\n")
    assert any(k == key and words in text for k, text in errors), errors
