"""The catalog at call-center scale: search latency per filter, bytes per call, write rate.

Fills N calls (default 200,000; ``--calls 10000000`` for the issue's figure) through the project's
own bulk write path (``Catalog.write_calls``: call rows sealed, recordings stored with signed
manifests, ledger entries chained -- what the daemon and the shipper write), and the same calls
into Asterisk's default ``cdr`` table with its calldate index, the baseline measured in the same
run.  Then prints p50/p95 of every filter of issue 11 on both (20 values each; the catalog side is
what ``calls search`` runs: the page and its count), the catalog's bytes per call and what they
are made of, and the sustained write rate while another process searches, on an empty catalog
and at N.

``--engine both`` (the default) does all of it on SQLite and on PostgreSQL, the same calls written
through the same path into each (the PostgreSQL parts are in ``bench_catalog_pg.py``): a column
per engine, ANALYZE after the PostgreSQL fill, a note under each filter whose PostgreSQL plan
reads a table sequentially.  Without ``--pg-url`` a private durable cluster is started.

    .venv/bin/python bench/bench_catalog.py [--calls 200000] [--batch 1000] [--write-seconds 10]
        [--search-rate PER_S ...]
        [--engine sqlite|postgresql|both] [--pg-url postgresql://user@host:port/db]
        [--keep DIR [--fill-only]]

``--keep DIR``: the work directory is kept (with PostgreSQL, ``--pg-url`` too: the catalog and the
``cdr`` table stay in that server's schemas ``bench_kept_catalog`` and ``bench_kept_cdr``) and a
run that stops (killed, host restarted) goes on where it stopped when started again with the
same arguments (``catalog_resume.py``): a 10,000,000-call fill can be made in several goes, e.g.
at low priority beside other work, with ``--fill-only``, then measured on a quiet host by one more
run. The fill rate then covers the batches written by that run only.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from bench import bench_catalog_pg, bench_catalog_writes, catalog_resume  # noqa: E402
from bench.bench_catalog_writes import numbers_for, pct, timed  # noqa: E402
from bench.catalog_cases import SAMPLES, TEAM_SEARCHES, Case, filter_cases, teams  # noqa: E402
from bench.catalog_data import CDR_SCHEMA, CallGenerator, Generated, cdr_time  # noqa: E402
from bench.catalog_footprint import sqlite_footprint  # noqa: E402
from pbx_recorder.catalog import CallFilters, Catalog  # noqa: E402
from pbx_recorder.catalog.number_migration import protect  # noqa: E402
from pbx_recorder.catalog.queries import COUNT_READ_CAP, Cursor, encode_cursor, preset_range  # noqa: E402
from pbx_recorder.catalog.scopes import Scope  # noqa: E402
from pbx_recorder.recording.call_seal import CallSealer  # noqa: E402
from pbx_recorder.recording.ledger import StoredLedgerHook  # noqa: E402
from pbx_recorder.recording.signing import SignAfterStore  # noqa: E402

#: the p95 every filter should meet (issue 11); a PostgreSQL filter over it shows what it read
TARGET_MS = 50.0
#: a row of the filter table: (name, ms per engine, cdr ms, the searches as (filter, scope))
Row = tuple[str, dict[str, list[float]], list[float], list[tuple[CallFilters, Scope | None]]]
SHORT = {"sqlite": "sqlite", "postgresql": "pg"}


class Bench:
    def __init__(self, root: Path, n: int, batch: int, engines: list[str],
                 pg: bench_catalog_pg.PgServer | None, kept: catalog_resume.KeptRun | None = None) -> None:
        self.root, self.n, self.batch, self.pg, self.kept = root, n, batch, pg, kept
        self.now = kept.now if kept else time.time()
        self.key = kept.key if kept else Ed25519PrivateKey.generate()
        # (catalog master key, privacy HMAC key)
        self.keys = kept.keys if kept else (os.urandom(32), os.urandom(32))
        self.gen = CallGenerator(n, self.now)
        #: the fill's signatures made ahead by a helper process (``--writer-signs``: by the writer)
        self.sign_ahead_fill = True
        # calls kept to draw filter values from
        self.samples: list[Generated] = catalog_resume.load_samples(root) if kept else []
        self.catalogs = {e: self.open(self.target(e, "catalog")) for e in engines}
        self.catalog = next(iter(self.catalogs.values()))  # draws deep-page cursors (same calls in each)
        self.cdr = sqlite3.connect(root / "cdr.db", isolation_level=None)
        self.cdr.execute("PRAGMA journal_mode=WAL")
        self.cdr.executescript(CDR_SCHEMA)
        self.pg_cdr = bench_catalog_pg.PgCdr(pg.fresh("cdr"), CDR_SCHEMA) if pg is not None else None

    def close(self) -> None:
        """The catalogs and the cdr tables' connections (a run that measures closes them as it ends)."""
        for catalog in self.catalogs.values():
            catalog.close()
        self.cdr.close()
        if self.pg_cdr is not None:
            self.pg_cdr.close()

    def target(self, engine: str, name: str) -> str:
        """Where a new catalog goes: a file here, or a fresh schema on the PostgreSQL server."""
        if engine == "postgresql":
            assert self.pg is not None
            return self.pg.fresh(name)
        path = self.root / f"{name}.db"
        if self.kept and name == "empty":  # a kept directory's earlier measuring run wrote there
            for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                stale.unlink(missing_ok=True)
        return str(path)

    #: new calls' number entries staged in the fresh indexes and settled in batches, as the recorder
    #: writes them (``--unstaged``: straight into the big indexes, as before schema 25: the baseline)
    staged = True

    def open(self, target: str) -> Catalog:
        """As the recorder opens it with encryption on: numbers sealed, found by blind index."""
        numbers = numbers_for(self.keys)  # as app.py: the seal covers the numbers in clear
        catalog = Catalog(target, sealer=CallSealer(self.key, reveal=numbers.open_call), numbers=numbers)
        catalog.fresh.enabled = catalog.fresh.enabled and self.staged
        protect(catalog._conn(), numbers_for(self.keys))  # marks a new catalog as fully protected
        return catalog

    def hooks(self) -> list[Any]:
        return [SignAfterStore(self.key), StoredLedgerHook()]

    def writes_while_searching(self, catalog: Catalog, label: str, seconds: float, rate: float = 0.0,
                               warmup: int = 0) -> None:
        bench_catalog_writes.writes_while_searching(self, catalog, label, seconds, rate, warmup)

    # -- fill -------------------------------------------------------------------------
    def fill(self) -> tuple[dict[str, float], float]:
        """The same batches into every engine's catalog and the cdr table(s): calls/s of each."""
        keep = max(1, self.n // 2000)
        t_cat, t_cdr = dict.fromkeys(self.catalogs, 0.0), 0.0
        self.fill_cpu = dict.fromkeys(self.catalogs, 0.0)  # CPU seconds of this process per engine
        # a kept run goes on after the last batch committed (0 rows: a fresh run)
        had = {e: catalog_resume.committed(c._conn(), "calls") if self.kept else 0
               for e, c in self.catalogs.items()}
        had_cdr = had_sqlite_cdr = catalog_resume.committed(self.cdr, "cdr") if self.kept else 0
        if self.kept and self.pg_cdr is not None:  # the PostgreSQL cdr table goes on with the rest
            had_cdr = min(had_cdr, self.pg_cdr.committed())
        first = min([*had.values(), had_cdr]) // self.batch * self.batch
        if first:
            print(f"  resuming the kept fill at {first:,}/{self.n:,} calls", file=sys.stderr)
        written, cdr_written = dict.fromkeys(self.catalogs, 0), 0
        for catalog in self.catalogs.values():  # (the writes beside a searcher measure both ways)
            catalog.enable_sign_ahead(self.sign_ahead_fill)
        for start in range(first, self.n, self.batch):
            batch = list(self.gen.calls(start, min(self.batch, self.n - start), batch_seed=True))
            rnd = random.Random(f"samples:{start}")
            picked = [g for g in batch if rnd.randrange(keep) == 0]
            for engine, catalog in self.catalogs.items():
                if had[engine] > start:
                    continue  # committed by an earlier run
                t0, c0 = time.perf_counter(), time.process_time()
                catalog.write_calls(((g.call, [g.recording]) for g in batch), after_store=self.hooks())
                t_cat[engine] += time.perf_counter() - t0
                self.fill_cpu[engine] += time.process_time() - c0
                written[engine] += len(batch)
            if had_cdr <= start:
                if had_sqlite_cdr <= start:
                    t1 = time.perf_counter()
                    self.cdr.execute("BEGIN")
                    self.cdr.executemany(f"INSERT INTO cdr VALUES ({','.join('?' * 19)})",
                                         [g.cdr for g in batch])
                    self.cdr.execute("COMMIT")
                    t_cdr += time.perf_counter() - t1
                    cdr_written += len(batch)
                if self.pg_cdr is not None:
                    self.pg_cdr.insert([g.cdr for g in batch])
            if all(had[e] <= start for e in had):  # each batch's samples once, in a kept run too
                self.samples += picked
                if self.kept:
                    catalog_resume.append_samples(self.root, picked)
            if (start // self.batch) % 20 == 0:
                rates = ", ".join(f"{e} {written[e] / max(t, 1e-9):,.0f} calls/s" for e, t in t_cat.items())
                print(f"  filled {start + len(batch):,}/{self.n:,} ({rates})", file=sys.stderr)
        self.fill_written = written
        #: where the fill put new calls' number entries (``catalog.fresh_numbers``), per engine
        self.staging = {e: bench_catalog_writes.staging_note(c) for e, c in self.catalogs.items()}
        for catalog in self.catalogs.values():
            catalog.enable_sign_ahead(False)
        return ({e: written[e] / max(t, 1e-9) for e, t in t_cat.items()},
                cdr_written / max(t_cdr, 1e-9))

    # -- filters --------------------------------------------------------------------------
    def cases(self) -> list[Case]:
        """(name, 20 catalog filters, the 20 equivalent cdr queries): ``catalog_cases.py``."""
        return filter_cases(self.samples, self.now)

    def team_searches(self, engines: list[str]) -> list[Row]:
        """A team lead's searches over all time (a scope of 20 agents, the console's row scope): a
        rare status, a rare consent decision; since schema 18 both read the agents' ranges of the
        one agent index, the count bounded (``COUNT_READ_CAP`` entries).  cdr: the same agents'
        channels with the same condition."""
        out, order = [], " ORDER BY calldate DESC LIMIT 50"
        scopes = [Scope.of_agents(set(t)) for t in teams()]
        for name, f, cond in TEAM_SEARCHES:
            ours = {e: [timed(lambda f=f, c=self.catalogs[e], s=s: self.shown(c, f, s)) for s in scopes]
                    for e in engines}
            theirs = []
            for s in scopes:
                t = sorted(s.agents)
                sql = ("SELECT * FROM cdr WHERE (" + " OR ".join("dstchannel LIKE ?" for _ in t)
                       + f") AND {cond}" + order)
                theirs.append(timed(lambda sql=sql, t=t: self.cdr.execute(sql, [f"PJSIP/{a}-%" for a in t])
                                    .fetchall()))
            out.append((name, ours, theirs, [(f, s) for s in scopes]))
        return out
    def deep_pages(self, engines: list[str]) -> Row:
        """30 days, the page up to 10,000 rows down: keyset here, OFFSET (what a cdr console does) there."""
        lo, hi = preset_range("30d", self.now)
        conn = self.catalog._conn()
        ours: dict[str, list[float]] = {e: [] for e in engines}
        theirs, probes = [], []
        in_range = conn.execute(
            "SELECT COUNT(*) FROM calls WHERE started_at >= ? AND started_at < ?", (lo, hi)
        ).fetchone()[0]
        top = max(1, min(10_000, in_range - 50))  # 10,000 rows down, or as deep as a small catalog goes
        for depth in random.Random(3).choices(range(top // 2, top + 1), k=SAMPLES):
            row = conn.execute(
                "SELECT started_at, call_id FROM calls WHERE started_at >= ? AND started_at < ? "
                "ORDER BY started_at DESC, call_id LIMIT 1 OFFSET ?",
                (lo, hi, depth),
            ).fetchone()
            if row is None:
                continue
            f = CallFilters(preset="30d", after=encode_cursor(Cursor(row[0], row[1])))
            probes.append((f, None))
            for engine in engines:
                ours[engine].append(timed(lambda f=f, c=self.catalogs[engine]: self.shown(c, f)))
            theirs.append(
                timed(
                    lambda d=depth: self.cdr.execute(
                        "SELECT * FROM cdr WHERE calldate >= ? ORDER BY calldate DESC LIMIT 50 OFFSET ?",
                        (cdr_time(lo), d),
                    ).fetchall()
                )
            )
        return "30 d, deep page (<= 10,000 rows down)", ours, theirs, probes

    def shown(self, catalog: Catalog, f: CallFilters, scope: Scope | None = None) -> Any:
        """A page and its count as the console and the CLI ask for them (in ``scope``: a team's)."""
        return catalog.search_page(f, now=self.now, scope=scope, count_read_cap=COUNT_READ_CAP)

    def run_filters(self, engines: list[str] | None = None) -> None:
        """p50/p95 per filter and engine (ms), the cdr baseline, and on PostgreSQL the sequential
        scans of each filter's plans and, for a filter over 50 ms at p95, what its slowest search
        read (``EXPLAIN (ANALYZE, BUFFERS)``)."""
        engines = engines or list(self.catalogs)
        heads = "".join(f" {SHORT[e] + ' p50':>10} {SHORT[e] + ' p95':>10}" for e in engines)
        ratios = "".join(f" {'cdr/' + SHORT[e]:>10}" for e in engines)
        print(f"\n{'filter':36}{heads} {'cdr p50':>9} {'cdr p95':>9}{ratios}")
        rows: list[Row] = []
        for name, filters, cdr_queries in self.cases():
            ours = {e: [timed(lambda f=f, c=self.catalogs[e]: self.shown(c, f)) for f in filters]
                    for e in engines}
            theirs = [timed(lambda q=q: self.cdr.execute(*q).fetchall()) for q in cdr_queries]
            rows.append((name, ours, theirs, [(f, None) for f in filters]))
        rows.insert(3, self.deep_pages(engines))
        shows = [
            g.call["call_id"] for g in random.Random(4).sample(self.samples, min(SAMPLES, len(self.samples)))
        ]
        rows.append(
            (
                "calls show",
                {
                    e: [timed(lambda c=c, k=self.catalogs[e]: (k.get_call(c), k.recordings_for_call(c)))
                        for c in shows]
                    for e in engines
                },
                [
                    timed(
                        lambda c=c: self.cdr.execute(
                            "SELECT * FROM cdr WHERE uniqueid = ?", (c.split("_", 1)[1],)
                        ).fetchall()
                    )
                    for c in shows
                ],
                [],  # key lookups: no plan to show
            )
        )
        rows.extend(self.team_searches(engines))
        pg = self.catalogs.get("postgresql") if "postgresql" in engines else None
        for name, ours, theirs, probes in rows:
            if not ours[engines[0]]:
                print(f"{name:36} (no calls in range at this size)")
                continue
            cells = "".join(f" {pct(ours[e], 50):10.2f} {pct(ours[e], 95):10.2f}" for e in engines)
            cdr = f"{pct(theirs, 50):9.1f} {pct(theirs, 95):9.1f}" if theirs else f"{'-':>9} {'-':>9}"
            ratios = "".join(
                f" {f'{pct(theirs, 95) / p95:,.1f}x' if theirs and p95 > 0 else '-':>10}"
                for p95 in (pct(ours[e], 95) for e in engines)
            )
            print(f"{name:36}{cells} {cdr}{ratios}")
            if pg is not None and probes:
                for line in bench_catalog_pg.seq_scans(pg, *probes[0], self.now):
                    print(f"    postgresql plan, sequential scan at {self.n:,} calls -- {line}")
                if pct(ours["postgresql"], 95) > TARGET_MS:
                    slowest = probes[max(range(len(probes)), key=ours["postgresql"].__getitem__)]
                    for line in bench_catalog_pg.what_it_read(pg, *slowest, self.now):
                        print(f"    postgresql, the slowest of these searches again -- {line}")


    # -- footprint --------------------------------------------------------------------------
    def footprint(self) -> None:
        if "postgresql" in self.catalogs:
            bench_catalog_pg.footprint(self.catalogs["postgresql"], self.n, self.pg_cdr)
        if "sqlite" in self.catalogs:
            sqlite_footprint(self.catalogs["sqlite"]._conn(), self.cdr, self.root, self.n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--write-seconds", type=float, default=10.0)
    ap.add_argument("--write-warmup", type=int, default=50_000, metavar="CALLS",
                    help="calls the writer writes before the write measures, not counted (a running "
                    "recorder's page cache; default 50,000; 0: a writer just started)")
    ap.add_argument("--turns", type=int, default=8, metavar="ROUNDS",
                    help="after the measures beside a searcher: the empty and the filled catalog written "
                    "in turns, 5 batches of 1,000 each way a round, ROUNDS rounds, no searcher (how flat "
                    "the bulk path is on a host whose speed varies; default 8, 0: not measured)")
    ap.add_argument("--search-rate", type=float, action="append", metavar="PER_S",
                    help="the searching process's pace while writes are measured: 0 (the default) "
                    "searches as fast as it can; PER_S searches a second (a console's load, e.g. 20: "
                    "100 operators each searching every 5 s). Repeat to measure several.")
    ap.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--pg-url", help="A PostgreSQL database to bench in (its schemas are created and "
                    "dropped; default: a private durable cluster started for the run).")
    ap.add_argument("--dir", help="Work directory (default: a temporary one, removed afterwards).")
    ap.add_argument("--keep", metavar="DIR", help="keep the work in DIR (with PostgreSQL: and in the "
                    "--pg-url server's bench_kept_* schemas); a stopped run goes on there when started "
                    "again with the same arguments (catalog_resume.py).")
    ap.add_argument("--fill-only", action="store_true", help="with --keep: fill, then stop (measure "
                    "later, on a quiet host, with the same command without --fill-only).")
    ap.add_argument("--no-writes", action="store_true", help="measure the filters and the footprint only "
                    "(a second, warm pass over a kept catalog)")
    ap.add_argument("--writes-only", action="store_true", help="measure the writes beside a searcher only "
                    "(a longer second run over a kept catalog)")
    ap.add_argument("--turns-both", action="store_true", help="--turns: write each catalog both ways in "
                    "turns, new calls' number entries staged and straight into the big indexes "
                    "(catalog.fresh_numbers; SQLite), with the same connection")
    ap.add_argument("--unstaged", action="store_true", help="write every new call's number entries "
                    "straight into the big number indexes, as before schema 25 (the baseline of "
                    "catalog.fresh_numbers: run the same measures with and without it)")
    ap.add_argument("--writer-signs", action="store_true", help="the fill's writer makes every "
                    "signature itself (default: a helper process signs ahead, Catalog.enable_sign_ahead)")
    a = ap.parse_args()
    Bench.staged = not a.unstaged
    engines = ["sqlite", "postgresql"] if a.engine == "both" else [a.engine]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `finally` stops the private cluster
    if a.keep:
        if "postgresql" in engines and not a.pg_url:
            ap.error("--keep with PostgreSQL needs --pg-url (a server that outlives the run)")
        root = Path(a.keep)
        try:
            kept = catalog_resume.open_state(root, a.calls, a.batch, time.time())
        except catalog_resume.ResumeError as exc:
            ap.error(str(exc))
        pg = bench_catalog_pg.PgServer(root, a.pg_url, kept=kept.run_id) if "postgresql" in engines else None
        try:
            bench = Bench(root, a.calls, a.batch, engines, pg, kept)
            bench.sign_ahead_fill = not a.writer_signs
            if a.fill_only:
                t0 = time.perf_counter()
                rates, _ = bench.fill()
                bench.close()
                for engine in engines:
                    print(f"filled ({engine}): {bench.fill_written[engine]:,} calls written by this run "
                          f"in {time.perf_counter() - t0:,.0f} s ({rates[engine]:,.0f} calls/s); kept in "
                          f"{root}{' and the bench_kept_* schemas' if engine == 'postgresql' else ''}; "
                          f"{bench.staging[engine]}")
                return
            run(bench, a)
        finally:
            if pg is not None:
                pg.close()
        return
    elif a.fill_only:
        ap.error("--fill-only needs --keep DIR")
    with tempfile.TemporaryDirectory(prefix="bench-catalog-", dir=a.dir) as tmp:
        pg = bench_catalog_pg.PgServer(Path(tmp), a.pg_url) if "postgresql" in engines else None
        try:
            bench = Bench(Path(tmp), a.calls, a.batch, engines, pg)
            bench.sign_ahead_fill = not a.writer_signs
            run(bench, a)
        finally:
            if pg is not None:
                pg.close()


def run(bench: Bench, a: argparse.Namespace) -> None:
    if bench.pg is not None:
        print(f"postgresql: {bench.pg.describe()}")
    print(f"load average at the start {os.getloadavg()[0]:.1f} (2-core host shared with other work: "
          "compare runs with it in view)")
    t0 = time.perf_counter()
    ours, cdr = bench.fill()
    rates = ", ".join(f"{e} {r:,.0f} calls/s "
                      f"({bench.fill_written[e] / max(bench.fill_cpu[e], 1e-9):,.0f} per CPU s)"
                      for e, r in ours.items())
    resumed = (f" (this run wrote {min(bench.fill_written.values()):,} of them; the rest a kept "
               "earlier run)" if min(bench.fill_written.values()) < a.calls else "")
    print(
        f"filled {a.calls:,} calls{resumed} in {time.perf_counter() - t0:,.0f} s: "
        f"catalog bulk path {rates} "
        f"(seal, signed manifest, 2 ledger entries each; signatures "
        f"{'made ahead by a helper process' if bench.sign_ahead_fill else 'by the writer'}), "
        f"cdr executemany {cdr:,.0f} rows/s; {'; '.join(f'{e}: {n}' for e, n in bench.staging.items())}; "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    if "postgresql" in bench.catalogs:
        t0 = time.perf_counter()
        tables = bench_catalog_pg.analyze(bench.catalogs["postgresql"])
        print(f"postgresql: ANALYZE of the catalog's {len(tables)} tables after the fill "
              f"({time.perf_counter() - t0:,.1f} s), so the planner sees the filled catalog")
    if not a.writes_only:
        bench.run_filters()
        bench.footprint()
    if "postgresql" in bench.catalogs and not a.writes_only:
        t0 = time.perf_counter()
        tables = bench_catalog_pg.vacuum_analyze(bench.catalogs["postgresql"])
        print(f"\npostgresql: VACUUM (ANALYZE) of the catalog's {len(tables)} tables "
              f"({time.perf_counter() - t0:,.1f} s): the state autovacuum keeps a running catalog in "
              "(the table above is the one right after a bulk import); its filters again:")
        bench.run_filters(["postgresql"])
    print()
    if a.no_writes:
        return
    for engine, catalog in bench.catalogs.items():
        empty = bench.open(bench.target(engine, "empty"))
        for rate in a.search_rate or [0.0]:
            bench.writes_while_searching(empty, f"{engine}: empty catalog", a.write_seconds, rate,
                                         a.write_warmup)
            bench.writes_while_searching(catalog, f"{engine}: at {a.calls:,} calls", a.write_seconds, rate,
                                         a.write_warmup)
        if a.turns:
            bench_catalog_writes.in_turns(bench, {f"{engine}: empty catalog": empty,
                                                  f"{engine}: at {a.calls:,} calls": catalog},
                                          a.write_warmup, a.turns,
                                          modes=(True, False) if a.turns_both else ())
        empty.close()
        catalog.close()
    if bench.pg_cdr is not None:
        bench.pg_cdr.close()


if __name__ == "__main__":
    main()
