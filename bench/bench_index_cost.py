"""What the caller's blind indexes cost the bulk write path at scale, laid out as schema 14 had them
(two: the full number's and the last 4 digits') or as schema 15 has them (one: the last 4 digits'
carrying the full number's), and what each layout costs the searches (SQLite, in a kept bench
catalog).

The write path is not flat between an empty catalog and a large one for batched writes (group
commit, the bulk path): a batch of calls shares the index pages it dirties while an index is
small, and once an index keyed by a value in no order (the blind indexes of a number: the full
number's, 2 million callers here, and the last 4 digits', 10,000 values) has many more leaf pages
than a batch has calls, every call dirties a page of its own in each such index (written to the
WAL, then again by the checkpoint).

Measured here, on the catalog of a kept ``bench_catalog.py --keep DIR`` run, first with the
layout it has, then with the other one (the catalog's caller indexes dropped and the other
layout's made), then the catalog is put back (the other layout dropped, its own made again from
their own SQL; it keeps the calls written here):

1. the bulk path's calls/s (wall) and calls per CPU second;
2. the full-number and last-4 searches (first page of 50, newest first, and the count) of 20
   sampled callers, with their plans;
3. the bytes a call of the layout's indexes.

    .venv/bin/python bench/bench_index_cost.py DIR [--calls 20000] [--batch 100,1000]

Nothing else may use the catalog while this runs (it drops indexes the searches use).  At 10 M
calls each index takes minutes to make.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import catalog_resume  # noqa: E402
from bench.bench_catalog import Bench  # noqa: E402
from bench.bench_catalog_writes import pct, timed  # noqa: E402
from bench.catalog_data import CallGenerator  # noqa: E402
from pbx_recorder.catalog import Catalog  # noqa: E402

#: the caller side's indexes of each layout, and the SQL a full-number search has with it
TWO = {"calls_caller_bi": "CREATE INDEX calls_caller_bi ON calls(caller_bi, started_at DESC, call_id)",
       "calls_caller_bi4": "CREATE INDEX calls_caller_bi4 ON calls(caller_bi4, started_at DESC, call_id)"}
ONE = {"calls_caller_number": "CREATE INDEX calls_caller_number ON calls(caller_bi4, started_at DESC, "
                              "call_id, caller_bi)"}
LAYOUTS = {"schema 14, two indexes": (TWO, "caller_bi = ?"),
           "schema 15, one index": (ONE, "caller_bi4 = ? AND caller_bi = ?")}
PAGE = "SELECT call_id, started_at FROM calls WHERE {where} ORDER BY started_at DESC, call_id LIMIT 50"
COUNT = "SELECT COUNT(*) FROM calls WHERE {where}"


def rate(bench: Bench, catalog: Catalog, gen: CallGenerator, first: int, calls: int,
         batch: int) -> tuple[float, float]:
    """(calls/s of writing, calls per CPU second) of ``calls`` new calls in batches of ``batch``,
    started after the kept run's ``now`` (new calls, as they arrive)."""
    done, wall, cpu = 0, 0.0, 0.0
    while done < calls:
        made = [gen.one(first + done + k, bench.now + 60 + (first + done + k) * 0.01) for k in range(batch)]
        t0, c0 = time.perf_counter(), time.process_time()
        catalog.write_calls(((g.call, [g.recording]) for g in made), after_store=bench.hooks())
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        done += batch
    return done / wall, done / max(cpu, 1e-9)


def searches(conn: Any, where: str, params: list[tuple[str, ...]]) -> str:
    """p50/p95 (ms) of the first page and of the count over ``params``, and the page's plan."""
    page = [timed(lambda p=p: conn.execute(PAGE.format(where=where), p).fetchall()) for p in params]
    count = [timed(lambda p=p: conn.execute(COUNT.format(where=where), p).fetchone()) for p in params]
    plan = " / ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + PAGE.format(where=where),
                                                        params[0]))
    return (f"page p50 {pct(page, 50):7.2f} p95 {pct(page, 95):7.2f} ms, count p50 {pct(count, 50):7.2f} "
            f"p95 {pct(count, 95):7.2f} ms  [{plan}]")


