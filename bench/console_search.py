"""Part (a) of bench_console.py: every filter family of the console's search, per role, through
``GET /api/calls`` against ``Catalog.search_page`` called directly (the baseline), interleaved."""

from __future__ import annotations

import random
import time
import zlib
from typing import Any
from urllib.parse import urlencode

from bench import console_fill
from bench.catalog_data import AGENTS, QUEUES
from pbx_recorder.catalog import CallFilters, Catalog, engine
from pbx_recorder.catalog.queries import (
    COUNT_READ_CAP,
    Cursor,
    build_count,
    build_search,
    encode_cursor,
    preset_range,
)
from pbx_recorder.catalog.scopes import Scope, scope_clause
from pbx_recorder.service.accounts import Accounts
from pbx_recorder.service.roles import may

LIMIT = 50  # the service's default page
POOL = 400  # calls of each scope drawn to take filter values from


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _pool(catalog: Catalog, scope: Scope, rnd: random.Random) -> list[dict[str, Any]]:
    """Calls in ``scope``, opened (numbers in clear), to draw filter values from."""
    conn = catalog._conn()
    params: list[Any] = []
    where = scope_clause(scope, params)
    if where:
        ids = [r[0] for r in conn.execute(f"SELECT call_id FROM calls WHERE {where}", params).fetchall()]
        ids = rnd.sample(ids, min(POOL, len(ids)))
    else:
        top = int(conn.execute("SELECT MAX(rowid) FROM calls").fetchone()[0])
        ids = [r[0] for r in conn.execute(
            f"SELECT call_id FROM calls WHERE rowid IN ({','.join('?' * POOL)})",
            [rnd.randint(1, top) for _ in range(POOL)]).fetchall()]
    calls = [catalog.get_call(i) for i in ids]
    return [c for c in calls if c and c.get("started_at") and c.get("caller_num")]


def _deep(catalog: Catalog, scope: Scope, now: float, rnd: random.Random, n: int) -> list[dict[str, str]]:
    """30 days, a cursor up to 10,000 rows down (half way to as deep as a small scope goes)."""
    lo, hi = preset_range("30d", now)
    params: list[Any] = [lo, hi]
    where = scope_clause(scope, params)
    cond = "started_at >= ? AND started_at < ?" + (f" AND {where}" if where else "")
    conn = catalog._conn()
    total = int(conn.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM calls WHERE {cond} LIMIT 10001) x",
                             params).fetchone()[0])
    out = []
    for depth in (rnd.randint(max(0, total // 2 - LIMIT), max(0, total - LIMIT - 1)) for _ in range(n)):
        row = conn.execute(f"SELECT started_at, call_id FROM calls WHERE {cond} "
                           "ORDER BY started_at DESC, call_id LIMIT 1 OFFSET ?", [*params, depth]).fetchone()
        if row is not None:
            out.append({"preset": "30d", "after": encode_cursor(Cursor(row[0], row[1]))})
    return out


def cases(catalog: Catalog, role: str, scope: Scope, agents: list[str], now: float,
          n: int) -> list[tuple[str, list[dict[str, str]]]]:
    rnd = random.Random(zlib.crc32(role.encode()))
    pool = _pool(catalog, scope, rnd)
    picks = [rnd.choice(pool) for _ in range(n)] if pool else []
    out = [
        ("preset 7 days", [{"preset": "7d"}] * n),
        ("status failed", [{"status": "failed"}] * n),
        ("consent refused", [{"consent": "refused"}] * n),
        ("agent", [{"agent": rnd.choice(agents)} for _ in range(n)]),
        ("queue", [{"queue": rnd.choice(QUEUES)} for _ in range(n)]),
        ("tag vip", [{"tag": "vip"}] * n),
        ("last 4 digits", [{"caller": str(c["caller_num"])[-4:]} for c in picks]),
        ("full number", [{"caller": str(c["caller_num"])} for c in picks]
         if may(role, "calls.unmask") else []),
        ("call id", [{"call_id": str(c["call_id"])} for c in picks]),
        ("deep page, 30 days", _deep(catalog, scope, now, rnd, n)),
    ]
    return out


def run(catalog: Catalog, ctx: Any, clients: dict[str, Any], now: float, n: int) -> None:
    accounts = Accounts(catalog.connection(), hasher=console_fill.CHEAP)
    print(f"\nsearch, ms per page of {LIMIT} with its count ({n} samples per cell, one warm-up each; "
          "direct = Catalog.search_page with the same filters and row scope, interleaved with HTTP; "
          "direct CPU = the CPU time this process got for it, which a busy host does not stretch)")
    print(f"{'role':11} {'filter':20} {'direct p50':>10} {'direct p95':>10} {'http p50':>9} {'http p95':>9} "
          f"{'http/direct p95':>15} {'rows':>5} {'direct CPU p95':>14}")
    for name, client in clients.items():
        user = accounts.get(name)
        assert user is not None
        scope = accounts.scope(user)
        agents = sorted(scope.agents) if scope.kind == "agents" else list(AGENTS)
        for family, queries in cases(catalog, user.role, scope, agents, now, n):
            if not queries:
                print(f"{user.role:11} {family:20} {'-':>10} (throttled for this role by design: not run)")
                continue
            direct, cpu, http, rows = [], [], [], 0
            for i, q in enumerate([queries[0], *queries]):
                f = CallFilters(limit=LIMIT, **q)  # type: ignore[arg-type]
                t0, c0 = time.perf_counter(), time.process_time()
                page = catalog.search_page(f, tz=ctx.tz, scope=scope, count_read_cap=COUNT_READ_CAP)
                ms, cpu_ms = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
                took, body = client.get("/api/calls?" + urlencode({**q, "limit": LIMIT}))
                if i:  # the first is the warm-up
                    direct.append(ms)
                    cpu.append(cpu_ms)
                    http.append(took)
                    rows += len(page.rows)
                if body.count(b'"call_id"') != len(page.rows):
                    raise SystemExit(f"{family}: HTTP and direct answers differ")
            print(f"{user.role:11} {family:20} {_pct(direct, 50):10.2f} {_pct(direct, 95):10.2f} "
                  f"{_pct(http, 50):9.2f} {_pct(http, 95):9.2f} "
                  f"{_pct(http, 95) / max(_pct(direct, 95), 1e-6):14.1f}x {rows // len(queries):5} "
                  f"{_pct(cpu, 95):14.2f}")
            if engine.is_postgres(catalog._conn()) and _pct(direct, 95) > SLOW_MS:
                _explain(catalog, CallFilters(limit=LIMIT, **queries[0]), scope, now)  # type: ignore[arg-type]


SLOW_MS = 50.0  #: a PostgreSQL cell slower than this (direct p95) prints its plans


def _explain(catalog: Catalog, f: CallFilters, scope: Scope, now: float) -> None:
    """PostgreSQL's EXPLAIN ANALYZE of the cell's page and count (first value), its top lines."""
    blind = catalog.numbers.index if catalog.numbers is not None else None
    for what, (sql, params) in (("page", build_search(f, now, probe=True, blind=blind, scope=scope)),
                                ("count", build_count(f, now, blind=blind, scope=scope))):
        lines = [str(r[0]) for r in catalog._conn().execute("EXPLAIN ANALYZE " + sql, params).fetchall()]
        keep = [ln for ln in lines if "Scan" in ln or "Sort" in ln or "Join" in ln or "Execution" in ln]
        for line in keep[:8]:
            print(f"{'':11} {what:5} {line.strip()[:150]}")
