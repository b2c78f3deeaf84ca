"""The resyncs the framing guard asks for are paced: a caller decides when they are asked (each
cut pair, each forged block without a Timestamp), so repeated asks must not become repeated
CoreShowChannels + Getvar storms; and an ask is never lost, only coalesced."""

from __future__ import annotations

import asyncio

from ami.resync_pacer import ResyncPacer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pacer(ready: bool = True, interval: float = 0.2, fail: int = 0) -> tuple[ResyncPacer, list[float]]:
    runs: list[float] = []
    left = [fail]

    async def run() -> None:
        p.covered()
        # the moment the pacer started this run (what it spaces): a busy host may switch away
        # between that moment and this line, so the loop's clock here would shorten the gap
        runs.append(p._last if p._last is not None else asyncio.get_running_loop().time())
        if left[0]:
            left[0] -= 1
            raise RuntimeError("CoreShowChannels failed")

    state = {"ready": ready}
    p = ResyncPacer(run, lambda: state["ready"], interval=interval)
    p.state = state  # type: ignore[attr-defined]
    return p, runs


async def test_asks_within_the_interval_are_coalesced_into_one_later_run() -> None:
    p, runs = pacer(interval=0.2)
    for _ in range(50):  # a caller driving cuts / forged blocks
        p.ask()
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert len(runs) == 1  # the first ask at once, the 49 others pending as one
    assert p.wanted and p.coalesced >= 48
    await asyncio.sleep(0.3)
    assert len(runs) == 2 and not p.wanted  # the coalesced one ran, after the interval
    assert runs[1] - runs[0] >= 0.19
    await asyncio.sleep(0.3)
    assert len(runs) == 2  # nothing asked since: nothing run


async def test_an_ask_while_disconnected_is_covered_by_the_reconnects_resync() -> None:
    p, runs = pacer(ready=False)
    p.ask()
    await asyncio.sleep(0.01)
    assert runs == [] and p.wanted  # not lost: still wanted
    p.covered()  # the (re)connect's resync starts
    assert not p.wanted


async def test_an_ask_during_a_running_resync_runs_once_more() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    runs = []

    async def run() -> None:
        p.covered()
        runs.append(1)
        started.set()
        await release.wait()

    p = ResyncPacer(run, lambda: True, interval=0.05)
    p.ask()
    await started.wait()
    p.ask()  # genuine events may have been dropped after the list was read: needs another
    p.ask()
    release.set()
    await asyncio.sleep(0.2)
    assert len(runs) == 2 and not p.wanted


async def test_a_failed_resync_is_asked_again() -> None:
    p, runs = pacer(interval=0.05, fail=1)
    p.ask()
    await asyncio.sleep(0.2)
    assert len(runs) == 2 and not p.wanted


def test_delay_is_the_rest_of_the_interval() -> None:
    clock = Clock()

    async def run() -> None:
        return None

    p = ResyncPacer(run, lambda: False, interval=30.0, clock=clock)
    assert p.delay() == 0.0
    p._last = clock.now
    clock.now += 10
    assert p.delay() == 20.0
