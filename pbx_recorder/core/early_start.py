"""Whether a call's recording decision is final when the call enters (pure; issue 10).

The dialplan snippet asks the recorder for a *quick decision* before it answers the call
(``AGI(.../decide)``).  When the decision is already final there, the recorder answers with
channel variables and the snippet itself runs ``MixMonitor`` right after ``Answer()``: the
start then no longer waits for a round trip to the recorder after the answer.

Final at entry means nothing learnt later can change it:

* the deciding rule wants no consent dialogue (``consent: none``) and starts at ``answer``
  (``start_on: bridge`` waits for the bridge, on the AMI path), or it says not to record;
* no rule that matches on a fact known only later could override it: a rule with an ``agent``
  pattern (the agent is known at the bridge), or a ``queue`` pattern when the snippet passed
  no queue (the call may join one later).  Under the precedence of :func:`rules.evaluate`
  such a rule overrides when it is ``never`` or ``force`` (unless the decision is already
  ``never``), or when it is a ``yes`` / ``no`` rule listed before the deciding rule (or no
  rule decided).

Anything else keeps today's path: answer, then the consent session (in band on the AGI
socket, or AMI for bridge/agent/queue starts).
"""

from __future__ import annotations

from collections.abc import Sequence

from pbx_recorder.core.rules import CallContext, RuleDecision, RuleLike, _record_value, evaluate

START_AT_ANSWER = "answer"
YES_NO = ("yes", "no")


def _patterns(rule: RuleLike, key: str) -> tuple[str, ...]:
    return tuple(getattr(rule.match, key, ()) or ())


def depends_on_later_facts(rule: RuleLike, ctx: CallContext) -> bool:
    """The rule matches on a fact the call does not have yet when it enters."""
    return bool(_patterns(rule, "agent")) or (bool(_patterns(rule, "queue")) and not ctx.queue)


def _may_override(rule: RuleLike, decision: RuleDecision, order: dict[str, int]) -> bool:
    verdict = _record_value(rule.action)
    if decision.verdict == "never":
        return False  # nothing overrides a never rule
    if verdict == "never":
        return True
    if verdict == "force":
        return decision.verdict != "force" or order[rule.name] < order.get(decision.rule, len(order))
    if verdict in YES_NO and decision.verdict in (*YES_NO, "default"):
        return order[rule.name] < order.get(decision.rule, len(order))
    return False


def decision_at_entry(rules: Sequence[RuleLike], ctx: CallContext) -> RuleDecision | None:
    """The decision when it is final at entry (see the module docstring), else None."""
    decision = evaluate(rules, ctx)
    if decision.record and (decision.consent != "none" or decision.start_on != START_AT_ANSWER):
        return None
    order = {rule.name: i for i, rule in enumerate(rules)}
    for rule in rules:
        if rule.name != decision.rule and depends_on_later_facts(rule, ctx) \
                and _may_override(rule, decision, order):
            return None
    return decision
