"""Export throughput: the search result as an encrypted CSV / XLSX (rows/s) and recordings as an
encrypted audio archive (MB/s), against baselines measured in the same run: the same rows written
with the ``csv`` module alone (one SQL read, no masking, no encryption) and the same audio copied
file to file.

    .venv/bin/python bench/bench_export.py [--rows 100000] [--recordings 20] [--mb 5]

The exports run the real code (:mod:`pbx_recorder.exports.table_job` and ``audio_job``: keyset pages
from the catalog, masking, formula neutralising, AES-256 ZIP), on a SQLite catalog and a local
tier, without the HTTP layer (a job runs in a thread of the service; its request costs nothing
next to the rows).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

NOW = 1_800_000_000.0
FIELDS = ("call_id", "started_at", "caller_num", "callee_num", "caller_name", "agent", "queue", "status",
          "duration", "tags")


def seed(db: Path, n: int, tier_root: Path, recordings: int, mb: int) -> list[Path]:
    from pbx_recorder.catalog import Catalog, call_tags
    from pbx_recorder.lifecycle.journal import open_catalog
    from storage.local import LocalTier

    Catalog(db, clock=lambda: NOW).close()
    conn = open_catalog(db)
    conn.execute("BEGIN")
    rows = [(f"call-{i:08d}", NOW - 7 * i, f"+86139{i:08d}", "8001", f"Caller {i % 977}", f"agent{i % 50}",
             "answered", "sales", json.dumps(["bulk"]), 30 + i % 300) for i in range(n)]
    conn.executemany("INSERT INTO calls (call_id, started_at, caller_num, callee_num, caller_name, agent, "
                     "status, queue, tags, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    call_tags.copy_all(conn)  # raw rows: their tags copied as the catalog's own writes copy them
    tier = LocalTier("hot", tier_root)
    paths = []
    for i in range(recordings):
        data = hashlib.sha256(str(i).encode()).digest() * (mb * 1024 * 1024 // 32)
        key = f"2027/01/call-{i:08d}/r-{i}.wav"
        sha = hashlib.sha256(data).hexdigest()
        tier.put(key, io.BytesIO(data), sha256=sha)
        conn.execute("INSERT INTO recordings (recording_id, call_id, state, size, sha256, tier, storage_key, "
                     "format, created_at) VALUES (?, ?, 'stored', ?, ?, 'hot', ?, 'wav', ?)",
                     (f"r-{i}", f"call-{i:08d}", len(data), sha, key, NOW))
        paths.append(tier_root / key)
    conn.execute("COMMIT")
    conn.close()
    return paths


def baseline_csv(db: Path, out: Path) -> int:
    from pbx_recorder.lifecycle.journal import open_catalog

    conn = open_catalog(db)
    n = 0
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        for row in conn.execute(f"SELECT {', '.join(FIELDS)} FROM calls ORDER BY started_at DESC, call_id"):
            writer.writerow(row)
            n += 1
    conn.close()
    return n


def export_table(db: Path, out: Path, kind: str) -> int:
    from pbx_recorder.catalog import CallFilters, Catalog
    from pbx_recorder.exports import table_job

    catalog = Catalog(db, clock=lambda: NOW)
    spec = table_job.TableSpec(filters=CallFilters(), scope=None, tz=None, now=NOW, fields=FIELDS,
                               unmask=False,
                               kind=kind)
    with open(out, "wb") as f:
        n = table_job.export(catalog, spec, f, "bench password 1234", out, lambda _: None, f"calls.{kind}")
    catalog.close()
    return n


def export_audio(db: Path, tier_root: Path, out: Path) -> int:
    from pbx_recorder.catalog import Catalog
    from pbx_recorder.exports import audio_job
    from storage.local import LocalTier

    catalog = Catalog(db, clock=lambda: NOW)
    tiers = {"hot": LocalTier("hot", tier_root)}
    conn = catalog.connection()
    ids = [r[0] for r in conn.execute("SELECT DISTINCT call_id FROM recordings")]
    pairs = [(catalog.get_call(c), r) for c in ids for r in catalog.recordings_for_call(c)]
    who = audio_job.Who("bench", "admin", False, lambda rec: "")
    ready, pending = audio_job.plan(pairs, tiers, who)  # type: ignore[arg-type]
    with open(out, "wb") as f:
        done, _ = audio_job.export(ready, pending, tiers, None, f, "bench password 1234", lambda _: None, {})
    catalog.close()
    return done


CPU: dict[str, float] = {}


def timed(fn, *args):  # type: ignore[no-untyped-def]
    """(result, wall seconds); the CPU seconds of this process go to CPU[fn name] (on a shared
    machine the CPU time says more than the wall time)."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    CPU[getattr(fn, "__name__", "?")] = time.process_time() - c0
    return result, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--mb", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        root = Path(tmp)
        db = root / "catalog.db"
        audio = seed(db, args.rows, root / "hot", args.recordings, args.mb)
        n, t_base = timed(baseline_csv, db, root / "plain.csv")
        c_base = CPU["baseline_csv"]
        print(f"csv module alone       {n:>9} rows  {t_base:7.2f} s  {n / t_base:>10,.0f} rows/s"
              f"  CPU {c_base:.2f} s")
        for kind in ("csv", "xlsx"):
            m, t = timed(export_table, db, root / f"export-{kind}.zip", kind)
            assert m == n, (m, n)
            c = CPU["export_table"]
            print(f"export {kind:<4} (AES ZIP)  {m:>9} rows  {t:7.2f} s  {m / t:>10,.0f} rows/s"
                  f"  ratio to csv alone {t_base / t:.2f}; CPU {c:.2f} s, ratio {c_base / c:.2f}")

        def copy() -> int:
            size = 0
            for i, p in enumerate(audio):
                with open(p, "rb") as src, open(root / f"copy-{i}.wav", "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                size += p.stat().st_size
            return size

        size, t_copy = timed(copy)
        mb = size / 2**20
        c_copy = CPU["copy"]
        print(f"audio file copy        {mb:>9.0f} MB    {t_copy:7.2f} s  {mb / t_copy:>10.1f} MB/s"
              f"  CPU {c_copy:.2f} s")
        done, t_audio = timed(export_audio, db, root / "hot", root / "audio.zip")
        assert done == size
        c_audio = CPU["export_audio"]
        print(f"audio export (AES ZIP) {mb:>9.0f} MB    {t_audio:7.2f} s  {mb / t_audio:>10.1f} MB/s"
              f"  ratio to copy {t_copy / t_audio:.2f}; CPU {c_audio:.2f} s"
              f" ({mb / c_audio:.0f} MB per CPU s)")


if __name__ == "__main__":
    main()
