"""bench_catalog's write rates while another process searches: the per-call path as the daemon, the
pipeline and the shipper write (one call at a time), the same calls through group commit from
several writer threads (``Catalog.grouped``), and the bulk path (``Catalog.write_calls``), 100 calls
a transaction and 1,000 (as the fill writes them), the latter with the writer signing and with a
helper process signing ahead (``Catalog.enable_sign_ahead``), batch by batch in turns.

Each rate is calls written per second of writing (making up the calls is not counted) and per CPU
second of the writer process (on a shared host it gets what the other processes leave).

The calls written start one after the other after the newest call the catalog holds
(:class:`StartClock`), as a recorder writes calls as they end: every index keyed by time or call id
grows at its newest end, the others (a number's last 4 digits, an agent, a queue ...) at the
newest end of each value's range.  (Until session 32 they started anywhere within the hour before
the bench's fixed ``now``: a kept catalog measured again and again piled each run's calls into that
hour, spread over a thousand leaves of every time-keyed index, which made its rate fall run by run.)

Before the measures the writer warms up (``warmup`` calls, 1,000 a transaction, not counted): a
recorder's writer runs for days, and its page cache then holds the index pages new calls land on
(the newest end of each last-4 value's, agent's ... range: tens of thousands of pages at 10 M
calls).  A writer just started reads them from the disk first: at 10 M calls the first ~40,000
calls ran at 60-85 % of the rate after (session 33).  The warm-up's first and last 10,000 calls
are printed, so the cold start stays in view.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.catalog_data import CallGenerator, Generated
from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.catalog.queries import COUNT_READ_CAP

if TYPE_CHECKING:
    from bench.bench_catalog import Bench


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


class StartClock:
    """Start times of the calls a measure writes: one after the other, ``step`` seconds apart,
    after the newest call ``catalog`` holds (its ``calls_time`` index: one seek), so a kept catalog
    measured again goes on after its last measure's calls."""

    def __init__(self, catalog: Catalog, floor: float, step: float = 0.01) -> None:
        newest = catalog._conn().execute("SELECT MAX(started_at) FROM calls").fetchone()[0]
        self.next, self.step = max(float(newest or 0.0), floor) + 1.0, step

    def __call__(self) -> float:
        started, self.next = self.next, self.next + self.step
        return started


def numbers_for(keys: tuple[bytes, bytes]) -> NumberProtection:
    master, hmac_key = keys
    return NumberProtection(NumberCipher(lambda _key_id: master, "bench"), BlindIndex(hmac_key))


#: writer threads of the group-commit measure (the daemon's writer, the pipeline and the shipper
#: are three; a node under load runs more shipments at once)
WRITERS = 8


