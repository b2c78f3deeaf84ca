from datetime import datetime

import pytest

from pbx_recorder.core.rules import CallContext, RuleDecision, evaluate, rules_from_dicts
from pbx_recorder.errors import ConfigError

# 2026-11-20 is a Friday
FRI_10_UTC = 1795168800.0  # 2026-11-20T10:00Z


def rule(name, record="yes", match=None, **action):
    return {"name": name, "match": match or {}, "action": {"record": record, **action}}


def decide(rules, **ctx):
    return evaluate(rules_from_dicts(rules), CallContext(**ctx))


def test_friday_constant_is_right():
    from datetime import UTC
    assert datetime.fromtimestamp(FRI_10_UTC, UTC).strftime("%a %H:%M") == "Fri 10:00"


@pytest.mark.parametrize(("pattern", "value", "hit"), [
    ("_X.", "5", False), ("_X.", "55", True), ("_NXX", "212", True), ("_NXX", "112", False),
    ("_[1-5]XX", "499", True), ("_[1-5]XX", "699", False), ("_9!", "9", True), ("_9!", "912", True),
    ("_ZX", "05", False), ("_zx", "15", True), ("_.", "", False), ("_!", "", True),
    ("100", "100", True), ("100", "1000", False), ("re:^\\+44", "+4420", True), ("re:^\\+44", "0044", False),
    ("re:^\\d{3}$", "1234", False),
])
def test_dialed_patterns(pattern, value, hit):
    d = decide([rule("r", match={"dialed": pattern})], dialed=value)
    assert d.record is hit
    assert ("match" if hit else "miss") in d.explanation[0]


@pytest.mark.parametrize("attr", ["caller", "queue", "agent"])
def test_other_pattern_fields(attr):
    rules = [rule("r", match={attr: ["_1XX", "sales"]})]
    assert decide(rules, **{attr: "sales"}).record
    assert decide(rules, **{attr: "123"}).record
    assert not decide(rules, **{attr: "999"}).record
    assert not decide(rules).record  # empty value


def test_direction_vip_region():
    rules = [rule("r", match={"direction": ["inbound"], "vip": True, "region": "eu"})]
    assert decide(rules, direction="inbound", vip=True, region="eu").record
    assert not decide(rules, direction="outbound", vip=True, region="eu").record
    assert not decide(rules, direction="inbound", vip=False, region="eu").record
    miss = decide(rules, direction="inbound", vip=True, region="us")
    assert not miss.record and "region" in miss.explanation[0]
    assert decide([rule("r", match={"vip": False})], vip=False).record


def test_long_hostile_values_do_not_match_or_crash():
    rules = [rule("r", match={"caller": "re:^1+$"})]
    assert not decide(rules, caller="1" * 10_000 + "x").record


@pytest.mark.parametrize(("window", "local", "hit"), [
    ("Mon-Fri 09:00-18:00", "2026-11-20T09:00", True),   # Friday
    ("Mon-Fri 09:00-18:00", "2026-11-20T18:00", False),  # end is exclusive
    ("Mon-Fri 09:00-18:00", "2026-11-21T10:00", False),  # Saturday
    ("Sat 10:00-14:00", "2026-11-21T10:00", True),
    ("Fri 22:00-02:00", "2026-11-20T23:30", True),       # crosses midnight, Friday evening
    ("Fri 22:00-02:00", "2026-11-21T01:59", True),       # ... and Saturday early morning
    ("Fri 22:00-02:00", "2026-11-22T01:00", False),      # Sunday early: window started Saturday? no
    ("22:00-06:00", "2026-11-22T05:00", True),
    ("Sat-Mon 00:00-24:00", "2026-11-23T23:59", True),   # day range wrapping the week
])
def test_time_windows_naive_local(window, local, hit):
    rules = [rule("r", match={"time": window})]
    assert decide(rules, at=datetime.fromisoformat(local)).record is hit


