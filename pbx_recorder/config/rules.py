"""Building and validating ``rules`` into ``RuleConfig`` objects (used by ``config.build``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pbx_recorder.config.model import RuleAction, RuleConfig, RuleMatch, RuleRefusal
from pbx_recorder.config.reader import Ctx, KeyPath, Node
from pbx_recorder.core.rule_patterns import PatternError, compile_pattern, parse_time_window

DIRECTIONS = ("inbound", "outbound", "internal")
RECORD_CHOICES = ("force", "yes", "dontcare", "no", "never")
MODES = ("mixed", "dual", "stereo")
CONSENTS = ("none", "notify", "explicit")
START_ON = ("answer", "bridge")
PROMPT_ID_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # a prompt id, never a path
LANGUAGE_RE = r"[a-z]{2,3}([_-][A-Za-z0-9]{2,8})?"
NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.:-]*"
GOTO_RE = r"[^,\s]+,[^,\s]+,[^,\s]+"


def check_timezone(ctx: Ctx, path: KeyPath, name: Any) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        ctx.error(path, f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')")
        return False
    return True


def _patterns(node: Node, name: str) -> tuple[str, ...]:
    values = node.get_str_list(name)
    for i, text in enumerate(values):
        try:
            compile_pattern(text)
        except PatternError as exc:
            node.ctx.error(node.key(name) + (i,), f"bad pattern {text!r}: {exc}")
    return values


def _match(node: Node) -> RuleMatch:
    windows = node.get_str_list("time")
    for i, text in enumerate(windows):
        try:
            parse_time_window(text)
        except PatternError as exc:
            node.ctx.error(node.key("time") + (i,), f"bad time window: {exc}")
    result = RuleMatch(
        direction=node.get_str_list("direction", choices=DIRECTIONS),
        dialed=_patterns(node, "dialed"),
        caller=_patterns(node, "caller"),
        queue=_patterns(node, "queue"),
        agent=_patterns(node, "agent"),
        vip=node.get_bool("vip", None, optional=True),
        region=node.get_str_list("region"),
        time=windows,
    )
    node.finish()
    return result


def _refusal(node: Node) -> RuleRefusal | None:
    goto = node.get_str(
        "goto", None, optional=True, regex=GOTO_RE, what="goto target 'context,exten,priority'"
    )
    hangup = node.get_bool("hangup", False)
    goodbye = node.get_str("goodbye_prompt", None, optional=True, regex=PROMPT_ID_RE, what="prompt id")
    if goto and hangup:
        node.ctx.error(node.path, "give either 'goto' or 'hangup: true', not both")
    elif not goto and not hangup:
        node.ctx.error(node.path, "needs 'goto: context,exten,priority' or 'hangup: true'")
    if goodbye and not hangup:
        node.error("goodbye_prompt", "only used with 'hangup: true'")
    node.finish()
    return RuleRefusal(goto=goto, hangup=hangup, goodbye_prompt=goodbye)


def _action(node: Node, retention_classes: Collection[str]) -> RuleAction:
    retention_class = node.get_str("retention_class", None, optional=True)
    if retention_class is not None and retention_class not in retention_classes:
        node.error(
            "retention_class",
            f"unknown retention class {retention_class!r} (defined: {', '.join(sorted(retention_classes))})",
        )
    refusal = _refusal(node.child("refusal")) if node.raw("refusal") is not None else None
    action = RuleAction(
        record=node.get_str("record", "dontcare", choices=RECORD_CHOICES),
        mode=node.get_str("mode", "mixed", choices=MODES),
        consent=node.get_str("consent", "none", choices=CONSENTS),
        prompt=node.get_str("prompt", None, optional=True, regex=PROMPT_ID_RE, what="prompt id"),
        language=node.get_str("language", None, optional=True, regex=LANGUAGE_RE, what="language code"),
        record_notice=node.get_bool("record_notice", False),
        refusal=refusal,
        retention_class=retention_class,
        tags=node.get_str_list("tags"),
        start_on=node.get_str("start_on", "answer", choices=START_ON),
    )
    if refusal is not None and action.consent != "explicit":
        node.error("refusal", "only used with 'consent: explicit'")
    if action.record in ("no", "never") and action.consent != "none":
        node.error("consent", f"asks for consent on a rule that does not record (record: {action.record})")
    node.finish()
    return action


def build_rules(
    ctx: Ctx, raw: Any, default_tz: str, retention_classes: Collection[str]
) -> tuple[RuleConfig, ...]:
    path: KeyPath = ("rules",)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.error(path, "expected a list of rules")
        return ()
    rules: list[RuleConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        node = Node(ctx, (*path, i), item)
        name = node.get_str("name", regex=NAME_RE, what="rule name (letters, digits, _ . : -)")
        if name in seen:
            node.error("name", f"duplicate rule name {name!r} (also rules[{seen[name]}])")
        elif name:
            seen[name] = i
        tz = node.get_str("timezone", None, optional=True)
        if tz is not None:
            check_timezone(ctx, node.key("timezone"), tz)
        match = _match(node.child("match"))
        action = _action(node.child("action"), retention_classes)
        node.finish()
        rules.append(RuleConfig(name=name, match=match, action=action, timezone=tz or default_tz))
    return tuple(rules)
