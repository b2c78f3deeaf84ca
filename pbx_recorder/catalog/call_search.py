"""Searching the catalog's calls: one call by id, a page of calls by filters (keyset, one index
range read a page), and how many match.  A mixin of
:class:`~pbx_recorder.catalog.repository.Catalog`: it reads through the Catalog's connection and
opens the numbers with its :class:`~pbx_recorder.catalog.protected_rows.NumberProtection`."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from pbx_recorder.catalog.json_columns import decode_row, row_dict
from pbx_recorder.catalog.queries import (
    COUNT_CAP,
    MAX_LIMIT,
    CallFilters,
    Count,
    Cursor,
    bounded_total,
    build_bounded_count,
    build_count,
    build_get,
    build_search,
    decode_cursor,
    encode_cursor,
    range_cap,
    time_range,
)
from pbx_recorder.catalog.scopes import Scope
from pbx_recorder.errors import CatalogError

if TYPE_CHECKING:
    from pbx_recorder.catalog.protected_rows import NumberProtection

log = logging.getLogger(__name__)

#: a row kept out of a scope is named in the log once per call in this time (each read would
#: otherwise log it again: a page of forged rows at every keystroke of a search)
ALERT_EVERY_S = 600.0
_ALERTED: dict[str, float] = {}
_ALERTED_MAX = 10_000


def _alert_due(call_id: str) -> bool:
    now = time.monotonic()
    last = _ALERTED.get(call_id)
    if last is not None and now - last < ALERT_EVERY_S:
        return False
    if len(_ALERTED) >= _ALERTED_MAX:
        _ALERTED.clear()
    _ALERTED[call_id] = now
    return True


#: what is wrong with a stored call row's seal ('' when nothing), given the connection it was read
#: through (``recording.call_seal.stored_call_problem`` with the signing key's public half)
ScopeGuard = Callable[[Any, Mapping[str, Any]], str]


def _reversed_text(text: str) -> tuple[int, ...]:
    """A sort key ordering strings in reverse (the ``call_id DESC`` tie-break of ``oldest``)."""
    return tuple(-ord(c) for c in text) + (1,)


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of a search: its rows, the cursor of the next page (None: last page), the count."""

    rows: list[dict[str, Any]]
    next_cursor: str | None
    count: Count | None = None


