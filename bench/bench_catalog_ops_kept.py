"""The admin's whole-catalog commands on a kept ``bench_catalog.py`` catalog (10 M calls), as run.

``bench_catalog_ops.py`` fills catalogs of its own (plain rows, a fixed subject) to compare N with
N/10. This one takes the catalog a ``bench_catalog.py --keep DIR --calls N`` run filled through
the recorder's own write path (numbers sealed, blind indexes, signed manifests, the ledger) and
runs the real CLI against it, each command in a fresh process, through a config written for it in
``DIR/ops/``: the kept run's keys as the recorder's key files (the catalog master key ring, the
privacy HMAC key, the Ed25519 signing key, owner-only) and two empty local tiers. Per command:
wall time, peak RSS of its process, and what it found (its output's lines or JSON). The catalog
is changed by the hold and the erasure (run them last; a later filter run still works).

    .venv/bin/python -m bench.bench_catalog_ops_kept --keep DIR --calls N [--batch 1000]
        [--pg-url postgresql://user@host:port/db]

``--pg-url``: the kept run filled PostgreSQL (``bench_catalog.py --engine postgresql --pg-url URL
--keep DIR``): the commands run against its schema ``bench_kept_catalog`` on that server.

What is run (the calls span the 24 months before the kept run's ``now``; class ``standard`` kept
540 days, cold after 60 here):

- ``retention report --at T``: T where one day of calls has passed 540 days (the nightly job),
  and at ``now`` (a backlog: six months of calls due at once);
- ``recordings migrate --dry-run``: one day past ``cold_after_days`` (a second config whose class
  moves to cold after 729 days, kept 1,095: the oldest day);
- ``hold add --caller``: the heaviest caller of the fill (thousands of calls, both sides) and a
  sampled caller; ``hold add --query``: one queue over one day;
- ``erase --caller``: the second heaviest caller (``--erase-rank``); its catalog backups are
  shredded by the next ``catalog backup`` (not run here: a copy of the whole catalog);
- ``ledger verify``: every ledger entry's hash recomputed (two a call), the chain held to its
  signed head (the kept run signs none: reported) and to the catalog.

Baseline in the same run: the query hold's matching as this code does it (the index range) and
as the code before it did (every row of ``calls`` read, stopped after ``--baseline-seconds``),
nothing held, in child processes (``--match``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization

from bench import catalog_resume
from bench.catalog_data import QUEUES, SPAN, caller_number

DAY = 86400.0
KEEP_DAYS = 540


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_config(root: Path, kept: catalog_resume.KeptRun, name: str, days: int, cold_after_days: int,
                pg_url: str | None = None) -> Path:
    """DIR/ops/<name>.yaml over the kept catalog (``pg_url``: its PostgreSQL schema) with the kept
    run's keys."""
    ops = root / "ops"
    ops.mkdir(mode=0o700, exist_ok=True)
    master, hmac_key = kept.keys
    if hmac_key.strip() != hmac_key:  # the key file is read with .strip() (a text key from keys init)
        raise SystemExit("this kept run's HMAC key starts or ends with a whitespace byte: it cannot be "
                         "written as a privacy.hash_key_file; fill a new kept run")
    write_private(ops / "keys" / "master" / "bench.key", master)  # (numbers_for: key id 'bench')
    write_private(ops / "keys" / "subject-hmac.key", hmac_key)
    write_private(ops / "keys" / "signing.pem", kept.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    for tier in ("hot", "cold"):
        (ops / "tiers" / tier).mkdir(mode=0o700, parents=True, exist_ok=True)
    (ops / "spool").mkdir(mode=0o700, parents=True, exist_ok=True)
    config = {
        "catalog": {"path": str(root / "catalog.db"),
                    **({"url": kept_catalog_url(pg_url)} if pg_url else {})},
        "spool": {"dir": str(ops / "spool")},
        "retention": {"default_class": "standard",
                      "classes": {"standard": {"days": days, "cold_after_days": cold_after_days}}},
        "storage": {"tiers": {t: {"type": "local", "path": str(ops / "tiers" / t)} for t in ("hot", "cold")},
                    "hot": "hot", "cold": "cold"},
        "encryption": {"enabled": True, "master_key_file": str(ops / "keys" / "master" / "bench.key"),
                       "backup_key_dir": str(ops / "keys" / "backup")},
        "signing": {"key_file": str(ops / "keys" / "signing.pem"),
                    "checkpoint_dir": str(ops / "chain-heads")},
        "privacy": {"hash_key_file": str(ops / "keys" / "subject-hmac.key")},
        "access": {"users": {"root": "admin"}},
    }
    path = ops / f"{name}.yaml"
    write_private(path, json.dumps(config, indent=1).encode())  # (JSON is YAML)
    return path


def kept_catalog_url(pg_url: str) -> str:
    """The kept PostgreSQL catalog (``bench_catalog_pg.PgServer``'s kept schema) at ``pg_url``."""
    from bench.bench_catalog_pg import PgServer

    return pg_url + "?options=" + quote(f"-csearch_path={PgServer.KEPT_PREFIX}catalog")


def describe(root: Path, pg_url: str | None) -> str:
    """Where the kept catalog is and how large."""
    if not pg_url:
        return f"kept catalog {root / 'catalog.db'}: {(root / 'catalog.db').stat().st_size / 2**30:,.1f} GiB"
    import psycopg

    with psycopg.connect(kept_catalog_url(pg_url)) as conn:
        size = conn.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                            ).fetchone()
    return f"kept PostgreSQL catalog (schema on {pg_url}): {float(size[0] if size else 0) / 2**30:,.1f} GiB"