def test_time_window_uses_rule_timezone():
    rules = rules_from_dicts([
        {"name": "paris", "timezone": "Europe/Paris", "match": {"time": "Mon-Fri 09:00-10:30"},
         "action": {"record": "yes"}},
    ])
    # 10:00 UTC on Fri 20 Nov 2026 is 11:00 in Paris: outside
    d = evaluate(rules, CallContext(at=FRI_10_UTC))
    assert not d.record and "Fri 11:00 Europe/Paris" in d.explanation[0]
    # 09:00 UTC is 10:00 in Paris: inside
    assert evaluate(rules, CallContext(at=FRI_10_UTC - 3600)).record


def test_time_window_dst_change():
    rules = rules_from_dicts([{"name": "ny", "timezone": "America/New_York",
                               "match": {"time": "Sun 01:00-03:00"}, "action": {"record": "yes"}}])
    # 2026-11-01 is the US DST end; 06:30Z = 01:30 EST (second 01:30)
    assert evaluate(rules, CallContext(at=1793514600.0)).record


PRECEDENCE = [
    # (rules in file order, expected record, expected winner)
    ([("a", "force"), ("b", "never")], False, "b"),
    ([("a", "no"), ("b", "force")], True, "b"),
    ([("a", "no"), ("b", "yes")], False, "a"),
    ([("a", "yes"), ("b", "no")], True, "a"),
    ([("a", "dontcare"), ("b", "yes")], True, "b"),
    ([("a", "dontcare")], False, ""),
    ([], False, ""),
    ([("a", "never"), ("b", "force"), ("c", "yes")], False, "a"),
    ([("a", True), ("b", False)], True, "a"),  # YAML 1.1 booleans
]


@pytest.mark.parametrize(("spec", "record", "winner"), PRECEDENCE)
def test_precedence_table(spec, record, winner):
    d = decide([rule(n, r) for n, r in spec])
    assert (d.record, d.rule) == (record, winner)
    assert len([line for line in d.explanation if line.startswith("rule ")]) == len(spec)
    assert d.explanation[-1].startswith("decided by" if winner else "no rule decided")


def test_non_matching_never_does_not_block():
    d = decide([rule("protected", "never", {"caller": "666"}), rule("all", "force")], caller="555")
    assert d.record and d.rule == "all"


def test_action_fields_carried():
    d = decide([rule("sales", "yes", mode="dual", consent="explicit", prompt="consent-eu", language="fr",
                     record_notice=True, refusal={"goto": "refused,s,1", "goodbye_prompt": "bye"},
                     retention_class="long", tags=["sales", "eu"], start_on="bridge")])
    assert (d.mode, d.consent, d.prompt, d.language, d.record_notice) == ("dual", "explicit", "consent-eu",
                                                                            "fr", True)
    assert (d.refusal_route, d.goodbye_prompt, d.retention_class) == ("refused,s,1", "bye", "long")
    assert d.tags == ("sales", "eu") and d.start_on == "bridge"
    assert RuleDecision.from_dict(d.to_dict()) == d
    assert decide([rule("h", refusal={"hangup": True})]).refusal_route == "hangup"
    assert decide([rule("c")]).refusal_route == "continue"


@pytest.mark.parametrize("bad", [
    {"name": "", "action": {"record": "yes"}},
    {"name": "x", "action": {"record": "maybe"}},
    {"name": "x", "action": {"consent": "telepathy"}},
    {"name": "x", "match": {"dialed": "_[9-1]"}},
    {"name": "x", "match": {"time": "Funday 09:00-10:00"}},
    {"name": "x", "timezone": "Mars/Olympus"},
    {"name": "x", "match": {"colour": "red"}},
])
def test_rules_from_dicts_rejects(bad):
    with pytest.raises(ConfigError):
        rules_from_dicts([bad])


def test_works_with_config_dataclasses():
    from pbx_recorder.config.model import RuleAction, RuleConfig, RuleMatch
    rules = [RuleConfig(name="cfg", match=RuleMatch(dialed=("_8XX",)), action=RuleAction(record="yes"))]
    assert evaluate(rules, CallContext(dialed="800")).rule == "cfg"
