"""What some of the catalog's indexes cost the bulk write path, in a kept bench catalog (SQLite).

The write path is not flat between an empty catalog and a large one for batched writes (group
commit, the bulk path): a batch of calls shares the index pages it dirties while an index is
small, and once an index keyed by a value in no order (the blind indexes of the caller's and the
callee's full number and last 4 digits) has many more leaf pages than a batch has calls, every
call dirties a page of its own in each such index (written to the WAL, then again by the
checkpoint).  This measures it: the bulk path's calls/s (wall) and calls per CPU second into the
catalog of a kept ``bench_catalog.py --keep DIR`` run as it is, then with the named indexes
dropped, then the indexes are made again from their own SQL (the catalog is left as it was,
plus the calls written here).  The baseline is the same catalog with every index, measured in
the same run just before.

    .venv/bin/python bench/bench_index_cost.py DIR [--calls 20000] [--batch 100,1000]
        [--drop calls_caller_bi,calls_callee_bi]

Nothing else may use the catalog while this runs (it drops indexes the searches use).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import catalog_resume  # noqa: E402
from bench.bench_catalog import Bench  # noqa: E402
from bench.catalog_data import CallGenerator  # noqa: E402
from pbx_recorder.catalog import Catalog  # noqa: E402

DEFAULT_DROP = "calls_caller_bi,calls_callee_bi"


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", help="a bench_catalog.py --keep directory")
    ap.add_argument("--calls", type=int, default=20_000, help="calls written per measure")
    ap.add_argument("--batch", default="100,1000")
    ap.add_argument("--drop", default=DEFAULT_DROP, help="comma-separated index names")
    a = ap.parse_args()
    root = Path(a.dir)
    state = json.loads((root / "state.json").read_text())
    kept = catalog_resume.open_state(root, state["calls"], state["batch"], time.time())
    bench = Bench(root, state["calls"], state["batch"], ["sqlite"], None, kept)
    catalog = bench.catalogs["sqlite"]
    conn = catalog._conn()
    drop = [d for d in a.drop.split(",") if d]
    sql = {name: s for name, s in conn.execute(
        f"SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND name IN ({','.join('?' * len(drop))})",
        drop)}
    missing = sorted(set(drop) - set(sql))
    if missing:
        ap.error(f"no such index in {root / 'catalog.db'}: {', '.join(missing)}")
    have = int(conn.execute("SELECT MAX(rowid) FROM calls").fetchone()[0] or 0)
    # ids past anything a bench run writes (bench_catalog_writes uses 10**9 + ...)
    gen, first = CallGenerator(bench.n, bench.now, seed=11), 3 * 10**9 + int(time.time()) % 10**6 * 10**3
    batches = [int(b) for b in a.batch.split(",") if b]
    print(f"catalog {root / 'catalog.db'}: about {have:,} calls; {a.calls:,} calls per measure")
    before = {}
    for b in batches:
        before[b] = rate(bench, catalog, gen, first, a.calls, b)
        first += a.calls
        print(f"  every index, batch {b:5}: {before[b][0]:8,.0f} calls/s {before[b][1]:8,.0f} per CPU s")
    try:
        for name in drop:
            conn.execute(f"DROP INDEX {name}")
        for b in batches:
            wall, cpu = rate(bench, catalog, gen, first, a.calls, b)
            first += a.calls
            print(f"  without {', '.join(drop)}, batch {b:5}: {wall:8,.0f} calls/s {cpu:8,.0f} per CPU s "
                  f"({wall / before[b][0]:.2f}x, {cpu / before[b][1]:.2f}x per CPU s)")
    finally:
        t0 = time.perf_counter()
        for name in drop:
            conn.execute(sql[name])
        print(f"  indexes made again in {time.perf_counter() - t0:,.0f} s")
        catalog.close()


if __name__ == "__main__":
    main()
