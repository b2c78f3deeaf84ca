"""Live-call snapshots written off the event loop, batched (pbx_recorder/live_state.py), and the
event-loop lag monitor (pbx_recorder/loop_lag.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pbx_recorder.catalog.repository import Catalog
from pbx_recorder.live_state import LiveStateWriter
from pbx_recorder.loop_lag import LoopLagMonitor, window_stats


class SlowStore:
    """A catalog whose commit takes ``delay_s`` (an fsync on a busy disk), in the writer's thread."""

    def __init__(self, delay_s: float = 0.05, fail_first: int = 0) -> None:
        self.delay_s, self.fail_first = delay_s, fail_first
        self.batches: list[dict[str, str | None]] = []
        self.threads: set[int] = set()

    def write_live_calls(self, changes: Mapping[str, str | None]) -> None:
        self.threads.add(threading.get_ident())
        time.sleep(self.delay_s)
        if self.fail_first:
            self.fail_first -= 1
            raise OSError("disk full")
        self.batches.append(dict(changes))


async def test_writes_leave_the_loop_and_coalesce_into_batches() -> None:
    store = SlowStore(delay_s=0.05)
    writer = LiveStateWriter(store)
    started = time.monotonic()
    for i in range(100):  # 100 changes of 10 calls, as fast as events come
        writer.save(f"c{i % 10}", f"s{i}")
        await asyncio.sleep(0)
    assert time.monotonic() - started < 0.05  # the loop never waited for a commit
    writer.delete("c3")
    assert await writer.flush()
    assert threading.get_ident() not in store.threads
    assert len(store.batches) < 10  # not one commit per change
    final: dict[str, str | None] = {}
    for batch in store.batches:
        final.update(batch)
    assert final["c3"] is None and final["c9"] == "s99" and final["c0"] == "s90"


async def test_a_failed_batch_is_retried_and_newer_changes_win() -> None:
    store = SlowStore(delay_s=0.0, fail_first=1)
    writer = LiveStateWriter(store, retry_s=0.01)
    writer.save("a", "old")
    await asyncio.sleep(0.005)  # the first batch is failing now
    writer.save("a", "new")
    assert await writer.flush(timeout_s=2.0)
    assert store.batches[-1]["a"] == "new" and writer.failures == 1


async def test_flush_is_bounded_when_the_catalog_keeps_failing() -> None:
    store = SlowStore(delay_s=0.0, fail_first=10**6)
    writer = LiveStateWriter(store, retry_s=0.01)
    writer.save("a", "x")
    assert not await writer.flush(timeout_s=0.1)
    assert writer.pending == 1 and store.batches == [] and writer.failures >= 2


async def test_catalog_batch_writes_and_deletes(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    writer = LiveStateWriter(catalog)
    writer.save("call-1", '{"state": "recording"}')
    writer.save("call-2", '{"state": "ringing"}')
    assert await writer.flush()
    writer.delete("call-2")
    assert await writer.flush()
    assert catalog.load_live_calls() == {"call-1": {"state": "recording"}}


def test_without_a_loop_the_write_is_immediate(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    LiveStateWriter(catalog).save("call-1", '{"state": "up"}')
    assert catalog.load_live_calls() == {"call-1": {"state": "up"}}


async def test_loop_lag_monitor_sees_a_blocked_loop() -> None:
    monitor = LoopLagMonitor(interval_s=0.005, report_s=0.2, warn_ms=10.0)
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    await asyncio.sleep(0.02)
    time.sleep(0.12)  # a blocking call on the loop (what an fsync on the loop did)
    await asyncio.sleep(0.25)
    stop.set()
    await task
    assert monitor.worst_ms >= 80.0


def test_window_stats() -> None:
    assert window_stats([]) == (0.0, 0.0)
    values = [float(i) for i in range(1, 101)]
    assert window_stats(values) == (99.0, 100.0)
