"""The audit row of a list read: who listed which calls, marks, QA reviews, QA assignments, replay,
deletion or export requests, saved searches or accounts, with which filter, and how many rows
came back.

A bank answering to PIPL or the GDPR must show every access to personal data, reads included, so
each request that returns such a list writes ONE row (never one per row returned: the log stays
readable and a request costs one append).  The actions, next to the writes they describe:

    calls.search / calls.search.unmask   GET /api/calls and the console's search page (``page``)
    marks.list                           GET /api/calls/{call_id}/marks (target: the call)
    qa.review.list                       GET /api/calls/{call_id}/reviews (target: the call)
    qa.assignments.list                  GET /api/qa/assignments
    qa.list                              the console's /qa page (assignments and reviews at once)
    replay.list                          GET /api/replay-requests, page /replay-requests (pending
                                         four-eyes requests: call ids, requesters, reasons)
    deletion.list                        GET /api/deletions, page /deletions (call ids, reasons)
    exports.list                         GET /api/exports, page /exports (the user's own jobs:
                                         masked filters, the calls an audio export still waits for)
    searches.list                        GET /api/searches (the user's own saved queries)
    users.list                           GET /api/users, page /admin/users (accounts, teams, states)
    tokens.list                          GET /api/tokens (every account's API tokens)
    reports.schedule.list                GET /api/report-schedules (owners, mail addresses)

Older list rows keep the names their CLI twins write: ``audit.list`` (the audit log, API and
page), ``hold.list`` (holds), ``erase.status`` (erasure requests), ``retention.report``.  Polls
that carry no personal data write nothing: the health poll, and the export page's progress poll
(``GET /api/exports?progress=1``: each job's state and counts only,
:func:`pbx_recorder.service.api_exports.progress_view`).

One call read (``GET /api/calls/{id}``, the call and review pages) is already ``calls.view``, one
deletion request (``GET /api/deletions/{id}``) is ``deletion.view`` (target: the request); a
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
REPLAY = "replay.list"
DELETIONS = "deletion.list"
EXPORTS = "exports.list"
SAVED_SEARCHES = "searches.list"
USERS = "users.list"
TOKENS = "tokens.list"
TEAMS = "teams.list"
SCHEDULES = "reports.schedule.list"


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
