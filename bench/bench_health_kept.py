"""The health page's recordings figures on a kept ``bench_catalog.py`` catalog (10 M calls).

``GET /api/health`` (and the console's health page) counts the recordings per state. It did so
with ``SELECT state, COUNT(*) FROM recordings GROUP BY state``: every entry of the state index
read on each request. ``api_health.recordings`` now finds the states by one index seek each and
counts each inside its own range up to ``STATE_COUNT_CAP``. Both, in the same run, from a cold
page cache (dropped first: root) and warm:

    .venv/bin/python -m bench.bench_health_kept --keep DIR [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

from pbx_recorder.service import api_health


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def timed(conn: sqlite3.Connection, how: str) -> tuple[float, Any]:
    t0 = time.perf_counter()
    if how == "group by":
        got: Any = dict(conn.execute("SELECT state, COUNT(*) FROM recordings GROUP BY state").fetchall())
    else:
        got = api_health.recordings(conn)
    return (time.perf_counter() - t0) * 1000, got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", metavar="DIR", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    db = Path(a.keep) / "catalog.db"
    print(f"catalog {db}: {db.stat().st_size / 2**30:,.1f} GiB; load average {os.getloadavg()[0]:.1f}")
    for how in ("group by", "per state, capped"):
        cold = drop_caches()
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        first, got = timed(conn, how)
        warm = [timed(conn, how)[0] for _ in range(a.repeat)]
        conn.close()
        print(f"{how:20} {'cold' if cold else 'first (cache not dropped)'} {first:9.1f} ms   warm median "
              f"{statistics.median(warm):8.1f} ms   {got}")


if __name__ == "__main__":
    main()
