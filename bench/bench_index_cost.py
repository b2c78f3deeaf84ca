"""What the caller's two blind indexes cost the bulk write path at scale, and what one index in
their place would cost the searches (SQLite, in a kept bench catalog).

The write path is not flat between an empty catalog and a large one for batched writes (group
commit, the bulk path): a batch of calls shares the index pages it dirties while an index is
small, and once an index keyed by a value in no order (the blind indexes of a number: the full
number's, 2 million callers here, and the last 4 digits', 10,000 values) has many more leaf pages
than a batch has calls, every call dirties a page of its own in each such index (written to the
WAL, then again by the checkpoint).

Measured here, on the catalog of a kept ``bench_catalog.py --keep DIR`` run (the baseline is the
same catalog as it is, measured in the same run just before):

1. the bulk path's calls/s (wall) and calls per CPU second, every index in place;
2. the full-number and last-4 searches (first page of 50, newest first, and the count) of 20
   sampled callers through today's ``calls_caller_bi`` and ``calls_caller_bi4``;
3. both dropped and one index made in their place, the last 4 digits' index carrying the full
   number's as its last column (``calls(caller_bi4, started_at DESC, call_id, caller_bi)``: a
   full number is then searched as ``caller_bi4 = ? AND caller_bi = ?``, one range of the last
   4 digits filtered inside the index); the same writes and searches again, and the bytes a call
   of the indexes before and after;
4. the catalog put back: the stand-in dropped, the two indexes made again from their own SQL
   (it keeps the calls written here).

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

TODAY = ("calls_caller_bi", "calls_caller_bi4")
STAND_IN = "bench_caller_last4_full"
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", help="a bench_catalog.py --keep directory")
    ap.add_argument("--calls", type=int, default=20_000, help="calls written per measure")
    ap.add_argument("--batch", default="100,1000")
    a = ap.parse_args()
    root = Path(a.dir)
    state = json.loads((root / "state.json").read_text())
    kept = catalog_resume.open_state(root, state["calls"], state["batch"], time.time())
    bench = Bench(root, state["calls"], state["batch"], ["sqlite"], None, kept)
    catalog = bench.catalogs["sqlite"]
    assert catalog.numbers is not None
    conn = catalog._conn()
    sql = dict(conn.execute(f"SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND name IN "
                            f"({','.join('?' * len(TODAY))})", TODAY).fetchall())
    if sorted(sql) != sorted(TODAY):
        ap.error(f"{root / 'catalog.db'} has not both of {', '.join(TODAY)}")
    have = int(conn.execute("SELECT MAX(rowid) FROM calls").fetchone()[0] or 0)
    # ids past anything a bench run writes (bench_catalog_writes uses 10**9 + ...)
    gen, first = CallGenerator(bench.n, bench.now, seed=11), 3 * 10**9 + int(time.time()) % 10**6 * 10**3
    batches = [int(b) for b in a.batch.split(",") if b]
    index = catalog.numbers.index
    picked = random.Random(5).sample(bench.samples, min(20, len(bench.samples)))
    numbers = [g.call["caller_num"] for g in picked]
    if not numbers:
        ap.error(f"no samples kept in {root}")
    print(f"catalog {root / 'catalog.db'}: about {have:,} calls; {a.calls:,} calls written per measure; "
          f"{len(numbers)} sampled callers")
    before = {}
    for b in batches:
        before[b] = rate(bench, catalog, gen, first, a.calls, b)
        first += a.calls
        print(f"  today, bulk batch {b:5}: {before[b][0]:8,.0f} calls/s {before[b][1]:8,.0f} per CPU s")
    fulls = [(index.full(n),) for n in numbers]
    last4s = [(index.last4(n),) for n in numbers]
    pairs = [(index.last4(n), index.full(n)) for n in numbers]
    print("  today, full number:  " + searches(conn, "caller_bi = ?", fulls))
    print("  today, last 4:       " + searches(conn, "caller_bi4 = ?", last4s))
    print(f"  today's two indexes: {index_bytes(conn, TODAY, have):,.0f} B a call")
    try:
        for name in TODAY:
            conn.execute(f"DROP INDEX {name}")
        t0 = time.perf_counter()
        conn.execute(f"CREATE INDEX {STAND_IN} ON calls(caller_bi4, started_at DESC, call_id, caller_bi)")
        print(f"  {STAND_IN} made in {time.perf_counter() - t0:,.0f} s; "
              f"{index_bytes(conn, (STAND_IN,), have):,.0f} B a call")
        for b in batches:
            wall, cpu = rate(bench, catalog, gen, first, a.calls, b)
            first += a.calls
            print(f"  one index, bulk batch {b:5}: {wall:8,.0f} calls/s {cpu:8,.0f} per CPU s "
                  f"({wall / before[b][0]:.2f}x, {cpu / before[b][1]:.2f}x per CPU s)")
        print("  one index, full number: " + searches(conn, "caller_bi4 = ? AND caller_bi = ?", pairs))
        print("  one index, last 4:      " + searches(conn, "caller_bi4 = ?", last4s))
    finally:
        t0 = time.perf_counter()
        conn.execute(f"DROP INDEX IF EXISTS {STAND_IN}")
        for name, made in sql.items():
            if conn.execute("SELECT 1 FROM sqlite_schema WHERE name = ?", (name,)).fetchone() is None:
                conn.execute(made)
        print(f"  the catalog put back (its two indexes made again) in {time.perf_counter() - t0:,.0f} s")
        catalog.close()


if __name__ == "__main__":
    main()
