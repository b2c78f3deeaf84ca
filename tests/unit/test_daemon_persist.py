"""The daemon's live-call persistence (one snapshot per call per SNAPSHOT_DELAY_S, written off the
loop) and its event pump (yields between events, so consent sessions run during a burst)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import SimpleNamespace
from typing import Any

from pbx_recorder import daemon as daemon_mod
from pbx_recorder.constants import STATE_FINALIZED
from pbx_recorder.daemon import Daemon


class Book:
    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.snapshots = 0

    def state(self, call_id: str) -> str:
        return self.states.get(call_id, "")

    def snapshot(self, call_id: str) -> dict[str, Any]:
        self.snapshots += 1
        return {"call_id": call_id, "state": self.states[call_id], "consent_decision": ""}


class Store:
    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.batches = 0

    def write_live_calls(self, changes: Mapping[str, str | None]) -> None:
        self.batches += 1
        for call_id, text in changes.items():
            if text is None:
                self.rows.pop(call_id, None)
            else:
                self.rows[call_id] = text


def _daemon(book: Book, store: Store, ami: Any = None) -> tuple[Daemon, list[str]]:
    finished: list[str] = []
    metrics = SimpleNamespace(call_finished=finished.append, consent=lambda _: None)
    app = SimpleNamespace(callbook=book, catalog=store, metrics=metrics, ami=ami)
    return Daemon(app, install_signals=False), finished  # type: ignore[arg-type]


async def test_a_burst_of_events_makes_one_snapshot_per_call() -> None:
    book, store = Book(), Store()
    daemon, _ = _daemon(book, store)
    for i in range(20):  # 20 events of 2 live calls within one delay
        book.states["c1"] = f"state{i}"
        book.states["c2"] = "recording"
        daemon._persist(["c1", "c2"])
    assert book.snapshots == 0  # nothing snapshotted on the event path
    await asyncio.sleep(daemon_mod.SNAPSHOT_DELAY_S * 3)
    assert await daemon.live.flush()
    assert book.snapshots == 2 and '"state19"' in store.rows["c1"] and "c2" in store.rows


async def test_a_call_that_ends_before_its_snapshot_is_counted_and_not_left_live() -> None:
    book, store = Book(), Store()
    daemon, finished = _daemon(book, store)
    book.states["c1"] = "recording"
    daemon._persist(["c1"])
    book.states["c1"] = STATE_FINALIZED
    daemon._persist(["c1"])
    await asyncio.sleep(daemon_mod.SNAPSHOT_DELAY_S * 3)
    assert await daemon.live.flush()
    assert len(finished) == 1 and "c1" not in store.rows


async def test_the_pump_lets_other_coroutines_run_between_events() -> None:
    seen: list[str] = []

    async def events() -> AsyncIterator[int]:
        for i in range(50):  # ready at once, as an asyncio.Queue that holds a burst
            yield i

    daemon, _ = _daemon(Book(), Store(), SimpleNamespace(events=events))

    async def handle(event: int) -> list[Any]:
        seen.append(f"e{event}")
        return []

    daemon.handle = handle  # type: ignore[method-assign]

    async def session() -> None:
        await asyncio.sleep(0)
        seen.append("session")

    task = asyncio.create_task(session())
    await daemon._pump()
    await task
    assert seen.index("session") < 5  # it ran during the burst, not after all 50 events
