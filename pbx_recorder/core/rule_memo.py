"""Rule evaluation remembered per distinct input: :func:`rules.evaluate` with a bounded memo.

Pure, no I/O.  ``evaluate(rules, ctx)`` depends on the rules (fixed for a CallBook) and on the
context values the rules LOOK AT: ``direction`` only if some rule matches on direction,
``dialed`` only if some rule has ``dialed`` patterns, and so on; a time window looks at the
weekday, hour and minute in the rule's timezone.  The explanation mentions nothing else (a
pattern miss says "(empty)" or "longer than 128 characters", never the number).  So the
decision for one such key is the decision for every context with that key, explanation
included, and :class:`RuleMemo` evaluates once per key: a stream of calls to the same DIDs
skips the rule walk and its explanation strings.

Bounded: at ``max_entries`` keys the memo is emptied (an attacker dialing random numbers costs
the evaluation it cost before, never memory).  Each call gets its own copy of the decision
(its explanation list is never shared between calls).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfoNotFoundError

from pbx_recorder.core.rules import CallContext, RuleDecision, RuleLike, _as_tuple, _local, evaluate

_PATTERN_FIELDS = ("direction", "dialed", "caller", "queue", "agent", "region")


class RuleMemo:
    def __init__(self, rules: Sequence[RuleLike], max_entries: int = 4096) -> None:
        self.rules = tuple(rules)
        self.max_entries = max_entries
        matches = [r.match for r in self.rules]
        self.fields = tuple(f for f in _PATTERN_FIELDS if any(_as_tuple(getattr(m, f, ())) for m in matches))
        self.uses_vip = any(getattr(m, "vip", None) is not None for m in matches)
        timed = [r for r in self.rules if _as_tuple(getattr(r.match, "time", ()))]
        self.zones = tuple(dict.fromkeys(getattr(r, "timezone", "UTC") or "UTC" for r in timed))
        self._memo: dict[Hashable, RuleDecision] = {}
        self.hits = self.misses = 0

    def key(self, ctx: CallContext) -> Hashable | None:
        """What the rules can see of ``ctx`` (None: do not remember, evaluate)."""
        values: list[object] = [getattr(ctx, f) for f in self.fields]
        if self.uses_vip:
            values.append(ctx.vip)
        for tz in self.zones:  # the local minute each timed rule's window is checked against
            if isinstance(ctx.at, datetime):
                return None
            try:
                local = _local(ctx.at, tz)
            except (ZoneInfoNotFoundError, ValueError):
                values.append(None)  # "unknown timezone": the same miss for every context
                continue
            values.append((local.weekday(), local.hour, local.minute))
        return tuple(values)

    def evaluate(self, ctx: CallContext) -> RuleDecision:
        key = self.key(ctx)
        if key is None:
            return evaluate(self.rules, ctx)
        known = self._memo.get(key)
        if known is None:
            self.misses += 1
            if len(self._memo) >= self.max_entries:
                self._memo.clear()
            known = self._memo[key] = evaluate(self.rules, ctx)
        else:
            self.hits += 1
        return replace(known, explanation=list(known.explanation))
