"""Whole-catalog operations at scale: time and peak memory, at N calls and at N/10.

Fills a catalog of N calls (default 200,000; ``--calls``) and one of N/10 through
``catalog_fill`` (each call with a stored recording, its signed-manifest-shaped JSON and its
chained ``stored`` ledger entry), then runs each operation in a fresh child process and prints
its wall time and its peak RSS above the child's start (``ru_maxrss``).  The baselines, measured
in the same run: the same operation at N/10 (a streamed operation takes ~10x the time and the
same memory; erasure and hold find the same 200 calls in both), and what the code before
streaming did first -- ``fetchall`` of every recordings row -- at N.

    .venv/bin/python bench/bench_catalog_ops.py [--calls 200000] [--jobs 4] [--batch 500]
        [--ops verify,...] [--no-fetchall]

The ledger gets an index on ``recording_id`` as schema migration 5 adds (``verify`` reads a
batch's entries through it); objects are answered by ``catalog_fill.StatTier`` (present, with
the server's checksum, as S3 with ChecksumSHA256 answers), so the catalog side is measured.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

NOW = 1_800_000_000.0
MATCHES = 200  # calls of the erased subject, and of the held one, in each catalog
OPS = ("verify", "verify --since-last", "ledger verify", "retention report", "migrate --dry-run",
       "retention report (a day due)", "migrate --dry-run (a day due)", "hold add --caller", "erase --caller")
#: the steady state of a daily job: evaluated at a time when only the recordings of about one day
#: of the fill's 300 (``catalog_fill``: created 100..400 days before NOW, retained 250 days, cold
#: after 30) are due -- what a nightly ``retention apply`` / ``recordings migrate`` finds
A_DAY_DUE_AT = {"retention report (a day due)": NOW - 149 * 86400.0,
                "migrate --dry-run (a day due)": NOW - 370 * 86400.0}


def _ledger_index(conn: sqlite3.Connection) -> None:
    for (name,) in conn.execute("SELECT name FROM pragma_index_list('ledger')"):
        if [r[2] for r in conn.execute(f"PRAGMA index_info({name})")] == ["recording_id"]:
            return
    conn.execute("CREATE INDEX bench_ledger_recording ON ledger(recording_id)")


def make(db: Path, n: int) -> float:
    from catalog_fill import fill

    from pbx_recorder.lifecycle.journal import open_catalog

    t0 = time.perf_counter()
    conn = open_catalog(db)
    every = max(3, n // MATCHES)  # the same number of the subject's calls at every size
    fill(conn, n, now=NOW, subject_every=every, held_every=every)
    _ledger_index(conn)
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - t0


def child(op: str, db: Path, jobs: int, batch: int) -> dict[str, float]:
    """Run one operation (in this fresh process) and measure it."""
    from catalog_fill import HELD, SUBJECT, StatTier

    from pbx_recorder.lifecycle.erasure import Eraser
    from pbx_recorder.lifecycle.holds import HoldManager
    from pbx_recorder.lifecycle.journal import open_catalog, rows
    from pbx_recorder.lifecycle.migration import Migrator, Target
    from pbx_recorder.lifecycle.policy import RetentionClass
    from pbx_recorder.lifecycle.retention_jobs import RetentionJob
    from pbx_recorder.recording.ledger_pass import run_ledger_pass
    from pbx_recorder.recording.verify import Verifier, catalog_connection
    from pbx_recorder.recording.verify_state import VerifyState
    from pbx_recorder.recording.verify_stream import PassOptions

    classes = {"standard": RetentionClass("standard", days=250, cold_after_days=30)}
    key = b"k" * 32
    tiers = {"hot": StatTier(), "cold": StatTier("cold")}
    conn = catalog_connection(db) if op in ("verify", "verify --since-last", "ledger verify", "fetchall") \
        else open_catalog(db)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    count = 0
    if op.startswith("verify"):
        state = VerifyState.beside(db)
        report = Verifier(conn, tiers).run(options=PassOptions(batch=batch, jobs=jobs, state=state,
                                                               since_last=op.endswith("last")))
        assert report.ok, report.mismatches[:3]
        count = report.checked
    elif op == "ledger verify":
        result = run_ledger_pass(conn, None)
        assert not result.problems, result.problems[:3]
        count = result.checked
    elif op.startswith("retention report"):
        job = RetentionJob(conn, tiers, classes, HoldManager(conn, tiers, hash_key=key))
        count = sum(1 for _ in job.iter_report(A_DAY_DUE_AT.get(op, NOW), batch=batch))
    elif op.startswith("migrate --dry-run"):
        count = Migrator(conn, tiers, default=Target("hot", "cold"), classes=classes,
                         batch_size=batch).run(A_DAY_DUE_AT.get(op, NOW), dry_run=True).total
    elif op == "hold add --caller":
        count = len(HoldManager(conn, tiers, hash_key=key).add("caller", HELD, "bench", "legal", now=NOW)
                    ["recordings"])
    elif op == "erase --caller":
        holds = HoldManager(conn, tiers, hash_key=key)
        count = Eraser(conn, tiers, hash_key=key, holds=holds).erase(caller=SUBJECT, actor="dpo",
                                                                     now=NOW)["recordings_erased"]
    elif op == "fetchall":
        count = len(rows(conn, "SELECT * FROM recordings"))
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "rss_mb": (peak - start) / 1024, "count": count}


def run_child(op: str, db: Path, jobs: int, batch: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", op, "--db", str(db), "--jobs", str(jobs),
                          "--batch", str(batch)], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--ops", default=",".join(OPS), help="Comma-separated subset of: " + ", ".join(OPS))
    ap.add_argument("--no-fetchall", action="store_true",
                    help="Skip the old fetchall baseline (2.8 KB of memory a row: 28 GB at 10 M calls)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--db", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.db), args.jobs, args.batch)))
        return
    root = Path(tempfile.mkdtemp(prefix="bench-catalog-ops-"))
    try:
        sizes = {"N": args.calls, "N/10": args.calls // 10}
        dbs = {label: root / f"{label.replace('/', '_')}.db" for label in sizes}
        for label, n in sizes.items():
            took = make(dbs[label], n)
            mb = dbs[label].stat().st_size / 1e6
            print(f"filled {n:,} calls ({label}) in {took:.0f} s: {mb:,.0f} MB", flush=True)
        print(f"\n{'operation':29} {'N/10 s':>8} {'N s':>8} {'ratio':>6} {'N/10 MB':>8} {'N MB':>7}"
              "  rows/s at N")
        wanted = [op for op in OPS if op in args.ops.split(",")]
        if "verify --since-last" in wanted and "verify" not in wanted:
            wanted.insert(0, "verify")  # the full pass sets the marks the incremental one starts from
        for op in wanted:
            got = {}
            for label, n in sizes.items():
                if op == "verify --since-last":  # 0.1% new calls since the full pass
                    from catalog_fill import fill

                    from pbx_recorder.lifecycle.journal import open_catalog
                    conn = open_catalog(dbs[label])
                    fill(conn, max(1, n // 1000), now=NOW, start=n)
                    conn.close()
                got[label] = run_child(op, dbs[label], args.jobs, args.batch)
            small, big = got["N/10"], got["N"]
            rate = sizes["N"] / big["seconds"] if big["seconds"] else 0.0
            print(f"{op:29} {small['seconds']:8.2f} {big['seconds']:8.2f} "
                  f"{big['seconds'] / max(small['seconds'], 1e-9):6.1f} {small['rss_mb']:8.1f} "
                  f"{big['rss_mb']:7.1f}  {rate:,.0f}  ({int(big['count']):,} found/checked)", flush=True)
        if args.no_fetchall:
            print("\nbaseline fetchall skipped (--no-fetchall)")
            return
        base = run_child("fetchall", dbs["N"], args.jobs, args.batch)
        print(f"\nbaseline, the old first step at N: fetchall of every recordings row: "
              f"{base['seconds']:.2f} s, {base['rss_mb']:.1f} MB ({int(base['count']):,} rows)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
