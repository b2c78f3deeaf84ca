"""The catalog bench's searching process (``bench_catalog_writes.search_loop``): paced at a rate it
never searches faster than that rate; unpaced it searches one after the other."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.bench_catalog_writes import search_loop  # noqa: E402
from pbx_recorder.catalog import CallFilters, Catalog  # noqa: E402


def _searches(path: Path, rate: float, seconds: float) -> tuple[int, float]:
    stop, results = threading.Event(), queue.Queue()  # type: ignore[var-annotated]
    keys = (os.urandom(32), os.urandom(32))
    args = (str(path), [CallFilters(preset="7d"), CallFilters(status="answered")], time.time(), stop, results,
            keys, rate)
    worker = threading.Thread(target=search_loop, args=args)
    t0 = time.perf_counter()
    worker.start()
    time.sleep(seconds)
    stop.set()
    worker.join(30)
    done = results.get(timeout=5)
    assert all(isinstance(at, float) and ms >= 0 for at, ms in done)  # (end time, latency in ms)
    return len(done), time.perf_counter() - t0


def test_a_paced_searcher_keeps_to_its_rate_and_an_unpaced_one_does_not_wait(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    Catalog(path).close()
    paced, elapsed = _searches(path, 10.0, 1.0)
    assert 1 <= paced <= 10.0 * elapsed + 1  # each search waits for its time, none is made up
    unpaced, _ = _searches(path, 0.0, 1.0)
    assert unpaced > paced  # an empty catalog answers in well under 10 ms
