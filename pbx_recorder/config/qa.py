"""``web.qa_sampling``: the QA sampling rules, read and validated at start-up (every error names
its key, e.g. ``web.qa_sampling[1].percent``).

    web:
      qa_sampling:
        - name: weekly-5pct          # optional (default rule1, rule2 ...); part of the draw
          percent: 5                 # or count: 3 (per agent per ISO week), exactly one of them
          queue: sales               # optional: only this queue's calls
          tag: complaint             # optional: only calls with this tag
          reviewers: [qa1, qa2]      # QA accounts the picks are spread over
      qa_sampling_seed_file: /etc/pbx-recorder/qa-seed   # optional secret; default: the catalog's
"""

from __future__ import annotations

import re

from pbx_recorder.config.model import QaSamplingRule
from pbx_recorder.config.reader import Node

NAME_RE = r"[\w.@-]{1,64}"  # as pbx_recorder.service.accounts.check_name
MAX_RULES = 100
MIN_SEED_CHARS = 16  # web.qa_sampling_seed (checked in config.build)


def build_qa_sampling(web: Node) -> tuple[QaSamplingRule, ...]:
    raw = web.raw("qa_sampling")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        web.error("qa_sampling", f"expected a list of rules, got {type(raw).__name__}")
        return ()
    if len(raw) > MAX_RULES:
        web.error("qa_sampling", f"more than {MAX_RULES} rules")
        return ()
    rules: list[QaSamplingRule] = []
    for i, item in enumerate(raw):
        n = Node(web.ctx, web.key("qa_sampling") + (i,), item)
        rule = _rule(n, i)
        n.finish()
        if rule is None:
            continue
        if any(r.name == rule.name for r in rules):
            n.error("name", f"{rule.name!r} is the name of another rule")
            continue
        rules.append(rule)
    return tuple(rules)


def _rule(n: Node, i: int) -> QaSamplingRule | None:
    name = n.get_str("name", f"rule{i + 1}", regex=NAME_RE, what="rule name")
    percent = n.get_float("percent", None, optional=True, lo=0.01, hi=100)
    count = n.get_int("count", None, optional=True, lo=1, hi=1000)
    queue = n.get_str("queue", None, optional=True)
    tag = n.get_str("tag", None, optional=True)
    reviewers = n.get_str_list("reviewers")
    ok = True
    if (percent is None) == (count is None):
        n.error("percent", "give exactly one of percent or count")
        ok = False
    if not reviewers:
        n.error("reviewers", "is required: the QA accounts the sampled calls go to")
        ok = False
    for k, reviewer in enumerate(reviewers):
        if not _is_name(reviewer):
            n.ctx.error(n.key("reviewers") + (k,), f"{reviewer!r} is not a valid account name")
            ok = False
    if len(set(reviewers)) != len(reviewers):
        n.error("reviewers", "names a reviewer twice")
        ok = False
    if not ok:
        return None
    return QaSamplingRule(name=name, reviewers=tuple(reviewers), percent=percent, count=count,
                          queue=queue or None, tag=tag or None)


def _is_name(text: str) -> bool:
    return re.fullmatch(NAME_RE, text) is not None