def run(config: Path, args: list[str], checks: bool = False) -> dict[str, float | str]:
    """One CLI command in a fresh process: wall seconds, its peak RSS, its output's size.  A check
    (``checks``: ``ledger verify``) may exit non-zero for what it found: its code is reported."""
    # the console script, as an admin runs it
    cmd = [str(Path(sys.executable).parent / "pbx-recorder"), "--config", str(config), *args]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as errors:  # (a pipe left unread could fill and stop the command)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        lines, last = 0, b""
        assert proc.stdout is not None
        for line in proc.stdout:  # streamed: a backlog report is millions of lines
            lines += 1
            last = line if len(line) < 100_000 else last
        _, status, usage = os.wait4(proc.pid, 0)
        errors.seek(0)
        err = errors.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 and checks:
        said = last or (err.strip().splitlines() or [b""])[-1]
        return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024, "lines": float(lines),
                "last": f"exit {proc.returncode}: {said.decode(errors='replace').strip()[:300]}"}
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {proc.returncode}\n{err.decode(errors='replace')[-2000:]}")
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024, "lines": float(lines),
            "last": last.decode(errors="replace").strip()[:300]}


def match_child(config: str, query: str, how: str, limit_s: float) -> None:
    """The calls a hold by ``query`` covers, found as ``hold add`` finds them but nothing held:
    ``indexed`` (this code) or ``table`` (the code before session 30: every row read), for at
    most ``limit_s`` seconds. Prints rows read, matches, seconds, whether it finished (JSON)."""
    from pbx_recorder.lifecycle import policy, query_hold_rows
    from pbx_recorder.lifecycle.runtime import Runtime

    holds = Runtime.load(config, "hold.add").holds()
    if how == "table":  # (this bench process only: the baseline)
        query_hold_rows.search_filters = lambda q, batch: None
    read = [0]
    t0, matched, complete = time.perf_counter(), 0, True

    class TimeUp(Exception):
        pass

    def tick(n: int) -> None:  # (called after each batch of rows read, matches or not)
        read[0] += n
        if time.perf_counter() - t0 > limit_s:
            raise TimeUp

    holds.tick = tick
    try:
        for _ in holds._query_matches(policy.parse_query(query)):
            matched += 1
    except TimeUp:
        complete = False
    print(json.dumps({"rows": read[0], "matched": matched, "seconds": time.perf_counter() - t0,
                      "complete": complete}))


