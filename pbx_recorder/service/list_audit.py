"""The audit row of a list read: who listed which calls, marks, QA reviews or QA assignments, with
which filter, and how many rows came back.

A bank answering to PIPL or the GDPR must show every access to personal data, reads included, so
each request that returns such a list writes ONE row (never one per row returned: the log stays
readable and a request costs one append).  The actions, next to the writes they describe:

    calls.search / calls.search.unmask   GET /api/calls and the console's search page (``page``)
    marks.list                           GET /api/calls/{call_id}/marks (target: the call)
    qa.review.list                       GET /api/calls/{call_id}/reviews (target: the call)
    qa.assignments.list                  GET /api/qa/assignments
    qa.list                              the console's /qa page (assignments and reviews at once)

One call read (``GET /api/calls/{id}``, the call and review pages) is already ``calls.view``; a
refusal is already ``denied:<verb>`` (or ``<verb>.absent``) and writes no list row.  The detail is
``{"client", <the filter's fields that are set>, "results": <rows returned>}``, as ``audit.list``
has it.  Numbers are never written in clear: :func:`pbx_recorder.audit_trail.record` masks the
number-bearing keys (``caller``, ``callee``) and passes every other text (``keyword``, ``agent``)
through the free-text masker; times are kept as epoch seconds (a number, not text a masker could
mistake for a phone number).  The row is appended in the request's transaction when there is one;
a list read has none, so it is the request's one write.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pbx_recorder.catalog.queries import CallFilters
from pbx_recorder.service.auth import Actor, audit
from pbx_recorder.service.context import ServiceContext

CALLS = "calls.search"
CALLS_UNMASKED = "calls.search.unmask"
MARKS = "marks.list"
REVIEWS = "qa.review.list"
ASSIGNMENTS = "qa.assignments.list"
QA_PAGE = "qa.list"


def search_filter(f: CallFilters) -> dict[str, Any]:
    """The fields of a call search that narrow it (unset ones left out; limit and order always)."""
    return {field.name: getattr(f, field.name) for field in dataclasses.fields(f)
            if getattr(f, field.name) not in (None, "")}


def list_detail(client: str, results: int, shown: dict[str, Any] | None = None) -> dict[str, Any]:
    """The detail of a list row (``shown``: the filter and anything else worth keeping)."""
    return {"client": client, **(shown or {}), "results": int(results)}


def listed(ctx: ServiceContext, actor: Actor, action: str, target: str, results: int,
           shown: dict[str, Any] | None = None) -> None:
    """Append the one audit row of a list read by ``actor`` that returned ``results`` rows."""
    audit(ctx, actor.user.name, actor.user.role, action, target, list_detail(actor.client, results, shown))