class CallSearch:
    """Catalog methods that find calls."""

    #: set by the operator service when it holds the signing key's public half: a row read through
    #: a scope its own ``agent`` column decides (``Scope.reads_agent``: own calls, a team's) is in
    #: that scope only when its seal holds -- an insider who writes another agent's name into
    #: ``calls.agent`` (no signing key) does not move the call into that agent's or team's view
    scope_guard: ScopeGuard | None = None

    if TYPE_CHECKING:  # what they use of the Catalog
        clock: Callable[[], float]
        numbers: NumberProtection | None

        def _exec(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor: ...
        def _open_call(self, row: dict[str, Any]) -> dict[str, Any]: ...
        def connection(self) -> sqlite3.Connection: ...

    def get_call(self, call_id: str, *, scope: Scope | None = None) -> dict[str, Any] | None:
        """The call, or None when absent or outside ``scope`` (the same answer)."""
        sql, params = build_get(call_id, scope)
        row = self._exec(sql, params).fetchone()
        return self._open_call(decode_row(row)) if row and self._admitted(row, scope) else None

    def _admitted(self, row: sqlite3.Row, scope: Scope | None) -> bool:
        """False for a row whose scope depends on its agent column and whose seal fails."""
        guard = self.scope_guard
        if guard is None or scope is None or not scope.reads_agent:
            return True
        why = guard(self.connection(), row_dict(row))
        if why and _alert_due(str(row["call_id"])):
            log.error("ALERT call=%s: %s; kept out of the agents' and teams' views that its agent "
                      "column would put it in (see `pbx-recorder verify`)", row["call_id"], why)
        return not why

    def search(self, filters: CallFilters, *, now: float | None = None,
               tz: tzinfo | None = None) -> list[dict[str, Any]]:
        """The first page (or the page after ``filters.after``), newest first."""
        return self.search_page(filters, now=now, tz=tz, count=False).rows

    def search_page(self, filters: CallFilters, *, now: float | None = None, tz: tzinfo | None = None,
                    count: bool = True, count_cap: int = COUNT_CAP, scope: Scope | None = None,
                    count_read_cap: int | None = None) -> SearchPage:
        """A page of calls, the cursor of the next one, and (``count``) how many match in all.

        ``count_read_cap``: for a count only shown (the console, the API, the CLI), a tag beside
        other filters reads at most that many entries of the tag's index and is then a lower
        bound (:func:`~pbx_recorder.catalog.queries.build_bounded_count`); without it the count
        is exact up to ``count_cap`` (what an export's or a bulk action's limit needs).

        Each page is one index range read (keyset, no OFFSET); rows without a start time come
        after all others, paged by call id.  Numbers are matched through their blind indexes;
        until the data step has run (``catalog migrate``) rows still in clear are matched as
        before and merged in."""
        at = self.clock() if now is None else now
        limit = max(1, min(int(filters.limit), MAX_LIMIT))
        blind = self.numbers.index if self.numbers is not None else None
        try:
            cursor = decode_cursor(filters.after) if filters.after else None
            rows = self._page_rows(filters, at, tz, cursor, limit, blind, scope)
            legacy = (blind is not None and bool(filters.caller or filters.callee)
                      and not self._all_protected())
            if legacy:
                seen = {r["call_id"] for r in rows}
                rows += [r for r in self._page_rows(filters, at, tz, cursor, limit, None, scope)
                         if r["call_id"] not in seen]
                sign = 1 if filters.order == "oldest" else -1
                rows.sort(key=lambda r: (r["started_at"] is None, sign * (r["started_at"] or 0),
                                         str(r["call_id"]) if r["started_at"] is None or sign < 0
                                         else _reversed_text(str(r["call_id"]))))
            total = None
            if count:
                bounded = (build_bounded_count(filters, at, tz, count_read_cap, scope=scope)
                           if count_read_cap else None)
                if bounded is not None and count_read_cap:
                    ranges = self._exec(*bounded).fetchall()
                    total = bounded_total(ranges, range_cap(count_read_cap, len(ranges)), count_cap)
                else:
                    sql, params = build_count(filters, at, tz, count_cap, blind=blind, scope=scope)
                    n = int(self._exec(sql, params).fetchone()[0])
                    if legacy:
                        sql, params = build_count(filters, at, tz, count_cap, scope=scope)
                        n += int(self._exec(sql, params).fetchone()[0])
                    total = Count(min(n, count_cap), exact=n <= count_cap)
        except ValueError as exc:
            raise CatalogError(str(exc)) from exc
        # the cursor follows the rows read (a row kept out of the scope is skipped, not re-read)
        page = [self._open_call(decode_row(r)) for r in rows[:limit] if self._admitted(r, scope)]
        more = len(rows) > limit
        last = row_dict(rows[limit - 1]) if more else None
        next_cursor = (encode_cursor(Cursor(last["started_at"], str(last["call_id"]))) if more and last
                       else None)
        return SearchPage(page, next_cursor, total)

    def _page_rows(self, filters: CallFilters, at: float, tz: tzinfo | None, cursor: Cursor | None,
                   limit: int, blind: Any, scope: Scope | None = None) -> list[sqlite3.Row]:
        """Up to ``limit + 1`` raw rows after ``cursor`` (the extra one says a page follows)."""
        sql, params = build_search(filters, at, tz, cursor=cursor, probe=True, blind=blind, scope=scope)
        rows = self._exec(sql, params).fetchall()
        unbounded = time_range(filters, at, tz) == (None, None)
        if len(rows) <= limit and unbounded and (cursor is None or cursor.started_at is not None):
            # the keyset range (and the first page: build_search) stops at the last timed row:
            # the untimed ones follow
            sql, params = build_search(filters, at, tz, cursor=Cursor(None, ""), probe=True, blind=blind,
                                       scope=scope)
            rows += self._exec(sql, params).fetchall()[: limit + 1 - len(rows)]
        return list(rows)

    def _all_protected(self) -> bool:
        from pbx_recorder.catalog.number_migration import DONE_SETTING

        row = self._exec("SELECT 1 FROM catalog_settings WHERE name = ?", (DONE_SETTING,)).fetchone()
        return row is not None
