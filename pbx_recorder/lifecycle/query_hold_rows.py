"""The calls a legal hold by query may cover, read through the search's index ranges.

A hold by query (``hold add --query '{"queue": "sales", "start": ...}'``) used to read the whole
``calls`` table, opening every row's numbers, and test each row: minutes at 10 M calls (issue
11). When the query names a filter ``calls search`` serves from an index (a time range, status,
call id, agent, queue, tag, consent), the candidates are read the way a search reads them:
keyset pages of one index range each (``catalog.queries.build_search``, the timed rows newest
first, then, when no time range is given, the untimed rows by call id). The candidates are a
superset of the matches, not the decision: :func:`policy.query_matches` still decides every row
(the filters the search has no index for -- DID, direction, region, retention class -- are
tested there only). A query with no indexed filter, or one the search refuses (an unknown
status) or a time that is not a finite number (JSON allows NaN), reads the table as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pbx_recorder.catalog.queries import MAX_LIMIT, CallFilters, Cursor, build_search

#: query keys ``build_search`` narrows by (each the ``CallFilters`` field of that name)
INDEXED = ("start", "end", "status", "call_id", "agent", "queue", "tag", "consent")

RowsOf = Callable[[str, tuple[Any, ...]], Sequence[Mapping[str, Any]]]


def search_filters(q: Mapping[str, Any], batch: int) -> CallFilters | None:
    """The search filters for ``q``'s indexed keys (pages of ``batch``), or None: no indexed key,
    or a value the search would refuse (the caller then reads the table)."""
    given = {k: v for k, v in q.items() if k in INDEXED}
    if not given:
        return None
    try:
        fields: dict[str, Any] = {
            name: float(v) if name in ("start", "end") else str(v) for name, v in given.items()
        }
        if not all(math.isfinite(fields[k]) for k in ("start", "end") if k in fields):
            return None  # NaN or infinity: no index range selects what the row test keeps
        filters = CallFilters(**fields, limit=max(1, min(int(batch), MAX_LIMIT)))
        build_search(filters, 0.0, probe=True)  # an unknown status raises here
    except (TypeError, ValueError, OverflowError):
        return None
    return filters


def candidate_pages(rows_of: RowsOf, filters: CallFilters) -> Iterator[list[Mapping[str, Any]]]:
    """Pages of ``calls`` rows (stored form) that may match ``filters``: every one that does."""
    untimed_follow = filters.start is None and filters.end is None
    cursor: Cursor | None = None
    while True:
        sql, params = build_search(filters, 0.0, cursor=cursor, probe=True)
        page: list[Mapping[str, Any]] = list(rows_of(sql, tuple(params)))
        more = len(page) > filters.limit
        page = page[: filters.limit]
        if page:
            yield page
        if more:
            last = page[-1]
            cursor = Cursor(last["started_at"], str(last["call_id"]))
        elif untimed_follow and (cursor is None or cursor.started_at is not None):
            cursor = Cursor(None, "")  # the timed rows are done: the untimed ones, by call id
        else:
            return
