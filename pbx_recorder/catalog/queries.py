"""Call search: filters -> parameterized SQL.  Column names never come from input.

Every filter is served by an index whose order is the result's order, ``started_at DESC,
call_id`` (migration 5: ``(column, started_at DESC, call_id)`` per filter column, tags in
``call_tags``), so a page costs the same at 10M calls as at 10.  Pages follow each other by
keyset (:class:`Cursor`: the last row's ``(started_at, call_id)``, opaque to the caller), never by
OFFSET: page 200 is read like page 1.  Rows without a start time (a recording's stand-in call
row) sort last and are paged by call id (a cursor with ``started_at`` None).  ``order="oldest"``
reads the same indexes backwards (``started_at ASC, call_id DESC``: the exact reverse, so no sort
step); the untimed rows still come last, by call id.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from pbx_recorder.catalog.marks import keyword_clause
from pbx_recorder.catalog.number_protection import BlindIndex
from pbx_recorder.catalog.protected_rows import side_clause
from pbx_recorder.catalog.schema_agent import AGENT_CARRIED
from pbx_recorder.catalog.schema_fresh_numbers import FRESH, SETTLED
from pbx_recorder.catalog.scopes import Scope, scope_clause

PRESETS = ("today", "yesterday", "7d", "30d")
STATUSES = ("answered", "no_answer", "busy", "failed")
ORDERS = ("newest", "oldest")
MAX_LIMIT = 10000
COUNT_CAP = 10000  # a count stops here: "more than 10,000" is exact enough and never scans
#: the index entries the count of a combined filter tested inside one index reads at most, where
#: the search asks for it (:func:`build_bounded_count`): past them the count is a lower bound
COUNT_READ_CAP = 25_000
#: a team up to this many agents is paged one agent at a time (SQLite allows 500 UNION terms)
MAX_MERGED_AGENTS = 100
_CURSOR_VERSION = 1
_MAX_CURSOR_CHARS = 1024


@dataclass(frozen=True, slots=True)
class CallFilters:
    start: float | None = None  # epoch seconds, inclusive
    end: float | None = None  # epoch seconds, exclusive
    preset: str | None = None  # today | yesterday | 7d | 30d (overrides start/end)
    status: str | None = None
    caller: str | None = None  # full number or last 4 digits
    callee: str | None = None
    call_id: str | None = None
    agent: str | None = None
    queue: str | None = None
    tag: str | None = None
    consent: str | None = None  # consent_decision
    keyword: str | None = None  # in the label or note of one of the call's marks
    limit: int = 50
    after: str | None = None  # opaque cursor of the previous page's last row (encode_cursor)
    order: str = "newest"  # newest | oldest (ORDERS)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last row's sort key."""

    started_at: float | None
    call_id: str


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([_CURSOR_VERSION, cursor.started_at, cursor.call_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The cursor in ``text``; ValueError for anything ``encode_cursor`` did not make."""
    if not isinstance(text, str) or not 0 < len(text) <= _MAX_CURSOR_CHARS:
        raise ValueError("not a search cursor (use the value `calls search` printed as the next page)")
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8"))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a search cursor (use the value `calls search` printed for the next page)") \
            from exc
    if not (isinstance(data, list) and len(data) == 3 and data[0] == _CURSOR_VERSION):
        raise ValueError("not a search cursor of this version")
    _, started, call_id = data
    if started is not None and (isinstance(started, bool) or not isinstance(started, int | float)
                                or not math.isfinite(started)):
        raise ValueError("search cursor: bad start time")
    if not isinstance(call_id, str):
        raise ValueError("search cursor: bad call id")
    return Cursor(None if started is None else float(started), call_id)


@dataclass(frozen=True, slots=True)
class Count:
    """How many calls match: exact up to ``COUNT_CAP``, else a lower bound, never a scan."""

    value: int
    exact: bool
    #: False: counting stopped before the matches did (``COUNT_READ_CAP`` entries read): at least ``value``
    complete: bool = True

    def __str__(self) -> str:
        if self.exact:
            return f"{self.value:,}"
        return f"more than {self.value:,}" if self.complete else f"at least {self.value:,}"


def preset_range(preset: str, now: float, tz: tzinfo | None = None) -> tuple[float, float]:
    """[start, end) for a preset, days counted in ``tz`` (default: local time)."""
    current = datetime.fromtimestamp(now, tz) if tz else datetime.fromtimestamp(now).astimezone()
    midnight = current.replace(hour=0, minute=0, second=0, microsecond=0)
    if preset == "today":
        return midnight.timestamp(), now + 1
    if preset == "yesterday":
        return (midnight - timedelta(days=1)).timestamp(), midnight.timestamp()
    if preset in ("7d", "30d"):
        return now - int(preset[:-1]) * 86400, now + 1
    raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _number_clause(column: str, value: str, params: list[Any], blind: BlindIndex | None = None,
                   part: str | None = None) -> str:
    """``column`` is ``caller_num`` or ``callee_num``.  With the catalog's blind index (schema 6,
    numbers encrypted): one range of that side's ``(last-4 index, started_at, call_id, full-number
    index)`` index (schema 15), which serves both the lookup and the ORDER BY; of its settled and
    its fresh part (schema 25), or of ``part`` alone (a page's arm: :func:`_page`)."""
    if blind is not None:
        side = column.removesuffix("_num")
        digits = _digits(value)
        if not digits:
            raise ValueError(f"search by number needs digits, got {value!r}")
        if len(digits) < 4 and len(digits) == len(value.strip()):
            raise ValueError("search by number takes the last 4 digits or the full number")
        return side_clause(blind, side, value, params, part=part)
    digits = _digits(value)
    if 0 < len(digits) <= 4 and len(digits) == len(value.strip()):
        params.append(digits)
        # the last n characters, written the way both engines read it (substr with a negative start
        # counts from the end on SQLite only)
        return f"substr({column}, length({column}) - {len(digits) - 1}) = ?"
    params.extend([value.strip(), digits])
    return f"({column} = ? OR {column} = ?)"


def time_range(f: CallFilters, now: float, tz: tzinfo | None = None) -> tuple[float | None, float | None]:
    if f.preset:
        return preset_range(f.preset, now, tz)
    return f.start, f.end


def _time_clauses(src: str, f: CallFilters, now: float, tz: tzinfo | None, where: list[str],
                  params: list[Any]) -> None:
    """The filter's time range as conditions on ``src.started_at`` (none for "all time")."""
    start, end = time_range(f, now, tz)
    if start is not None:
        where.append(f"{src}.started_at >= ?")
        params.append(start)
    if end is not None:
        where.append(f"{src}.started_at < ?")
        params.append(end)


def _keyset(src: str, cursor: Cursor, params: list[Any], oldest: bool = False) -> str:
    """Rows after ``cursor`` in ``started_at DESC, call_id`` order (``oldest``: its reverse), as an
    index range."""
    if cursor.started_at is None:
        params.append(cursor.call_id)
        return f"{src}.started_at IS NULL AND {src}.call_id > ?"
    params.extend([cursor.started_at, cursor.started_at, cursor.call_id])
    if oldest:
        return f"{src}.started_at >= ? AND ({src}.started_at > ? OR {src}.call_id < ?)"
    return f"{src}.started_at <= ? AND ({src}.started_at < ? OR {src}.call_id > ?)"


def _order_by(src: str, f: CallFilters, cursor: Cursor | None) -> str:
    if f.order not in ORDERS:
        raise ValueError(f"unknown order {f.order!r} (known: {', '.join(ORDERS)})")
    if f.order == "oldest" and (cursor is None or cursor.started_at is not None):
        return f"{src}.started_at ASC, {src}.call_id DESC"
    return f"{src}.started_at DESC, {src}.call_id"  # untimed rows: by call id in both orders


def _source(f: CallFilters, now: float, tz: tzinfo | None, params: list[Any],
            cursor: Cursor | None, rows: bool = True,
            blind: BlindIndex | None = None, scope: Scope | None = None,
            part: str | None = None) -> tuple[str, str, list[str]]:
    """(FROM clause, table whose index gives the order, WHERE terms), ``params`` in step.

    A tag is read from ``call_tags`` in its (tag, started_at) order, alone or beside the filters
    whose columns ``call_tags`` keeps a copy of (agent, status, consent, queue: migrations 10 and
    17), tested inside the tag's index; a page tests the call row's own columns too (the row is
    the rule: a stale copy could hide a call, never show one).  Beside a number, a call id or a
    keyword, a tag is checked per row of that filter's index (one key lookup each).  ``scope``
    (the operator's row scope) adds its clause to every read, counts included.  ``part``: the
    number filters read that part of the number indexes alone (``schema_fresh_numbers``)."""
    where: list[str] = []
    rows = rows or (scope is not None and scope.kind != "all")  # a scoped count reads the call row
    src = _source_table(f)
    tag_first = src == "t"
    sql_from = "calls"
    if tag_first:  # without ``rows`` (a count): call_tags alone, its rows are those of existing calls
        # CROSS JOIN keeps SQLite from reordering the join (the tag index leads); both engines
        # take the join condition in WHERE
        sql_from = "call_tags t CROSS JOIN calls" if rows else "call_tags t"
    if tag_first:
        if rows:
            where.append("calls.call_id = t.call_id")
        where.append("t.tag = ?")
        params.append(f.tag)
    _time_clauses(src, f, now, tz, where, params)
    if f.status and f.status not in STATUSES:
        raise ValueError(f"unknown status {f.status!r} (known: {', '.join(STATUSES)})")
    if f.caller:
        where.append(_number_clause("caller_num", f.caller, params, blind, part))
    if f.callee:
        where.append(_number_clause("callee_num", f.callee, params, blind, part))
    for column, value in (("status", f.status), ("call_id", f.call_id), ("agent", f.agent),
                          ("queue", f.queue), ("consent_decision", f.consent)):
        if not value:
            continue
        if tag_first:  # the tag index's copy (call_id is never one: no tag_first beside it)
            where.append(f"t.{column} = ?")
            params.append(value)
        if rows or not tag_first:
            where.append(f"calls.{column} = ?")
            params.append(value)
    if f.tag and not tag_first:
        where.append("EXISTS (SELECT 1 FROM call_tags t WHERE t.call_id = calls.call_id AND t.tag = ?)")
        params.append(f.tag)
    if f.keyword:
        where.append(keyword_clause(f.keyword, params))
    if tag_first and scope is not None and scope.kind == "agents":
        # the tag index led by the agent (migration 10) narrows the read; the call row's own agent
        # (below) stays the rule, so a stale copy in call_tags could hide a call, never show one
        where.append(scope_clause(scope, params, table="t") or "1 = 0")
    limited = scope_clause(scope, params)
    if limited:
        where.append(limited)
    if cursor is not None:
        where.append(_keyset(src, cursor, params, oldest=f.order == "oldest"))
    return sql_from, src, where


def per_agent(f: CallFilters, scope: Scope | None) -> list[str] | None:
    """The agents whose calls a scoped page reads one at a time, or None for a single read.

    A team's page is the newest rows of several agents: read as one ``agent IN (...)`` range
    under a sort it is every matching call of the team (tens of thousands at 10M calls); read as
    one short range per agent (the agent's index, carrying the filters since schema 18) and merged,
    it is at most a page per agent.  Not for one agent (one range already), a scope beyond
    ``MAX_MERGED_AGENTS``, or a filter whose own index is narrower than an agent's calls (a
    number, a call id, one agent)."""
    if scope is None or scope.kind != "agents" or not 1 < len(scope.agents) <= MAX_MERGED_AGENTS:
        return None
    if f.caller or f.callee or f.call_id or f.agent:
        return None
    return sorted(scope.agents)


def build_search(f: CallFilters, now: float, tz: tzinfo | None = None, *,
                 cursor: Cursor | None = None, probe: bool = False,
                 blind: BlindIndex | None = None, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """One page: rows after ``cursor`` (default: ``f.after``), ``f.limit`` of them (one more
    with ``probe``, to learn whether another page follows).  A team's scope: one page per agent
    (:func:`per_agent`), merged in the page's order."""
    if cursor is None and f.after:
        cursor = decode_cursor(f.after)
    agents = per_agent(f, scope)
    if agents is None:
        return _page(f, now, tz, cursor, probe, blind, scope)
    # each agent's page as sort keys only (read off the index), the page's keys picked from them,
    # then only those rows read: a team of 12 reads 50 rows, not 12 x 50
    params: list[Any] = []
    branches = []
    for k, agent in enumerate(agents):
        sql, branch_params = _page(f, now, tz, cursor, probe, blind, Scope.of_agents({agent}),
                                   columns="calls.started_at, calls.call_id")
        branches.append(f"SELECT * FROM ({sql}) AS b{k}")
        params.extend(branch_params)
    params.append(max(1, min(int(f.limit), MAX_LIMIT)) + (1 if probe else 0))
    keys = (f"SELECT * FROM ({' UNION ALL '.join(branches)}) AS u "
            f"ORDER BY {_order_by('u', f, cursor)} LIMIT ?")
    return (f"SELECT calls.* FROM ({keys}) AS k CROSS JOIN calls WHERE calls.call_id = k.call_id "
            f"ORDER BY {_order_by('k', f, cursor)}", params)


def _page(f: CallFilters, now: float, tz: tzinfo | None, cursor: Cursor | None, probe: bool,
          blind: BlindIndex | None, scope: Scope | None,
          columns: str = "calls.*") -> tuple[str, list[Any]]:
    """One page.  By number on a protected catalog: the page of the settled calls and the page of
    the fresh ones (``schema_fresh_numbers``), each one ordered range of its own partial index read
    up to the page's size, merged in the page's order (PostgreSQL: ``Merge Append``; SQLite:
    ``MERGE (UNION ALL)``, sorting each arm's page of at most ``limit + 1`` rows on the way)."""
    n = max(1, min(int(f.limit), MAX_LIMIT)) + (1 if probe else 0)
    params: list[Any] = []
    if blind is None or not (f.caller or f.callee):
        sql = _page_rows(f, now, tz, cursor, blind, scope, columns, params)
        params.append(n)
        return f"{sql} ORDER BY {_order_by(_source_table(f), f, cursor)} LIMIT ?", params
    arms = []
    for k, part in enumerate((SETTLED, FRESH)):  # (each arm's keys off its index, the rows read once)
        sql = _page_rows(f, now, tz, cursor, blind, scope, "calls.started_at, calls.call_id", params, part)
        params.append(n)
        arms.append(f"SELECT * FROM ({sql} ORDER BY {_order_by('calls', f, cursor)} LIMIT ?) AS a{k}")
    params.append(n)
    keys = f"SELECT * FROM ({' UNION ALL '.join(arms)}) AS u ORDER BY {_order_by('u', f, cursor)} LIMIT ?"
    return (f"SELECT {columns} FROM ({keys}) AS k CROSS JOIN calls WHERE calls.call_id = k.call_id "
            f"ORDER BY {_order_by('k', f, cursor)}", params)


def _source_table(f: CallFilters) -> str:
    """The table whose index gives a page its order (``_source``'s second answer)."""
    return "t" if f.tag and not any((f.caller, f.callee, f.call_id, f.keyword)) else "calls"


def _page_rows(f: CallFilters, now: float, tz: tzinfo | None, cursor: Cursor | None,
               blind: BlindIndex | None, scope: Scope | None, columns: str, params: list[Any],
               part: str | None = None) -> str:
    """A page's SELECT before its ORDER BY and LIMIT; ``params`` in step."""
    sql_from, src, where = _source(f, now, tz, params, cursor, blind=blind, scope=scope, part=part)
    if cursor is None and time_range(f, now, tz) == (None, None):
        # the first page of an unbounded search reads the timed rows only; the untimed ones are
        # read after them (Catalog._page_rows). PostgreSQL sorts NULL first in DESC order and
        # SQLite last, so ORDER BY alone would put them at opposite ends on the two engines.
        where.append(f"{src}.started_at IS NOT NULL")
    sql = f"SELECT {columns} FROM {sql_from}"
    return sql + (" WHERE " + " AND ".join(where) if where else "")


def build_count(f: CallFilters, now: float, tz: tzinfo | None = None,
                cap: int = COUNT_CAP, *, blind: BlindIndex | None = None,
                scope: Scope | None = None) -> tuple[str, list[Any]]:
    """COUNT of the calls matching ``f`` (all pages), reading at most ``cap + 1`` of them."""
    params: list[Any] = []
    sql_from, _, where = _source(f, now, tz, params, None, rows=False, blind=blind, scope=scope)
    inner = f"SELECT 1 FROM {sql_from}" + (" WHERE " + " AND ".join(where) if where else "")
    params.append(int(cap) + 1)
    return f"SELECT COUNT(*) FROM ({inner} LIMIT ?) AS capped", params


def _bounded_range(f: CallFilters, team: bool) -> tuple[str, list[tuple[str, str]], tuple[str, ...]] | None:
    """(table and alias, the columns and values of the index range a combined count reads, the
    columns that index carries) for :func:`build_bounded_count`, or None when no such range leads:
    a tag's index (schema 17), else the agent's (schema 18: an agent given, or a ``team``'s scope,
    whose agents' ranges the count reads), else the queue's, else the consent's (schema 16: the
    planner's seeded order).  A tag inside a team's scope is left to build_count."""
    if f.tag:
        if team:
            return None
        lead = [("tag", f.tag)] + ([("agent", f.agent)] if f.agent else [])  # call_tags_agent leads
        return "call_tags t", lead, ("status", "consent_decision", "queue")
    if f.agent or team:
        return "calls", [("agent", f.agent)] if f.agent else [], AGENT_CARRIED
    if f.queue:
        return "calls", [("queue", f.queue)], ("status", "consent_decision")
    if f.consent:
        return "calls", [("consent_decision", f.consent)], ("status",)
    return None


def build_bounded_count(f: CallFilters, now: float, tz: tzinfo | None = None,
                        read_cap: int = COUNT_READ_CAP, *,
                        scope: Scope | None = None) -> tuple[str, list[Any]] | None:
    """The bounded count of a combined filter tested inside one index (a tag beside a status,
    consent or queue; an agent's or a team's calls beside one of them; a queue beside a status or
    consent; a consent beside a status): one row ``(matches, entries read)`` per index range read
    (a team's agents one range each, newest first), each range reading at most :func:`range_cap`
    entries; :func:`bounded_total` makes the :class:`Count` of them.  None where
    :func:`build_count` is the count (nothing tested inside an index; a number, call id or keyword;
    a reviewer's scope; a tag inside a team).

    :func:`build_count` stops after ``COUNT_CAP`` matches; a rare combination inside a tag most
    calls of a year have (10 % of 10 M calls, the combination on 3 % of them) had it read 350,000
    entries before reaching them (340 ms with the pages on disk), and a team of 20 agents with a
    rare status reads their 400,000 calls at 10 M since one agent index serves them (schema 18).
    A range read to its end (fewer entries than its cap) is counted exactly; past the cap the count
    is a lower bound (:attr:`Count.complete` False).  A team's agents are read newest first, each
    its share of the cap: the entries its page has just read (one range per agent,
    :func:`per_agent`), where reading agent after agent read the first agents' whole ranges from
    disk besides (team of 20 + failed at 10 M calls: 97 -> 50 ms p95 with the pages on disk).  For
    what shows a count only: an export's or a bulk action's limit needs the exact one."""
    if any((f.caller, f.callee, f.call_id, f.keyword)):
        return None
    if scope is not None and scope.kind not in ("all", "agents"):
        return None
    team = scope is not None and scope.kind == "agents"
    if f.status and f.status not in STATUSES:
        raise ValueError(f"unknown status {f.status!r} (known: {', '.join(STATUSES)})")
    ranged = _bounded_range(f, team)
    if ranged is None:
        return None
    table, lead, carried = ranged
    tested = [(column, value) for column, value in (("status", f.status), ("consent_decision", f.consent),
                                                    ("queue", f.queue)) if value and column in carried]
    if not tested:
        return None
    agents = sorted(scope.agents) if team and scope is not None and not f.agent else []
    if len(agents) > MAX_MERGED_AGENTS:
        # too many for one range each: agent after agent in the index's order (a newest-first merge
        # would read every entry of the range before the first)
        return _bounded_read(f, now, tz, table, lead, carried, tested, read_cap, scope, ordered=False)
    if len(agents) > 1:
        branches, params = [], []
        for agent in agents:
            sql, branch = _bounded_read(f, now, tz, table, [("agent", agent)], carried, tested,
                                        range_cap(read_cap, len(agents)), None)
            branches.append(sql)
            params.extend(branch)
        return " UNION ALL ".join(branches), params
    return _bounded_read(f, now, tz, table, lead, carried, tested, read_cap, scope if team else None)


def range_cap(read_cap: int, ranges: int) -> int:
    """The entries each of ``ranges`` ranges reads when a count reads at most ``read_cap``."""
    return max(1, int(read_cap) // max(1, ranges))


def _bounded_read(f: CallFilters, now: float, tz: tzinfo | None, table: str,
                  lead: list[tuple[str, str]], carried: tuple[str, ...], tested: list[tuple[str, str]],
                  cap: int, scope: Scope | None, ordered: bool = True) -> tuple[str, list[Any]]:
    """``(matches, entries read)`` of the range ``lead`` (+ the time range, ``scope``) of ``table``,
    ``cap`` entries at most, newest first when ``ordered``."""
    alias = table.split()[-1]
    params: list[Any] = [value for _, value in tested]
    where = [f"{alias}.{column} = ?" for column, _ in lead]
    params.extend(value for _, value in lead)
    _time_clauses(alias, f, now, tz, where, params)
    if scope is not None:
        where.append(scope_clause(scope, params, table=alias) or "1 = 0")
    order = f" ORDER BY {alias}.started_at DESC, {alias}.call_id" if ordered else ""
    columns = ", ".join(f"{alias}.{column}" for column in carried)
    inner = f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)}{order} LIMIT ?"
    params.append(int(cap))
    test = " AND ".join(f"r.{column} = ?" for column, _ in tested)
    return (f"SELECT COALESCE(SUM(CASE WHEN {test} THEN 1 ELSE 0 END), 0), COUNT(*) FROM ({inner}) AS r",
            params)


def bounded_total(rows: list[Any], cap: int, count_cap: int = COUNT_CAP) -> Count:
    """The :class:`Count` of :func:`build_bounded_count`'s rows, each range having read at most
    ``cap`` entries (:func:`range_cap`): exact up to ``count_cap`` when every range was read to
    its end, else the matches counted (at least that many)."""
    matched = sum(int(row[0]) for row in rows)
    complete = all(int(row[1]) < cap for row in rows)
    return Count(min(matched, count_cap), exact=matched <= count_cap and complete,
                 complete=complete or matched > count_cap)


def build_get(call_id: str, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """One call by id, only when it lies in ``scope`` (out of scope reads as absent)."""
    params: list[Any] = [call_id]
    sql = "SELECT calls.* FROM calls WHERE calls.call_id = ?"
    limited = scope_clause(scope, params)
    return (sql + f" AND {limited}" if limited else sql), params