def writes_while_searching(bench: Bench, catalog: Catalog, label: str, seconds: float,
                           rate: float = 0.0, warmup: int = 0) -> None:
    """Writes here, an operator's searches in another process (as the console or the CLI runs).

    ``rate`` 0: the other process searches as fast as it can, one search after the other (the
    worst case: it keeps a core busy, hundreds of searches a second); otherwise it searches
    ``rate`` times a second, paced (a console's load: 100 operators each searching every 5 s
    is 20 a second)."""
    # the console's mix: every filter but the last-4 scan over all time (blind indexes: issue 11)
    filters = [f for name, fs, _ in bench.cases() if name != "last 4 digits, all time" for f in fs[:2]]
    ctx = multiprocessing.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    args = (catalog.path, filters, bench.now, stop, results, bench.keys, rate)
    proc = ctx.Process(target=search_loop, args=args)
    proc.start()
    # call ids no earlier run wrote: a kept catalog holds the calls of every earlier measuring run
    # (an id of the same second and number would be refused as a collision)
    run = time.time_ns() // 10**6 % 10**6
    gen, base = CallGenerator(bench.n, bench.now, seed=99), 10**9 + len(label) * 10**7 + run * 10**10
    clock = StartClock(catalog, bench.now)
    try:
        time.sleep(1.0)  # the searcher is up
        cold, warm = warm_up(bench, catalog, gen, clock, base + 5 * 10**6, warmup)
        t_search, since = time.perf_counter(), time.time()
        load0 = os.getloadavg()[0]
        part = seconds / 5
        one, one_cpu = per_call(bench, catalog, gen, clock, base, part)
        grouped, grouped_cpu, per_commit = per_call_grouped(bench, catalog, gen, clock, base + 10**6, part)
        bulk, bulk_cpu = bulk_calls(bench, catalog, gen, clock, base + 2 * 10**6, part)
        # the fill's transactions (the pages a call dirties are shared by ten times the calls),
        # the writer signing and a helper process signing ahead, batch by batch in turns
        paired = bulk_paired(bench, catalog, gen, clock, base + 3 * 10**6, 2 * part)
        load1 = os.getloadavg()[0]
    finally:
        stop.set()
        timed_lat = results.get(timeout=120)
        proc.join()
    lat = [ms for at, ms in timed_lat if at >= since]  # the searches beside the measures, not the warm-up
    searcher = (f"searcher paced at {rate:g}/s" if rate else "searcher as fast as it can")
    part = min(warmup, 10_000)
    warmed = (f"writer warmed up by {warmup:,} calls (1,000 a transaction: the first {part:,} "
              f"{cold:,.0f} calls/s, the last {part:,} {warm:,.0f})" if warmup else "writer not warmed up")
    print(
        f"{label:36} {searcher}   {warmed}   load average {load0:.1f} -> {load1:.1f}   "
        f"per call (one call at a time, as main writes it): {one:8,.0f} calls/s ({one_cpu:,.0f} per CPU s)   "
        f"per call, group commit ({WRITERS} writer threads): {grouped:8,.0f} calls/s "
        f"({grouped_cpu:,.0f} per CPU s, {per_commit:.1f} calls per commit)   "
        f"bulk (batches of 100): {bulk:8,.0f} calls/s ({bulk_cpu:,.0f} per CPU second of the writer)   "
        f"bulk (batches of 1,000): {paired.alone:8,.0f} calls/s ({paired.alone_cpu:,.0f} per CPU s)   "
        f"bulk (batches of 1,000, new calls' tokens and seals and the signatures made ahead by a helper "
        f"process): {paired.ahead:8,.0f} calls/s "
        f"({paired.ahead_cpu:,.0f} per CPU s of the writer, {paired.helper_cpu_ms:.0f} ms of the helper's "
        f"CPU per 1,000 calls; {paired.rounds} batches each way, in turns)   "
        f"concurrent searches: {len(lat):,} ({len(lat) / (time.perf_counter() - t_search):,.1f}/s, "
        f"p50 {pct(lat, 50) if lat else 0:.1f} ms, p95 {pct(lat, 95) if lat else 0:.1f} ms)"
    )


def in_turns(bench: Bench, catalogs: dict[str, Catalog], warmup: int, rounds: int,
             per: int = 5, size: int = 1000, modes: tuple[bool, ...] = ()) -> None:
    """How flat the bulk path is: each catalog's writer warmed up (``warmup`` calls), then
    ``per`` batches of ``size`` calls into each catalog in turns, ``rounds`` times, in this one
    process, so that every catalog sees the same minutes of a host whose speed varies; no searcher.
    ``modes``: each catalog is written in each of these ways in turns too (True: new calls' number
    entries staged, ``catalog.fresh_numbers``; False: straight into the big indexes), the same
    connection and page cache for both; default: the way each catalog was opened.
    Prints each catalog's calls/s and per CPU second, and each one's rate against the first's (in
    the same way)."""
    run = time.time_ns() // 10**6 % 10**6
    ways = modes or (None,)
    writers: dict[str, tuple[CallGenerator, StartClock]] = {}
    next_call: dict[str, int] = {}  # each catalog's next call number, whichever way it is written
    opened: dict[str, bool] = {}
    for i, (label, catalog) in enumerate(catalogs.items()):
        gen, clock = CallGenerator(bench.n, bench.now, seed=99), StartClock(catalog, bench.now)
        base = 10**9 + (20 + i) * 10**7 + run * 10**10
        opened[label] = catalog.fresh.enabled
        warm_up(bench, catalog, gen, clock, base, warmup)
        writers[label], next_call[label] = (gen, clock), base + warmup
    tally = {(label, way): [0.0, 0.0, 0] for label in catalogs for way in ways}  # seconds, CPU s, calls
    for _ in range(rounds):
        for label, catalog in catalogs.items():
            gen, clock = writers[label]
            for way in ways:
                catalog.fresh.enabled = opened[label] if way is None else opened[label] and way
                counts = tally[(label, way)]
                for _k in range(per):
                    batch = [gen.one(next_call[label] + j, clock()) for j in range(size)]
                    next_call[label] += size
                    t0, c0 = time.perf_counter(), time.process_time()
                    catalog.write_calls(((g.call, [g.recording]) for g in batch), after_store=bench.hooks())
                    counts[0] += time.perf_counter() - t0
                    counts[1] += time.process_time() - c0
                    counts[2] += size
            catalog.fresh.enabled = opened[label]  # (back to how it was opened)
    for way in ways:
        first_spent, first_cpu, first_done = tally[(next(iter(catalogs)), way)]
        for label in catalogs:
            spent, cpu, done = tally[(label, way)]
            how = "" if way is None else " [staged]" if opened[label] and way else " [unstaged]"
            print(f"{label + how:36} bulk (batches of {size:,}) in turns, each writer warmed up by "
                  f"{warmup:,} calls: {done / spent:8,.0f} calls/s ({done / max(cpu, 1e-9):,.0f} per CPU s); "
                  f"against the first: {done / spent / (first_done / first_spent):.2f} of the rate, "
                  f"{done / max(cpu, 1e-9) / (first_done / max(first_cpu, 1e-9)):.2f} per CPU s "
                  f"({done:,} calls)")
    for label, catalog in catalogs.items():
        print(f"{label:36} {staging_note(catalog)}")


