"""Call search: filters -> parameterized SQL.  Column names never come from input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from pbx_recorder.catalog.number_protection import BlindIndex
from pbx_recorder.catalog.protected_rows import search_indexes

PRESETS = ("today", "yesterday", "7d", "30d")
STATUSES = ("answered", "no_answer", "busy", "failed")
MAX_LIMIT = 10000


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
    limit: int = 50


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


def _number_clause(column: str, value: str, params: list[Any], blind: BlindIndex | None = None) -> str:
    """``column`` is ``caller_num`` or ``callee_num``.  With the catalog's blind index (schema 6,
    numbers encrypted): the last-4 or full-number index of that side, one equality each, so the
    ``(index, started_at)`` index serves both the lookup and the ORDER BY."""
    if blind is not None:
        side = column.removesuffix("_num")
        digits = _digits(value)
        if not digits:
            raise ValueError(f"search by number needs digits, got {value!r}")
        if len(digits) < 4 and len(digits) == len(value.strip()):
            raise ValueError("search by number takes the last 4 digits or the full number")
        suffix, token = search_indexes(blind, value)
        params.append(token)
        return f"{side}{suffix} = ?"
    digits = _digits(value)
    if 0 < len(digits) <= 4 and len(digits) == len(value.strip()):
        params.append(digits)
        return f"substr({column}, -{len(digits)}) = ?"
    params.extend([value.strip(), digits])
    return f"({column} = ? OR {column} = ?)"


def build_search(f: CallFilters, now: float, tz: tzinfo | None = None, *,
                 blind: BlindIndex | None = None) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    start, end = f.start, f.end
    if f.preset:
        start, end = preset_range(f.preset, now, tz)
    if start is not None:
        where.append("started_at >= ?")
        params.append(start)
    if end is not None:
        where.append("started_at < ?")
        params.append(end)
    if f.status:
        if f.status not in STATUSES:
            raise ValueError(f"unknown status {f.status!r} (known: {', '.join(STATUSES)})")
        where.append("status = ?")
        params.append(f.status)
    if f.caller:
        where.append(_number_clause("caller_num", f.caller, params, blind))
    if f.callee:
        where.append(_number_clause("callee_num", f.callee, params, blind))
    for column, value in (("call_id", f.call_id), ("agent", f.agent), ("queue", f.queue),
                          ("consent_decision", f.consent)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if f.tag:
        where.append("EXISTS (SELECT 1 FROM json_each(calls.tags) WHERE json_each.value = ?)")
        params.append(f.tag)
    sql = "SELECT * FROM calls"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, call_id LIMIT ?"
    params.append(max(1, min(int(f.limit), MAX_LIMIT)))
    return sql, params
