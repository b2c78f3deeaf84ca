"""Reading the audit log for the console: filters, paging by id, rows with numbers masked.

Filters (all optional): ``actor`` (exact), ``action`` (a prefix: ``denied:`` finds every refusal),
``target`` (exact), ``from`` / ``to`` (epoch seconds or ISO time, ``to`` exclusive), ``before`` (an
id: the next page of a newest-first listing) and ``limit`` (1-500).  Paging by id stays an index
range scan however deep the page.  The SQL is portable (``substr``, ``?`` placeholders rewritten
for PostgreSQL).  Details go through :func:`pbx_recorder.audit_trail.scrub` on the way out, so a
number is shown masked even in a row written before the writer masked it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pbx_recorder import audit_trail

MAX_LIMIT = 500
MAX_TEXT = 256


@dataclass(frozen=True)
class AuditFilters:
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None
    before: int | None = None
    limit: int = 100

    def shown(self) -> dict[str, Any]:
        """The filters that are set (for the audit row of the read itself)."""
        return {k: v for k, v in vars(self).items() if v is not None and k != "limit"}


def build(f: AuditFilters, *, after: int | None = None, ascending: bool = False,
          limit: int | None = None) -> tuple[str, list[Any]]:
    """The SELECT for ``f`` (pure); ``after``/``ascending`` serve the export's forward walk."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("actor", f.actor), ("target", f.target)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if f.action:
        where.append("substr(action, 1, ?) = ?")
        params += [len(f.action), f.action]
    if f.since is not None:
        where.append("at >= ?")
        params.append(f.since)
    if f.until is not None:
        where.append("at < ?")
        params.append(f.until)
    if f.before is not None:
        where.append("id < ?")
        params.append(f.before)
    if after is not None:
        where.append("id > ?")
        params.append(after)
    sql = "SELECT id, at, actor, role, action, target, detail FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id " + ("ASC" if ascending else "DESC") + " LIMIT ?"
    params.append(max(1, min(int(limit if limit is not None else f.limit), MAX_LIMIT + 1)))
    return sql, params


def _row(raw: tuple[Any, ...]) -> dict[str, Any]:
    row_id, at, actor, role, action, target, detail_text = raw
    try:
        detail: Any = json.loads(detail_text)
    except (ValueError, TypeError):
        detail = detail_text
    return {"id": int(row_id), "at": float(at), "actor": actor, "role": role, "action": action,
            "target": audit_trail.scrub(target, "target"), "detail": audit_trail.scrub(detail)}


def page(conn: Any, f: AuditFilters) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first: the rows and the ``before`` of the next page (None at the end)."""
    sql, params = build(f, limit=f.limit + 1)
    rows = [_row(r) for r in conn.execute(sql, params).fetchall()]
    more = len(rows) > f.limit
    rows = rows[:f.limit]
    return rows, (rows[-1]["id"] if more and rows else None)


def walk(connect: Any, f: AuditFilters, chunk: int = MAX_LIMIT,
         release: Any = lambda: None) -> Iterator[dict[str, Any]]:
    """Every matching row, oldest first, ``chunk`` rows per query; ``connect()`` before and
    ``release()`` after each chunk (a streamed answer is read from any worker thread)."""
    after = 0
    while True:
        sql, params = build(f, after=after, ascending=True, limit=chunk)
        try:
            rows = [_row(r) for r in connect().execute(sql, params).fetchall()]
        finally:
            release()
        yield from rows
        if len(rows) < chunk:
            return
        after = rows[-1]["id"]


def parse(params: Mapping[str, str], parse_time: Any) -> AuditFilters:
    """Filters from a query string; ``ValueError`` naming the parameter on bad input."""
    texts: dict[str, str | None] = {}
    for name in ("actor", "action", "target"):
        value = params.get(name) or None
        if value is not None and len(value) > MAX_TEXT:
            raise ValueError(f"{name}: too long")
        texts[name] = value
    try:
        before = int(params["before"]) if params.get("before") else None
        limit = int(params.get("limit") or 100)
    except ValueError as exc:
        raise ValueError("before/limit: a number") from exc
    return AuditFilters(since=parse_time(params.get("from"), "from"),
                        until=parse_time(params.get("to"), "to"), before=before,
                        limit=max(1, min(limit, MAX_LIMIT)), **texts)