def staging_note(catalog: Catalog) -> str:
    """How the writer placed new calls' number entries (``catalog.fresh_numbers``)."""
    fresh = catalog.fresh
    if not fresh.enabled:
        return "number entries written straight into the big indexes"
    return (f"number entries staged: {fresh.settles:,} settles of {fresh.settled:,} calls since the "
            f"catalog opened, {fresh.seconds:,.1f} s")


def warm_up(bench: Bench, catalog: Catalog, gen: CallGenerator, clock: StartClock, base: int,
            calls: int, size: int = 1000) -> tuple[float, float]:
    """``calls`` calls through the bulk path (the writer connection's page cache filled as a
    running recorder's is); calls/s of the first and of the last 10,000 (0, 0: none written)."""
    rates: list[float] = []
    for k in range(0, calls, size):
        batch = [gen.one(base + k + j, clock()) for j in range(size)]
        t0 = time.perf_counter()
        catalog.write_calls(((g.call, [g.recording]) for g in batch), after_store=bench.hooks())
        rates.append(time.perf_counter() - t0)
    if not rates:
        return 0.0, 0.0
    part = min(len(rates), 10_000 // size)  # (the same 10,000 as the printed figure)
    return part * size / sum(rates[:part]), part * size / sum(rates[-part:])


def write_one(bench: Bench, catalog: Catalog, g: Generated, hooks: list[Any]) -> None:
    """One call's writes as the daemon (its row) and the shipper (its recording, the hooks, then
    'verified') make them."""
    catalog.upsert_call(g.call)
    rid = str(g.recording.row["recording_id"])
    catalog.upsert_recording({**g.recording.row, "state": "stored"})
    for hook in hooks:
        extra = hook(catalog, rid, g.recording.manifest, g.recording.record)
        if extra:
            catalog.upsert_recording({"recording_id": rid, **extra})
    catalog.mark_state(rid, "verified")


def write_grouped_unit(catalog: Catalog, g: Generated, hooks: list[Any]) -> None:
    """One call's writes as the daemon (its row) and the shipper write them since group commit
    (``Catalog.store_recording``: the row written once when the hooks need none)."""
    catalog.upsert_call(g.call)
    catalog.store_recording(g.recording, hooks)


def per_call(bench: Bench, catalog: Catalog, gen: CallGenerator, clock: StartClock, base: int,
             seconds: float) -> tuple[float, float]:
    """One call at a time, each statement committed on its own (main's per-call path)."""
    done, spent, cpu, hooks = 0, 0.0, 0.0, bench.hooks()
    while spent < seconds:
        g = gen.one(base + done, clock())
        t0, c0 = time.perf_counter(), time.process_time()
        write_one(bench, catalog, g, hooks)
        spent, cpu = spent + time.perf_counter() - t0, cpu + time.process_time() - c0
        done += 1
    return done / spent, done / max(cpu, 1e-9)


def per_call_grouped(bench: Bench, catalog: Catalog, gen: CallGenerator, clock: StartClock, base: int,
                     seconds: float) -> tuple[float, float, float]:
    """The same calls, each one unit of ``Catalog.grouped`` (as the shipper writes it now), from
    WRITERS threads at once:
    (calls/s, calls per CPU second of the process, calls per commit)."""
    made = [gen.one(base + i, clock()) for i in range(WRITERS * 400)]
    queue, lock, hooks = iter(made), threading.Lock(), bench.hooks()
    group = catalog.group_commit
    commits0, units0 = group.commits, group.units
    deadline = time.perf_counter() + seconds

    def writer() -> None:
        while time.perf_counter() < deadline:
            with lock:
                g = next(queue, None)
            if g is None:
                return
            catalog.grouped(lambda g=g: write_grouped_unit(catalog, g, hooks))

    t0, c0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent, cpu = time.perf_counter() - t0, time.process_time() - c0
    done = group.units - units0
    return done / spent, done / max(cpu, 1e-9), done / max(1, group.commits - commits0)


def bulk_calls(bench: Bench, catalog: Catalog, gen: CallGenerator, clock: StartClock, base: int,
               seconds: float, size: int = 100) -> tuple[float, float]:
    """As :func:`per_call`, ``size`` calls per ``write_calls``."""
    done, spent, cpu = 0, 0.0, 0.0
    while spent < seconds:
        batch = [gen.one(base + done + k, clock()) for k in range(size)]
        t0, c0 = time.perf_counter(), time.process_time()
        catalog.write_calls(((g.call, [g.recording]) for g in batch), after_store=bench.hooks())
        spent, cpu = spent + time.perf_counter() - t0, cpu + time.process_time() - c0
        done += len(batch)
    return done / spent, done / max(cpu, 1e-9)


@dataclass
class Paired:
    alone: float  # calls/s, the writer signing
    alone_cpu: float  # calls per CPU second of the writer
    ahead: float  # calls/s, a helper process signing ahead
    ahead_cpu: float
    helper_cpu_ms: float  # the helper's CPU per 1,000 calls
    rounds: int


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bulk_paired(bench: Bench, catalog: Catalog, gen: CallGenerator, clock: StartClock, base: int,
                seconds: float, size: int = 1000) -> Paired:
    """1,000-call ``write_calls`` batches, the writer alone and with a helper process making new
    calls' tokens and seals and the manifests' signatures ahead (``Catalog.enable_sign_ahead``)
    in turns, so both see the same host and the same catalog."""
    catalog.enable_sign_ahead()
    spent, cpu, done = [0.0, 0.0], [0.0, 0.0], [0, 0]
    helper_cpu, k = 0.0, 0
    try:
        while spent[0] + spent[1] < seconds or k % 2:
            ahead = k % 2
            batch = [gen.one(base + k * size + j, clock()) for j in range(size)]
            helper = catalog._sign_ahead
            proc = getattr(helper, "_proc", None)
            h0 = process_cpu_s(proc.pid) if ahead and proc is not None else None
            t0, c0 = time.perf_counter(), time.process_time()
            catalog.write_calls(((g.call, [g.recording]) for g in batch), after_store=bench.hooks(),
                                sign_ahead_now=bool(ahead))
            spent[ahead] += time.perf_counter() - t0
            cpu[ahead] += time.process_time() - c0
            done[ahead] += size
            proc = getattr(catalog._sign_ahead, "_proc", None)
            if ahead and proc is not None and h0 is not None:
                helper_cpu += process_cpu_s(proc.pid) - h0  # (not its start-up: before the first batch)
            k += 1
    finally:
        catalog.enable_sign_ahead(False)
    return Paired(done[0] / spent[0], done[0] / max(cpu[0], 1e-9), done[1] / spent[1],
                  done[1] / max(cpu[1], 1e-9), 1e6 * helper_cpu / max(done[1], 1), k // 2)


def search_loop(path: str, filters: list[CallFilters], now: float, stop: Any, results: Any,
                keys: tuple[bytes, bytes], rate: float = 0.0) -> None:
    """The other process: search round the filters until told to stop (``rate`` > 0: that many
    searches a second, each at its time; more than a second behind, it goes on from now rather
    than catch up in a burst), then report each search's end (``time.time()``, comparable across
    processes) and latency in ms."""
    reader, lat, i = Catalog(path, numbers=numbers_for(keys)), [], 0
    start = time.perf_counter()
    while not stop.is_set():
        if rate:
            due = start + i / rate - time.perf_counter()
            if due > 0:
                stop.wait(due)
                continue
            if due < -1.0:
                start = time.perf_counter() - i / rate  # fell behind: go on from now
        f = filters[i % len(filters)]
        ms = timed(lambda f=f: reader.search_page(f, now=now, count_read_cap=COUNT_READ_CAP))
        lat.append((time.time(), ms))
        i += 1
    reader.close()
    results.put(lat)
