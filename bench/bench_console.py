"""The operator console at call-center scale: search latency through the service, and audio.

(a) Search: a catalog of N calls (default 1,000,000; ``--calls`` for fewer) loaded by
``bench/console_fill.py`` and cached under ``--work`` (a re-run reuses it), served by the real
service (``pbx_recorder.service.app.build_app``) under uvicorn on a free port of this process.
For each role (admin: every call; supervisor: a team of 12 agents; agent: their own calls) and
each filter family, p50/p95 of ``GET /api/calls`` over real HTTP with the session cookie from
``/api/login``, and the baseline: the same query function (``Catalog.search_page`` with the
same filters and the actor's row scope) called directly in the same run, interleaved sample by
sample, so the ratio shows what the service adds (session lookup, scope, audit rows of number
searches, JSON, HTTP).  The full-number search runs for the roles that may unmask only (for an
agent it is throttled by design: README "Operator service").

(b) Audio: a 1-hour WAV stored encrypted (64 KiB AES-GCM segments) read through
``/api/recordings/{id}/audio``: time to the first byte from the start, and after a seek (Range
from 50 % and 90 %), the whole hour's throughput and the service's peak RSS growth and Python
allocations (tracemalloc) while it streams; baseline: the same audio as a plain file served by
Starlette's ``FileResponse`` from the same process.

    .venv/bin/python bench/bench_console.py [--calls 1000000] [--work DIR] [--samples 20]
        [--engine sqlite|postgresql] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import console_audio, console_fill, console_search  # noqa: E402
from bench.console_http import Client, LiveServer  # noqa: E402
from pbx_recorder.catalog import Catalog  # noqa: E402
from pbx_recorder.config.model import WebConfig  # noqa: E402
from pbx_recorder.service.app import build_app  # noqa: E402
from pbx_recorder.service.context import ServiceContext  # noqa: E402


def open_catalog(a: argparse.Namespace, work: Path) -> tuple[Catalog, float, str, object]:
    """(catalog, its "now", how it came to be, the PostgreSQL server to close or None)."""
    if a.engine == "sqlite":
        catalog, now, how = console_fill.open_filled(work, a.calls, time.time())
        return catalog, now, how, None
    from bench import bench_catalog_pg

    pg = bench_catalog_pg.PgServer(work, a.pg_url)
    now = time.time()
    key_pair = console_fill.keys(work)
    catalog = Catalog(pg.fresh("console"), clock=lambda: now, numbers=console_fill.numbers_for(key_pair))
    rate = console_fill.fill(catalog, key_pair, a.calls, now)
    bench_catalog_pg.analyze(catalog)
    return catalog, now, f"loaded {a.calls:,} calls into PostgreSQL at {rate:,.0f} calls/s, ANALYZE", pg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--work", default="bench-work", help="where the filled catalog is cached (reused)")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--pg-url", help="PostgreSQL database to use (default: a private cluster)")
    ap.add_argument("--skip-audio", action="store_true")
    a = ap.parse_args()
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    catalog, now, how, pg = open_catalog(a, work)
    print(f"{a.engine}: {how} ({time.perf_counter() - t0:,.0f} s); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (compare runs only with the load in view)")
    console_fill.accounts(catalog, now)
    hour = console_audio.prepare(work, catalog, now) if not a.skip_audio else None
    ctx = ServiceContext(catalog, {"hot": hour.tier} if hour else {}, hour.keyring if hour else None,
                         web=WebConfig(), hasher=console_fill.CHEAP, clock=lambda: now)
    server = LiveServer(build_app(ctx))
    try:
        clients = {}
        for name in console_fill.USERS:
            clients[name] = Client(server.port)
            clients[name].login(name, console_fill.PASSWORD)
        console_search.run(catalog, ctx, clients, now, a.samples)
        if hour is not None:
            console_audio.run(hour, clients["bench-admin"])
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        server.close()
        catalog.close()
        if pg is not None:
            pg.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