def baseline(config: Path, query: str, calls: int, limit_s: float) -> None:
    """The query hold's matching, this code against the code before, in the same run."""
    for how in ("indexed", "table"):
        out = subprocess.run([sys.executable, "-m", "bench.bench_catalog_ops_kept", "--match", how,
                              "--config", str(config), "--query", query, "--seconds", str(limit_s)],
                             check=True, capture_output=True, text=True)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        rate = got["rows"] / max(got["seconds"], 1e-9)
        tail = ("" if got["complete"] else f"; stopped after {limit_s:.0f} s: the whole table at "
                f"that rate {calls / max(rate, 1e-9):,.0f} s")
        label = "this code (index range)" if how == "indexed" else "the code before (table read)"
        print(f"  matching the query, {label:30} {got['seconds']:8.2f} s  {got['rows']:>12,} rows read "
              f"({rate:,.0f}/s), {got['matched']:,} matches{tail}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", metavar="DIR")
    ap.add_argument("--calls", type=int)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--skip", action="append", default=[], metavar="NAME",
                    help="a step not to run, by the start of its name (repeat for several)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only the steps whose names start so (repeat for several)")
    ap.add_argument("--erase-rank", type=int, default=1, metavar="N",
                    help="erase the caller of this rank by calls (0: the heaviest; default 1; a kept "
                    "catalog an earlier run erased from needs the next)")
    ap.add_argument("--baseline-seconds", type=float, default=60.0,
                    help="how long the code before may read the table for the query hold's baseline")
    ap.add_argument("--pg-url", help="the PostgreSQL server a kept run filled (bench_catalog.py --engine "
                    "postgresql --pg-url URL --keep DIR)")
    ap.add_argument("--match", choices=("indexed", "table"), help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--query", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.match:
        match_child(a.config, a.query, a.match, a.seconds)
        return
    if not a.keep or not a.calls:
        ap.error("--keep DIR and --calls N are needed")
    root = Path(a.keep)
    if not (root / "state.json").exists() or not (a.pg_url or (root / "catalog.db").exists()):
        ap.error(f"{root} holds no kept bench_catalog run")
    kept = catalog_resume.open_state(root, a.calls, a.batch, time.time())
    first = kept.now - SPAN  # the oldest call
    nightly = make_config(root, kept, "nightly", KEEP_DAYS, 60, a.pg_url)
    oldest_cold = make_config(root, kept, "oldest-cold", 1095, 729, a.pg_url)
    callers = max(100, a.calls // 5)  # as CallGenerator
    sampled = catalog_resume.load_samples(root)
    typical = next(str(g.call["caller_num"]) for g in sampled if g.call["direction"] == "inbound")
    day_query = json.dumps({"queue": QUEUES[3], "start": kept.now - 2 * DAY, "end": kept.now - DAY})
    steps = [
        ("retention report, a day due", nightly,
         ["retention", "report", "--json", "--at", f"{first + (KEEP_DAYS + 1) * DAY:.0f}"]),
        ("recordings migrate --dry-run, a day due", oldest_cold, ["recordings", "migrate", "--dry-run"]),
        ("retention report, 6 months due (backlog)", nightly, ["retention", "report", "--json"]),
        ("hold add --caller, the heaviest caller", nightly,
         ["hold", "add", "--caller", caller_number(0), "--reason", "bench: heaviest caller"]),
        ("hold add --caller, a sampled caller", nightly,
         ["hold", "add", "--caller", typical, "--reason", "bench: sampled caller"]),
        ("hold add --query, a queue over one day", nightly,
         ["hold", "add", "--query", day_query, "--reason", "bench: one queue, one day"]),
        (f"erase --caller, the caller of rank {a.erase_rank}", nightly,
         ["erase", "--caller", caller_number(a.erase_rank)]),
        ("ledger verify, every entry", nightly, ["ledger", "verify"]),
    ]
    print(f"{describe(root, a.pg_url)}; {a.calls:,} calls; {callers:,} callers; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for name, config, args in steps:
        skipped = any(name.startswith(k) for k in a.skip)
        if skipped or (a.only and not any(name.startswith(k) for k in a.only)):
            continue
        got = run(config, args, checks=name.startswith("ledger verify"))
        print(f"{name:45} {got['seconds']:8.2f} s  {got['rss_mb']:7.1f} MB peak RSS  "
              f"{int(float(got['lines'])):>10,} output lines   last: {got['last']}", flush=True)
        if name.startswith("hold add --query") and "baseline" not in a.skip:
            baseline(config, day_query, a.calls, a.baseline_seconds)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