def index_bytes(conn: Any, names: tuple[str, ...], calls: int) -> float:
    marks = ",".join("?" * len(names))
    total = conn.execute(f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})", names).fetchone()[0]
    return float(total or 0) / max(1, calls)


def measure(bench: Bench, catalog: Catalog, conn: Any, layout: str, gen: CallGenerator, first: int,
            a: argparse.Namespace, numbers: list[str]) -> dict[int, tuple[float, float]]:
    """Writes (per batch size), searches and index bytes with ``layout`` in place."""
    index = catalog.numbers.index  # type: ignore[union-attr]
    names, full_where = LAYOUTS[layout]
    full_params = [(index.last4(n), index.full(n)) if "caller_bi4" in full_where else (index.full(n),)
                   for n in numbers]
    got = {}
    for i, b in enumerate(int(x) for x in a.batch.split(",") if x):
        got[b] = rate(bench, catalog, gen, first + i * a.calls, a.calls, b)
        print(f"  {layout}, bulk batch {b:5}: {got[b][0]:8,.0f} calls/s {got[b][1]:8,.0f} per CPU s")
    print(f"  {layout}, full number: " + searches(conn, full_where, full_params))
    last4s = [(index.last4(n),) for n in numbers]
    print(f"  {layout}, last 4:      " + searches(conn, "caller_bi4 = ?", last4s))
    calls = int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
    print(f"  {layout}: {index_bytes(conn, tuple(names), calls):,.0f} B a call in {', '.join(names)}")
    return got


def switch(conn: Any, drop: dict[str, str], make: dict[str, str]) -> float:
    t0 = time.perf_counter()
    for name in drop:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    for name, sql in make.items():
        if conn.execute("SELECT 1 FROM sqlite_schema WHERE name = ?", (name,)).fetchone() is None:
            conn.execute(sql)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", help="a bench_catalog.py --keep directory")
    ap.add_argument("--calls", type=int, default=20_000, help="calls written per measure")
    ap.add_argument("--batch", default="100,1000")
    a = ap.parse_args()
    root = Path(a.dir)
    state = json.loads((root / "state.json").read_text())
    kept = catalog_resume.open_state(root, state["calls"], state["batch"], time.time())
    bench = Bench(root, state["calls"], state["batch"], ["sqlite"], None, kept)  # (migrated on open)
    catalog = bench.catalogs["sqlite"]
    conn = catalog._conn()
    have = {r[0]: r[1] for r in conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'index' "
                                            "AND tbl_name = 'calls'")}
    own = next((name for name, (idx, _) in LAYOUTS.items() if set(idx) <= set(have)), None)
    if own is None:
        ap.error(f"{root / 'catalog.db'} has neither layout's caller indexes")
    other = next(name for name in LAYOUTS if name != own)
    own_sql = {name: have[name] for name in LAYOUTS[own][0]}  # put back as they were made
    picked = random.Random(5).sample(bench.samples, min(20, len(bench.samples)))
    numbers = [g.call["caller_num"] for g in picked]
    if not numbers:
        ap.error(f"no samples kept in {root}")
    calls = int(conn.execute("SELECT MAX(rowid) FROM calls").fetchone()[0] or 0)
    # ids past anything a bench run writes (bench_catalog_writes uses 10**9 + ...)
    gen, first = CallGenerator(bench.n, bench.now, seed=11), 3 * 10**9 + int(time.time()) % 10**6 * 10**3
    print(f"catalog {root / 'catalog.db'}: about {calls:,} calls, {own}; {a.calls:,} calls written per "
          f"measure; {len(numbers)} sampled callers")
    before = measure(bench, catalog, conn, own, gen, first, a, numbers)
    first += 10 * a.calls
    try:
        print(f"  {other} made in {switch(conn, own_sql, LAYOUTS[other][0]):,.0f} s")
        after = measure(bench, catalog, conn, other, gen, first, a, numbers)
        for b, (wall, cpu) in after.items():
            print(f"  {other} against {own}, batch {b}: {wall / before[b][0]:.2f}x calls/s, "
                  f"{cpu / before[b][1]:.2f}x per CPU s")
    finally:
        print(f"  the catalog put back ({own}) in {switch(conn, LAYOUTS[other][0], own_sql):,.0f} s")
        catalog.close()


if __name__ == "__main__":
    main()
