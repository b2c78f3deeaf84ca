"""``calls search`` by a number, run by root for a named operator: the service's rule.

A search naming a number is audited (``calls.search.number`` / ``calls.search.last4``) and, for a
role without ``calls.unmask``, a full-number search is throttled by the same rule and the same
counter as the console's (:func:`pbx_recorder.service.throttle.admit`, limits from ``web:``):
the CLI is no way around the masked-search oracle rule.
"""

from __future__ import annotations

import time
from typing import Any

from pbx_recorder.catalog.queries import CallFilters
from pbx_recorder.cli.authz import Principal
from pbx_recorder.core import access_policy
from pbx_recorder.core.masking import mask_channel, mask_field
from pbx_recorder.errors import AccessDenied
from pbx_recorder.service import throttle


def admit(catalog: Any, config: Any, who: Principal, filters: CallFilters) -> None:
    """Audit a number-valued search; ``AccessDenied`` (exit 7) once the user's budget is spent."""
    kind = throttle.number_kind(filters)
    if kind is None:
        return
    detail = {"client": "cli", "caller": mask_field(filters.caller or ""),
              "callee": mask_field(filters.callee or "")}
    if filters.agent:
        detail["agent"] = mask_channel(filters.agent)
    retry = throttle.admit(catalog.connection(), actor=who.actor, role=who.role, kind=kind, detail=detail,
                           now=time.time(), limit=config.web.number_searches,
                           window_s=config.web.number_search_window_s,
                           exempt=access_policy.check(who.role, "calls.unmask"))
    if retry:
        raise AccessDenied(f"too many searches by number for {who.actor!r}: try again in {retry} s")
