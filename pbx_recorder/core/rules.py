"""Recording rules: which calls are recorded, and how.  Pure: the time is in the context.

Precedence (FreePBX style), evaluated over *all* rules, then decided in this order:

1. ``never``  - any matching ``never`` rule wins, whatever else matches.  It marks a
   protected line (a union rep, a doctor, a lawyer, the whistle-blower hotline): recording
   it is unlawful, so no ``force`` (a blanket "record the sales team") may override it.
   Of two mistakes, failing to record is recoverable; recording a protected call is not.
2. ``force``  - the first matching ``force`` rule records the call.
3. ``yes`` / ``no`` - the first matching one in file order decides.
4. ``dontcare`` - matches but does not decide (shown in the explanation only).
5. default - no rule decided: the call is NOT recorded.

Matching: every criterion a rule gives must hold (an empty one means "any").  ``dialed``,
``caller``, ``queue``, ``agent`` take patterns (Asterisk ``_NXX.``, exact, or ``re:``; the
grammar lives in :mod:`pbx_recorder.core.rule_patterns`, shared with config validation);
``time`` takes windows like ``"Mon-Fri 09:00-18:00"`` evaluated in the rule's timezone.

The rule objects may be the config's ``RuleConfig`` or anything with the same attributes
(see :class:`RuleLike`); :func:`rules_from_dicts` builds them from plain dicts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pbx_recorder.core.constants import ROUTE_CONTINUE, ROUTE_HANGUP
from pbx_recorder.core.rule_patterns import PatternError, compile_pattern, parse_time_window
from pbx_recorder.errors import ConfigError

RECORD_VALUES = ("never", "force", "yes", "no", "dontcare")
CONSENT_VALUES = ("none", "notify", "explicit")
_MAX_VALUE = 128  # longer (attacker-controlled) values match no pattern


class RuleLike(Protocol):
    """What a rule must offer (config's frozen ``RuleConfig`` does; so does ``DictRule``)."""

    @property
    def name(self) -> str: ...
    @property
    def match(self) -> Any: ...  # direction, dialed, caller, queue, agent, vip, region, time
    @property
    def action(self) -> Any: ...  # record, mode, consent, prompt, language, record_notice, refusal, ...
    @property
    def timezone(self) -> str: ...


@dataclass(frozen=True, slots=True)
class CallContext:
    direction: str = ""
    dialed: str = ""
    caller: str = ""
    queue: str = ""
    agent: str = ""
    vip: bool = False
    region: str = ""
    at: float | datetime = 0.0  # epoch seconds, aware datetime, or naive = wall time in the rule's zone


@dataclass(frozen=True)
class RuleDecision:
    record: bool
    rule: str = ""  # the deciding rule's name, "" for the default
    verdict: str = "default"  # never | force | yes | no | default
    reason: str = "default"  # rule | default | no_consent_path
    mode: str = "mixed"
    consent: str = "none"  # none | notify | explicit
    prompt: str = ""
    language: str = ""
    record_notice: bool = False
    refusal_route: str = ROUTE_CONTINUE  # "context,exten,prio" | "hangup" | "continue"
    goodbye_prompt: str = ""
    retention_class: str = ""  # "" = the configured default class
    tags: tuple[str, ...] = ()
    start_on: str = "answer"  # answer | bridge
    explanation: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        # a shallow copy (every field is a str/bool or a flat sequence of str): this runs once
        # per call on the hot path, where dataclasses.asdict's recursive deepcopy is costly
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["tags"] = list(self.tags)
        data["explanation"] = list(self.explanation)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleDecision:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["tags"] = tuple(known.get("tags", ()))
        known["explanation"] = list(known.get("explanation", []))
        return cls(**known)


# --- matching --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _pattern(text: str) -> re.Pattern[str]:
    return compile_pattern(text)


@functools.lru_cache(maxsize=256)
def _window(text: str) -> Any:
    return parse_time_window(text)


def _as_tuple(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(str(v) for v in value)
    return (str(value),)


def _local(at: float | datetime, tz: str) -> datetime:
    zone = ZoneInfo(tz or "UTC")
    if isinstance(at, datetime):
        return at.replace(tzinfo=zone) if at.tzinfo is None else at.astimezone(zone)
    return datetime.fromtimestamp(at, tz=UTC).astimezone(zone)


def _miss_reason(rule: RuleLike, ctx: CallContext) -> str | None:
    """None when the rule matches, else a short reason (no raw phone numbers)."""
    m = rule.match
    directions = _as_tuple(getattr(m, "direction", ()))
    if directions and ctx.direction not in directions:
        return f"direction {ctx.direction or '(unknown)'!r} not in {list(directions)}"
    for attr in ("dialed", "caller", "queue", "agent"):
        patterns = _as_tuple(getattr(m, attr, ()))
        value = str(getattr(ctx, attr))
        if patterns and len(value) > _MAX_VALUE:
            return f"{attr} longer than {_MAX_VALUE} characters"
        if patterns and not any(_pattern(p).fullmatch(value) for p in patterns):
            shown = "(empty) " if not value else ""
            return f"{attr} {shown}does not match any of {list(patterns)}"
    vip = getattr(m, "vip", None)
    if vip is not None and bool(vip) != ctx.vip:
        return f"vip is {ctx.vip}, rule wants {bool(vip)}"
    regions = _as_tuple(getattr(m, "region", ()))
    if regions and ctx.region not in regions:
        return f"region {ctx.region or '(unknown)'!r} not in {list(regions)}"
    windows = _as_tuple(getattr(m, "time", ()))
    if windows:
        tz = getattr(rule, "timezone", "UTC") or "UTC"
        try:
            local = _local(ctx.at, tz)
        except (ZoneInfoNotFoundError, ValueError):
            return f"unknown timezone {tz!r}"
        minute = local.hour * 60 + local.minute
        if not any(_window(w).contains(local.weekday(), minute) for w in windows):
            return f"{local:%a %H:%M} {tz} outside {list(windows)}"
    return None


def _record_value(action: Any) -> str:
    value = getattr(action, "record", "dontcare")
    if value is True:  # YAML 1.1 reads a bare yes/no as a boolean
        return "yes"
    if value is False:
        return "no"
    return str(value).lower()


def _route(refusal: Any) -> tuple[str, str]:
    if refusal is None:
        return ROUTE_CONTINUE, ""
    if isinstance(refusal, Mapping):
        goto, hangup, bye = refusal.get("goto"), refusal.get("hangup"), refusal.get("goodbye_prompt")
    else:
        goto = getattr(refusal, "goto", None)
        hangup = getattr(refusal, "hangup", False)
        bye = getattr(refusal, "goodbye_prompt", None)
    return (str(goto) if goto else ROUTE_HANGUP if hangup else ROUTE_CONTINUE), str(bye or "")


def _decision(rule: RuleLike, verdict: str, explanation: list[str]) -> RuleDecision:
    a = rule.action
    record = verdict in ("force", "yes")
    route, bye = _route(getattr(a, "refusal", None))
    return RuleDecision(
        record=record, rule=rule.name, verdict=verdict, reason="rule",
        mode=str(getattr(a, "mode", "mixed") or "mixed"),
        consent=str(getattr(a, "consent", "none") or "none") if record else "none",
        prompt=str(getattr(a, "prompt", "") or ""), language=str(getattr(a, "language", "") or ""),
        record_notice=bool(getattr(a, "record_notice", False)) and record,
        refusal_route=route, goodbye_prompt=bye,
        retention_class=str(getattr(a, "retention_class", "") or ""),
        tags=_as_tuple(getattr(a, "tags", ())), start_on=str(getattr(a, "start_on", "answer") or "answer"),
        explanation=explanation,
    )


def evaluate(rules: Sequence[RuleLike], ctx: CallContext) -> RuleDecision:
    """Apply the precedence of the module docstring; explain every rule."""
    explanation: list[str] = []
    matched: list[tuple[str, RuleLike]] = []
    for rule in rules:
        verdict = _record_value(rule.action)
        try:
            miss = _miss_reason(rule, ctx)
        except PatternError as exc:
            miss = f"unusable pattern ({exc})"
        if miss is None:
            explanation.append(f"rule {rule.name!r} ({verdict}): match")
            matched.append((verdict, rule))
        else:
            explanation.append(f"rule {rule.name!r} ({verdict}): miss: {miss}")
    for wanted in ("never", "force"):
        for verdict, rule in matched:
            if verdict == wanted:
                explanation.append(f"decided by {wanted} rule {rule.name!r}")
                return _decision(rule, verdict, explanation)
    for verdict, rule in matched:
        if verdict in ("yes", "no"):
            explanation.append(f"decided by first matching yes/no rule {rule.name!r}")
            return _decision(rule, verdict, explanation)
    explanation.append("no rule decided: default is not to record")
    return RuleDecision(record=False, explanation=explanation)


# --- building rules from plain dicts (tests, `rules explain`) --------------------------


@dataclass(frozen=True, slots=True)
class DictMatch:
    direction: tuple[str, ...] = ()
    dialed: tuple[str, ...] = ()
    caller: tuple[str, ...] = ()
    queue: tuple[str, ...] = ()
    agent: tuple[str, ...] = ()
    vip: bool | None = None
    region: tuple[str, ...] = ()
    time: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DictRefusal:
    goto: str | None = None
    hangup: bool = False
    goodbye_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class DictAction:
    record: str = "dontcare"
    mode: str = "mixed"
    consent: str = "none"
    prompt: str | None = None
    language: str | None = None
    record_notice: bool = False
    refusal: DictRefusal | None = None
    retention_class: str | None = None
    tags: tuple[str, ...] = ()
    start_on: str = "answer"


@dataclass(frozen=True, slots=True)
class DictRule:
    name: str
    match: DictMatch
    action: DictAction
    timezone: str = "UTC"


def rule_from_dict(data: Mapping[str, Any], default_timezone: str = "UTC") -> DictRule:
    name = str(data.get("name") or "")
    if not name:
        raise ConfigError("a rule needs a name", key="rules[].name")
    match = dict(data.get("match") or {})
    action = dict(data.get("action") or {})
    for key in ("direction", "dialed", "caller", "queue", "agent", "region", "time"):
        match[key] = _as_tuple(match.get(key))
    try:
        for key in ("dialed", "caller", "queue", "agent"):
            for p in match[key]:
                _pattern(p)
        for w in match["time"]:
            _window(w)
    except PatternError as exc:
        raise ConfigError(str(exc), key=f"rules.{name}.match") from exc
    tz = str(data.get("timezone") or default_timezone)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown timezone {tz!r}", key=f"rules.{name}.timezone") from exc
    action["record"] = _record_value(DictAction(record=action.get("record", "dontcare")))
    if action["record"] not in RECORD_VALUES:
        raise ConfigError(f"record must be one of {RECORD_VALUES}", key=f"rules.{name}.action.record")
    if action.get("consent", "none") not in CONSENT_VALUES:
        raise ConfigError(f"consent must be one of {CONSENT_VALUES}", key=f"rules.{name}.action.consent")
    refusal = action.get("refusal")
    action["refusal"] = DictRefusal(**refusal) if isinstance(refusal, Mapping) else None
    action["tags"] = _as_tuple(action.get("tags"))
    try:
        return DictRule(name=name, match=DictMatch(**match), action=DictAction(**action), timezone=tz)
    except TypeError as exc:
        raise ConfigError(f"unknown key in rule: {exc}", key=f"rules.{name}") from exc


def rules_from_dicts(items: Iterable[Mapping[str, Any]],
                     default_timezone: str = "UTC") -> tuple[DictRule, ...]:
    return tuple(rule_from_dict(item, default_timezone) for item in items)
