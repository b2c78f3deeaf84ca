"""Migration throughput: N recordings (small files) hot -> cold between two local tiers.

Prints recordings/s for the full Migrator path (journal row, copy with hash, read-back
verify, catalog switch + hash-chained ledger entry in one transaction, source delete) and,
as a baseline measured in the same run, a plain copy + unlink of the same number of files.

    .venv/bin/python bench/bench_lifecycle.py [--count 10000] [--size 4096] [--batch 500]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbx_recorder.lifecycle.journal import open_catalog  # noqa: E402
from pbx_recorder.lifecycle.migration import Migrator, Target  # noqa: E402
from pbx_recorder.lifecycle.policy import DAY, RetentionClass  # noqa: E402
from storage.hashing import hash_file  # noqa: E402
from storage.local import LocalTier  # noqa: E402


def populate(root: Path, count: int, size: int) -> tuple[LocalTier, LocalTier, object]:
    hot, cold = LocalTier("hot", root / "hot"), LocalTier("cold", root / "cold")
    conn = open_catalog(root / "catalog.db")
    now = time.time()
    conn.execute("BEGIN")
    for i in range(count):
        call, rid = f"c{i:06d}", f"r{i:06d}"
        key = f"2026/01/{i % 100:02d}/{rid}.wav"
        path = hot.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        conn.execute("INSERT INTO calls (call_id) VALUES (?)", (call,))
        conn.execute("INSERT INTO recordings (recording_id, call_id, state, size, sha256, tier, storage_key,"
                     " retention_class, created_at) VALUES (?,?,'verified',?,?,'hot',?,'standard',?)",
                     (rid, call, size, hash_file(path), key, now - 40 * DAY))
    conn.execute("COMMIT")
    return hot, cold, conn


def baseline(root: Path, count: int, size: int, durable: bool) -> float:
    src, dst = root / f"b-src-{durable}", root / f"b-dst-{durable}"
    src.mkdir()
    dst.mkdir()
    for i in range(count):
        (src / f"{i}.wav").write_bytes(os.urandom(size))
    t0 = time.perf_counter()
    for i in range(count):
        shutil.copyfile(src / f"{i}.wav", dst / f"{i}.wav")
        if durable:
            fd = os.open(dst / f"{i}.wav", os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        (src / f"{i}.wav").unlink()
    return count / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=500)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
        root = Path(tmp)
        hot, cold, conn = populate(root, a.count, a.size)
        m = Migrator(conn, {"hot": hot, "cold": cold}, default=Target("hot", "cold"),  # type: ignore[arg-type]
                     classes={"standard": RetentionClass("standard", 180, 30)}, batch_size=a.batch)
        t0 = time.perf_counter()
        prog = m.run(time.time(), progress=lambda p: print(f"  {p.line()}", file=sys.stderr))
        elapsed = time.perf_counter() - t0
        assert prog.done == a.count and prog.failed == 0, prog.line()
        rate = a.count / elapsed
        base = baseline(root, a.count, a.size, durable=False)
        durable = baseline(root, a.count, a.size, durable=True)
    print(f"migration: {a.count} recordings of {a.size} B in {elapsed:.1f} s = {rate:,.0f} recordings/s")
    print(f"baseline (plain copy + unlink, same files): {base:,.0f} files/s")
    print(f"baseline (copy + fsync + unlink): {durable:,.0f} files/s")
    print(f"ratio: migration = {rate / base:.1%} of plain copy, {rate / durable:.1%} of fsynced copy "
          "(atomic put + dir fsync, read-back verify, 3 catalog transactions per batch, ledger, "
          "source delete)")


if __name__ == "__main__":
    main()
