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
        [--engine sqlite|postgresql|both] [--pg-url postgresql://user@host:port/db]
        [--keep DIR [--fill-only]]

``--keep DIR`` (SQLite): the work directory is kept and a run that stops (killed, host restarted)
goes on where it stopped when started again with the same arguments (``catalog_resume.py``): a
10,000,000-call fill can be made in several goes, e.g. at low priority beside other work, with
``--fill-only``, then measured on a quiet host by one more run. The fill rate then covers the
batches written by that run only.
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
from bench.catalog_data import AGENTS, CDR_SCHEMA, QUEUES, TAGS, CallGenerator, Generated, cdr_time  # noqa: E402
from pbx_recorder.call_seal import CallSealer  # noqa: E402
from pbx_recorder.catalog import CallFilters, Catalog  # noqa: E402
from pbx_recorder.catalog.number_migration import protect  # noqa: E402
from pbx_recorder.catalog.queries import COUNT_READ_CAP, Cursor, encode_cursor, preset_range  # noqa: E402
from pbx_recorder.catalog.scopes import Scope  # noqa: E402
from pbx_recorder.ledger import StoredLedgerHook  # noqa: E402
from pbx_recorder.signing import SignAfterStore  # noqa: E402

DAY = 86400.0
SAMPLES = 20
#: rows the footprint's "stored twice" averages read (the first ones of each table)
STORED_TWICE_ROWS = 200_000
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
        # calls kept to draw filter values from
        self.samples: list[Generated] = catalog_resume.load_samples(root) if kept else []
        self.catalogs = {e: self.open(self.target(e, "catalog")) for e in engines}
        self.catalog = next(iter(self.catalogs.values()))  # draws deep-page cursors (same calls in each)
        self.cdr = sqlite3.connect(root / "cdr.db", isolation_level=None)
        self.cdr.execute("PRAGMA journal_mode=WAL")
        self.cdr.executescript(CDR_SCHEMA)
        self.pg_cdr = bench_catalog_pg.PgCdr(pg.fresh("cdr"), CDR_SCHEMA) if pg is not None else None

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

    def open(self, target: str) -> Catalog:
        """As the recorder opens it with encryption on: numbers sealed, found by blind index."""
        numbers = numbers_for(self.keys)  # as app.py: the seal covers the numbers in clear
        catalog = Catalog(target, sealer=CallSealer(self.key, reveal=numbers.open_call), numbers=numbers)
        protect(catalog._conn(), numbers_for(self.keys))  # marks a new catalog as fully protected
        return catalog

    def hooks(self) -> list[Any]:
        return [SignAfterStore(self.key), StoredLedgerHook()]

    def writes_while_searching(self, catalog: Catalog, label: str, seconds: float) -> None:
        bench_catalog_writes.writes_while_searching(self, catalog, label, seconds)

    # -- fill -------------------------------------------------------------------------
    def fill(self) -> tuple[dict[str, float], float]:
        """The same batches into every engine's catalog and the cdr table(s): calls/s of each."""
        keep = max(1, self.n // 2000)
        t_cat, t_cdr = dict.fromkeys(self.catalogs, 0.0), 0.0
        self.fill_cpu = dict.fromkeys(self.catalogs, 0.0)  # CPU seconds of this process per engine
        # a kept run goes on after the last batch committed (0 rows: a fresh run)
        had = {e: catalog_resume.committed(c._conn(), "calls") if self.kept else 0
               for e, c in self.catalogs.items()}
        had_cdr = catalog_resume.committed(self.cdr, "cdr") if self.kept else 0
        first = min([*had.values(), had_cdr]) // self.batch * self.batch
        if first:
            print(f"  resuming the kept fill at {first:,}/{self.n:,} calls", file=sys.stderr)
        written = dict.fromkeys(self.catalogs, 0)
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
                t1 = time.perf_counter()
                self.cdr.execute("BEGIN")
                self.cdr.executemany(f"INSERT INTO cdr VALUES ({','.join('?' * 19)})", [g.cdr for g in batch])
                self.cdr.execute("COMMIT")
                t_cdr += time.perf_counter() - t1
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
        return ({e: written[e] / max(t, 1e-9) for e, t in t_cat.items()},
                (self.n - had_cdr) / max(t_cdr, 1e-9))

    # -- filters --------------------------------------------------------------------------
    def cases(self) -> list[tuple[str, list[CallFilters], list[tuple[str, list[Any]]]]]:
        """(name, 20 catalog filters, the 20 equivalent cdr queries)."""
        rnd, now, s = random.Random(9), self.now, self.samples
        pick = [rnd.choice(s) for _ in range(SAMPLES)]
        recent = [g for g in s if g.call["started_at"] >= now - 7 * DAY] or s
        since7, since30 = now - 7 * DAY, now - 30 * DAY
        order = " ORDER BY calldate DESC LIMIT 50"
        last4 = [g.call["caller_num"][-4:] for g in pick]
        cases: list[tuple[str, list[CallFilters], list[tuple[str, list[Any]]]]] = [
            (
                "last 4 digits, all time",
                [CallFilters(caller=d) for d in last4],
                [("SELECT * FROM cdr WHERE substr(src, -4) = ?" + order, [d]) for d in last4],
            ),
            (
                "last 4 digits, last 7 days",
                [
                    CallFilters(caller=g.call["caller_num"][-4:], preset="7d")
                    for g in (rnd.choice(recent) for _ in range(SAMPLES))
                ],
                [],
            ),
            ("30 d + queue + answered + consent", [], []),
            ("agent, all time", [CallFilters(agent=a) for a in rnd.sample(AGENTS, SAMPLES)], []),
            ("agent, 30 days", [CallFilters(agent=a, preset="30d") for a in rnd.sample(AGENTS, SAMPLES)], []),
            (
                "full caller number",
                [CallFilters(caller=g.call["caller_num"]) for g in pick],
                [("SELECT * FROM cdr WHERE src = ?" + order, [g.call["caller_num"]]) for g in pick],
            ),
            (
                "call id",
                [CallFilters(call_id=g.call["call_id"]) for g in pick],
                [("SELECT * FROM cdr WHERE uniqueid = ?" + order, [g.call["linkedid"]]) for g in pick],
            ),
        ]
        cases[1][2].extend(
            (
                "SELECT * FROM cdr WHERE calldate >= ? AND substr(src, -4) = ?" + order,
                [cdr_time(since7), f.caller],
            )
            for f in cases[1][1]
        )
        combo = [
            (rnd.choice(QUEUES), rnd.choice(["granted", "refused", "not_required", "timeout"]))
            for _ in range(SAMPLES)
        ]
        cases[2][1].extend(CallFilters(preset="30d", queue=q, status="answered", consent=c) for q, c in combo)
        cases[2][2].extend(
            (
                "SELECT * FROM cdr WHERE calldate >= ? AND lastdata LIKE ? AND disposition = "
                "'ANSWERED' AND userfield LIKE ?" + order,
                [cdr_time(since30), f"{q},%", f"consent={c};%"],
            )
            for q, c in combo
        )
        for name in ("agent, all time", "agent, 30 days"):
            case = next(c for c in cases if c[0] == name)
            case[2].extend(
                (
                    "SELECT * FROM cdr WHERE "
                    + ("calldate >= ? AND " if f.preset else "")
                    + "dstchannel LIKE ?"
                    + order,
                    [*([cdr_time(since30)] if f.preset else []), f"PJSIP/{f.agent}-%"],
                )
                for f in case[1]
            )
        for preset in ("today", "yesterday", "7d", "30d"):
            lo, hi = preset_range(preset, now)
            cases.append(
                (
                    f"preset {preset}",
                    [CallFilters(preset=preset)] * SAMPLES,
                    [
                        (
                            "SELECT * FROM cdr WHERE calldate >= ? AND calldate < ?" + order,
                            [cdr_time(lo), cdr_time(hi)],
                        )
                    ]
                    * SAMPLES,
                )
            )
        for status, disp in (("answered", "ANSWERED"), ("no_answer", "NO ANSWER"), ("failed", "FAILED")):
            cases.append(
                (
                    f"status {status}",
                    [CallFilters(status=status)] * SAMPLES,
                    [("SELECT * FROM cdr WHERE disposition = ?" + order, [disp])] * SAMPLES,
                )
            )
        queues = rnd.sample(QUEUES, SAMPLES)
        cases.append(
            (
                "queue, 30 days",
                [CallFilters(queue=q, preset="30d") for q in queues],
                [
                    (
                        "SELECT * FROM cdr WHERE calldate >= ? AND lastdata LIKE ?" + order,
                        [cdr_time(since30), f"{q},%"],
                    )
                    for q in queues
                ],
            )
        )
        for consent in ("refused", "timeout"):
            cases.append(
                (
                    f"consent {consent}",
                    [CallFilters(consent=consent)] * SAMPLES,
                    [("SELECT * FROM cdr WHERE userfield LIKE ?" + order, [f"consent={consent};%"])]
                    * SAMPLES,
                )
            )
        for tag in ("vip", "escalated", "no-such-tag"):
            cases.append(
                (
                    f"tag {tag}",
                    [CallFilters(tag=tag)] * SAMPLES,
                    [
                        (
                            "SELECT * FROM cdr WHERE ',' || substr(userfield, instr(userfield, 'tags=') + 5) "
                            "|| ',' LIKE ?" + order,
                            [f"%,{tag},%"],
                        )
                    ]
                    * SAMPLES,
                )
            )
        # filters combined beside a tag and beside an agent, over all time (schema 16 and 17: the
        # other filters are tested inside the tag's or the agent's index)
        consents = ["granted", "refused", "not_required", "timeout"]
        tagged = [(rnd.choice([t for t, _pct in TAGS]), rnd.choice(consents)) for _ in range(SAMPLES)]
        cases.append(
            (
                "tag + answered + consent",
                [CallFilters(tag=t, status="answered", consent=c) for t, c in tagged],
                [
                    (
                        "SELECT * FROM cdr WHERE disposition = 'ANSWERED' AND userfield LIKE ?" + order,
                        [f"consent={c};tags=%{t}%"],
                    )
                    for t, c in tagged
                ],
            )
        )
        agents = [(a, rnd.choice(consents)) for a in rnd.sample(AGENTS, SAMPLES)]
        cases.append(
            (
                "agent + answered + consent",
                [CallFilters(agent=a, status="answered", consent=c) for a, c in agents],
                [
                    (
                        "SELECT * FROM cdr WHERE dstchannel LIKE ? AND disposition = 'ANSWERED' "
                        "AND userfield LIKE ?" + order,
                        [f"PJSIP/{a}-%", f"consent={c};%"],
                    )
                    for a, c in agents
                ],
            )
        )
        return cases

    def team_searches(self) -> list[tuple[str, dict[str, list[float]], list[float], list[CallFilters]]]:
        """A team lead's searches over all time (a scope of 20 agents, the console's row scope): a
        rare status, a rare consent decision; since schema 18 both read the agents' ranges of the
        one agent index, the count bounded (``COUNT_READ_CAP`` entries).  cdr: the same agents'
        channels with the same condition."""
        rnd, out = random.Random(6), []
        teams = [sorted(rnd.sample(AGENTS, 20)) for _ in range(SAMPLES)]
        order = " ORDER BY calldate DESC LIMIT 50"
        searches = (("team of 20 + failed, all time", CallFilters(status="failed"), "disposition = 'FAILED'"),
                    ("team of 20 + refused, all time", CallFilters(consent="refused"),
                     "userfield LIKE 'consent=refused;%'"))
        for name, f, cond in searches:
            ours = {e: [timed(lambda f=f, c=c, t=t: self.scoped(c, f, t)) for t in teams]
                    for e, c in self.catalogs.items()}
            theirs = [timed(lambda t=t, cond=cond: self.cdr.execute(
                "SELECT * FROM cdr WHERE (" + " OR ".join("dstchannel LIKE ?" for _ in t) + f") AND {cond}"
                + order, [f"PJSIP/{a}-%" for a in t]).fetchall()) for t in teams]
            out.append((name, ours, theirs, []))
        return out

    def scoped(self, catalog: Catalog, f: CallFilters, agents: list[str]) -> Any:
        """A page and its count inside a team's row scope, as the console asks for them."""
        return catalog.search_page(f, now=self.now, scope=Scope.of_agents(set(agents)),
                                   count_read_cap=COUNT_READ_CAP)

    def deep_pages(self) -> tuple[dict[str, list[float]], list[float], list[CallFilters]]:
        """30 days, the page up to 10,000 rows down: keyset here, OFFSET (what a cdr console does) there."""
        lo, hi = preset_range("30d", self.now)
        conn = self.catalog._conn()
        ours: dict[str, list[float]] = {e: [] for e in self.catalogs}
        theirs, filters = [], []
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
            filters.append(f)
            for engine, catalog in self.catalogs.items():
                ours[engine].append(timed(lambda f=f, c=catalog: self.shown(c, f)))
            theirs.append(
                timed(
                    lambda d=depth: self.cdr.execute(
                        "SELECT * FROM cdr WHERE calldate >= ? ORDER BY calldate DESC LIMIT 50 OFFSET ?",
                        (cdr_time(lo), d),
                    ).fetchall()
                )
            )
        return ours, theirs, filters

    def shown(self, catalog: Catalog, f: CallFilters) -> Any:
        """A page and its count as the console and the CLI ask for them."""
        return catalog.search_page(f, now=self.now, count_read_cap=COUNT_READ_CAP)

    def run_filters(self) -> None:
        """p50/p95 per filter and engine (ms), the cdr baseline, and PostgreSQL's sequential scans."""
        engines = list(self.catalogs)
        heads = "".join(f" {SHORT[e] + ' p50':>10} {SHORT[e] + ' p95':>10}" for e in engines)
        ratios = "".join(f" {'cdr/' + SHORT[e]:>10}" for e in engines)
        print(f"\n{'filter':36}{heads} {'cdr p50':>9} {'cdr p95':>9}{ratios}")
        rows: list[tuple[str, dict[str, list[float]], list[float], list[CallFilters]]] = []
        for name, filters, cdr_queries in self.cases():
            ours = {
                e: [timed(lambda f=f, c=c: self.shown(c, f)) for f in filters]
                for e, c in self.catalogs.items()
            }
            theirs = [timed(lambda q=q: self.cdr.execute(*q).fetchall()) for q in cdr_queries]
            rows.append((name, ours, theirs, filters))
        rows.insert(3, ("30 d, deep page (<= 10,000 rows down)", *self.deep_pages()))
        shows = [
            g.call["call_id"] for g in random.Random(4).sample(self.samples, min(SAMPLES, len(self.samples)))
        ]
        rows.append(
            (
                "calls show",
                {
                    e: [timed(lambda c=c, k=k: (k.get_call(c), k.recordings_for_call(c))) for c in shows]
                    for e, k in self.catalogs.items()
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
        rows.extend(self.team_searches())
        pg = self.catalogs.get("postgresql")
        for name, ours, theirs, filters in rows:
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
            if pg is not None and filters:
                for line in bench_catalog_pg.seq_scans(pg, filters[0], self.now):
                    print(f"    postgresql plan, sequential scan at {self.n:,} calls -- {line}")

    # -- footprint --------------------------------------------------------------------------
    def footprint(self) -> None:
        if "postgresql" in self.catalogs:
            bench_catalog_pg.footprint(self.catalogs["postgresql"], self.n, self.pg_cdr)
        if "sqlite" not in self.catalogs:
            return
        conn = self.catalogs["sqlite"]._conn()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.cdr.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = os.path.getsize(self.root / "catalog.db")
        cdr_size = os.path.getsize(self.root / "cdr.db")
        print(
            f"\nsqlite catalog: {size / self.n:,.0f} bytes per call "
            f"({size / 2**20:,.0f} MiB for {self.n:,} calls with recording and ledger rows); "
            "cdr table + calldate index: "
            f"{cdr_size / self.n:,.0f} bytes per call "
            f"(ratio {size / cdr_size:.1f}x)"
        )
        try:  # every table and index (pages in use: a page's free space counts where it is)
            parts = conn.execute(
                "SELECT d.name, COALESCE(m.type, 'table'), COALESCE(m.tbl_name, d.name), SUM(d.pgsize) "
                "FROM dbstat d LEFT JOIN sqlite_schema m ON m.name = d.name GROUP BY d.name ORDER BY 4 DESC"
            ).fetchall()
        except sqlite3.OperationalError:
            parts = []
        for name, kind, table, nbytes in parts:
            if nbytes / self.n >= 1:
                print(f"  {name:32} {kind:5} of {table:14} {nbytes / self.n:8,.0f} B/call")
        # averages over the first rows only: each is a read of a whole table, minutes at 10 M calls
        first = min(self.n, STORED_TWICE_ROWS)
        print(f"  stored twice (average bytes per call, first {first:,} rows of each table):")
        calls = f"(SELECT cdr, consent FROM calls ORDER BY rowid LIMIT {first})"
        recs = f"(SELECT * FROM recordings ORDER BY rowid LIMIT {first})"
        for label, sql in (
            ("calls.cdr JSON (also columns)", f"SELECT AVG(length(cdr)) FROM {calls}"),
            ("calls.consent JSON", f"SELECT AVG(length(consent)) FROM {calls}"),
            ("recordings.manifest JSON", f"SELECT AVG(length(manifest)) FROM {recs}"),
            ("recordings.signature + hashes", "SELECT AVG(length(signature) + length(sha256) + "
             f"length(audio_sha256)) FROM {recs}"),
            (
                "  of which cdr + consent again",
                "SELECT AVG(length(json_extract(manifest, '$.cdr')) + "
                f"length(json_extract(manifest, '$.consent'))) FROM {recs}",
            ),
            ("recordings.objects JSON", f"SELECT AVG(length(objects)) FROM {recs}"),
            (  # the bench writes 2 ledger entries a call
                "ledger rows (payload + 2 hashes)",
                f"SELECT AVG(length(payload) + 128) * 2 FROM (SELECT payload FROM ledger "
                f"ORDER BY rowid LIMIT {2 * first})",
            ),
        ):
            print(f"    {label:34} {conn.execute(sql).fetchone()[0] or 0:8,.0f}")

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--write-seconds", type=float, default=10.0)
    ap.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--pg-url", help="A PostgreSQL database to bench in (its schemas are created and "
                    "dropped; default: a private durable cluster started for the run).")
    ap.add_argument("--dir", help="Work directory (default: a temporary one, removed afterwards).")
    ap.add_argument("--keep", metavar="DIR", help="SQLite only: keep the work in DIR; a stopped run "
                    "goes on there when started again with the same arguments (catalog_resume.py).")
    ap.add_argument("--fill-only", action="store_true", help="with --keep: fill, then stop (measure "
                    "later, on a quiet host, with the same command without --fill-only).")
    a = ap.parse_args()
    engines = ["sqlite", "postgresql"] if a.engine == "both" else [a.engine]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `finally` stops the private cluster
    if a.keep:
        if engines != ["sqlite"]:
            ap.error("--keep works with --engine sqlite only")
        root = Path(a.keep)
        try:
            kept = catalog_resume.open_state(root, a.calls, a.batch, time.time())
        except catalog_resume.ResumeError as exc:
            ap.error(str(exc))
        bench = Bench(root, a.calls, a.batch, engines, None, kept)
        if a.fill_only:
            t0 = time.perf_counter()
            rates, _ = bench.fill()
            print(f"filled: {bench.fill_written['sqlite']:,} calls written by this run in "
                  f"{time.perf_counter() - t0:,.0f} s ({rates['sqlite']:,.0f} calls/s); "
                  f"kept in {root}")
            return
        run(bench, a)
        return
    elif a.fill_only:
        ap.error("--fill-only needs --keep DIR")
    with tempfile.TemporaryDirectory(prefix="bench-catalog-", dir=a.dir) as tmp:
        pg = bench_catalog_pg.PgServer(Path(tmp), a.pg_url) if "postgresql" in engines else None
        try:
            run(Bench(Path(tmp), a.calls, a.batch, engines, pg), a)
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
        f"(seal, signed manifest, 2 ledger entries each), cdr executemany {cdr:,.0f} rows/s; "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    if "postgresql" in bench.catalogs:
        t0 = time.perf_counter()
        tables = bench_catalog_pg.analyze(bench.catalogs["postgresql"])
        print(f"postgresql: ANALYZE of the catalog's {len(tables)} tables after the fill "
              f"({time.perf_counter() - t0:,.1f} s), so the planner sees the filled catalog")
    bench.run_filters()
    bench.footprint()
    print()
    for engine, catalog in bench.catalogs.items():
        empty = bench.open(bench.target(engine, "empty"))
        bench.writes_while_searching(empty, f"{engine}: empty catalog", a.write_seconds)
        empty.close()
        bench.writes_while_searching(catalog, f"{engine}: at {a.calls:,} calls", a.write_seconds)
        catalog.close()
    if bench.pg_cdr is not None:
        bench.pg_cdr.close()


if __name__ == "__main__":
    main()
