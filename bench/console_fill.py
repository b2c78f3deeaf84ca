"""The filled catalog of bench_console.py: N realistic calls loaded in bulk, cached under ``--work``.

The project's write path (``Catalog.write_calls``: per call a collision check, the Ed25519 seal
with its ledger entry, the recording row written, signed and chained) runs at 300-500 calls/s
on this machine (README "Catalog at call-center scale"): 1,000,000 calls would take close to an
hour.  This loader builds every row with the catalog's own code and inserts it as
``Catalog.upsert_call`` / ``upsert_recording`` would, in batches of ``executemany`` (the rows
built by 2 worker processes, one transaction per batch; an interrupted load resumes):

* the call row from ``bench.catalog_data.CallGenerator`` (the calls bench_catalog.py uses), its
  numbers sealed by ``NumberProtection.seal_call`` (encrypted token + blind indexes, as in a
  catalog with encryption on), JSON columns encoded by ``catalog.json_columns.encode_column``, the
  repository's ``updated_at`` default; ``call_tags`` rows copied as the catalog's writes copy them;
* ``call_numbers``: ``NumberProtection.named_numbers`` of the call's numbers, CDR and manifest
  but its own caller and callee, as ``_index_named`` writes them;
* the recording row as ``write_calls`` leaves it (``verified``), manifest sealed by
  ``seal_manifest``.

Left out, and said so next to the figures: the per-call seal column and the ledger entries
(``call_sealed``, ``stored``) with the manifest signature.  No search reads them; they add some
250 bytes per call to other tables.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from bench.catalog_data import AGENTS, CallGenerator
from pbx_recorder.catalog import Catalog, call_tags
from pbx_recorder.catalog.json_columns import encode_column
from pbx_recorder.catalog.number_migration import DONE_SETTING, protect
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import CALL_FIELDS, CLEAR_DEFAULTS, NumberProtection
from pbx_recorder.service.accounts import Accounts

BATCH = 5000
PASSWORD = "bench console password"
#: argon2id at its smallest cost: logging in is not what is measured
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
TEAM = "bench-team"
TEAM_AGENTS = tuple(AGENTS[:12])  # a team lead's 12 agents out of 500
#: account -> (role, teams); the agent account is named after an agent of the calls
USERS = {"bench-admin": ("admin", ()), "bench-lead": ("supervisor", (TEAM,)), AGENTS[7]: ("agent", ()),
         "bench-qa": ("qa", ())}
QA_CALLS = 500  #: calls assigned to the QA reviewer, spread over the whole catalog


def keys(work: Path) -> tuple[bytes, bytes]:
    """(catalog master key, blind-index key), made once per work directory (mode 0600)."""
    path = work / "bench-console.keys"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(os.urandom(64))
    raw = path.read_bytes()
    return raw[:32], raw[32:64]


def numbers_for(key_pair: tuple[bytes, bytes]) -> NumberProtection:
    master, hmac_key = key_pair
    return NumberProtection(NumberCipher(lambda _key_id: master, "bench"), BlindIndex(hmac_key))


def _rows(numbers: NumberProtection, gen: CallGenerator, start: int, count: int,
          now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[tuple[str, str]]]:
    calls, recordings, named = [], [], set()
    for g in gen.calls(start, count):
        call, cid = g.call, str(g.call["call_id"])
        plain = {f: call.get(f, CLEAR_DEFAULTS[f]) for f in CALL_FIELDS}
        sealed = numbers.seal_call(cid, plain)
        own = {sealed["caller_bi"], sealed["callee_bi"]}  # found by the row itself (catalog.named_rows)
        named |= {(bi, cid) for bi in numbers.named_numbers(plain["caller_num"], plain["callee_num"],
                                                             plain["cdr"]) - own}
        calls.append({"updated_at": now, **call, **sealed})
        rec = {**g.recording.row, "state": "verified"}
        manifest = rec["manifest"]
        named |= {(bi, cid) for bi in
                  numbers.named_numbers(manifest.get("cdr"), manifest.get("callee_num")) - own}
        rec["manifest"] = numbers.seal_manifest(str(rec["recording_id"]), manifest)
        recordings.append(rec)
    return calls, recordings, named


def _params(table: str, allowed: list[str], rows: list[dict[str, Any]]) -> tuple[str, list[list[Any]]]:
    cols = [c for c in allowed if c in rows[0]]
    if any(set(r) - set(allowed) for r in rows):
        raise SystemExit(f"bulk loader: unknown {table} columns")
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [[encode_column(c, r.get(c)) for c in cols] for r in rows])


Batch = tuple[tuple[str, list[list[Any]]], tuple[str, list[list[Any]]], list[tuple[str, str]]]


def _batch(job: tuple[tuple[bytes, bytes], dict[str, list[str]], int, float, int, int]) -> Batch:
    """One batch's INSERT parameters (in a worker process): calls, recordings, call_numbers."""
    key_pair, columns, n, now, start, count = job
    gen = CallGenerator(n, now, seed=start + 1)  # each batch its own seed: batches are independent
    calls, recordings, named = _rows(numbers_for(key_pair), gen, start, count, now)
    return (_params("calls", columns["calls"], calls),
            _params("recordings", columns["recordings"], recordings), sorted(named))


def fill(catalog: Catalog, key_pair: tuple[bytes, bytes], n: int, now: float, *, start: int = 0,
         workers: int = 2) -> float:
    """Load calls ``start`` .. ``n - 1`` (each with its recording) into ``catalog``, the rows built
    by ``workers`` processes, inserted here in order, one transaction per batch; calls per second."""
    conn, t0 = catalog._conn(), time.perf_counter()
    # as bench_catalog.py: the catalog is marked fully protected (else every number search also
    # runs the fallback query over clear numbers, a scan): on an empty catalog by the data step
    # itself; when resuming, by its marker directly (every row here was sealed by this loader, and
    # the data step's walk over a filled catalog reads 2N rows)
    if start == 0:
        protect(conn, numbers_for(key_pair))
    else:
        conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) ON CONFLICT(name) "
                     "DO UPDATE SET value = excluded.value",
                     (DONE_SETTING, numbers_for(key_pair).cipher.current_key_id))
    jobs = [(key_pair, catalog._columns, n, now, first, min(BATCH, n - first))
            for first in range(start, n, BATCH)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for k, (calls, recordings, named) in enumerate(pool.imap(_batch, jobs)):
            with catalog.transaction():
                conn.executemany(*calls)
                at = calls[0].split("(", 1)[1].split(")", 1)[0].split(", ").index("call_id")
                call_tags.copy_calls(conn, (row[at] for row in calls[1]))  # (as the catalog's writes)
                conn.executemany(*recordings)
                conn.executemany("INSERT INTO call_numbers (bi, call_id) VALUES (?, ?) "
                                 "ON CONFLICT DO NOTHING", named)
            if k % 20 == 0:
                done = (k + 1) * BATCH
                print(f"  loaded {start + done:,}/{n:,} ({done / (time.perf_counter() - t0):,.0f} calls/s)",
                      flush=True)
    return (n - start) / (time.perf_counter() - t0)


def accounts(catalog: Catalog, now: float) -> None:
    """The bench's accounts (admin, a team lead of 12 agents, one agent, a QA reviewer with
    ``QA_CALLS`` assigned calls), made once."""
    acc = Accounts(catalog.connection(), hasher=CHEAP)
    for name, (role, teams) in USERS.items():
        if acc.get(name) is None:
            acc.add(name, role, PASSWORD, teams=teams, actor="bench", actor_role="host-admin", now=now)
    acc.set_team_agents(TEAM, TEAM_AGENTS, actor="bench", actor_role="host-admin", now=now)
    conn = catalog._conn()
    if conn.execute("SELECT 1 FROM qa_assignments WHERE reviewer = 'bench-qa' LIMIT 1").fetchone() is None:
        total = int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
        step = max(1, total // QA_CALLS)
        ids = [r[0] for r in conn.execute("SELECT call_id FROM calls WHERE started_at IS NOT NULL "
                                          "AND rowid % ? = 0 LIMIT ?", (step, QA_CALLS)).fetchall()]
        with catalog.transaction():
            conn.executemany("INSERT INTO qa_assignments (call_id, reviewer, assigned_by, assigned_at) "
                             "VALUES (?, 'bench-qa', 'bench', ?) ON CONFLICT DO NOTHING",
                             [(i, now) for i in ids])


def open_filled(work: Path, n: int, now: float) -> tuple[Catalog, float, str]:
    """The SQLite catalog of ``n`` calls in ``work``: reused from an earlier run, or loaded now
    (resumed where an interrupted load stopped: every batch is one transaction);
    (catalog, the catalog's "now", what happened)."""
    key_pair = keys(work)
    numbers = numbers_for(key_pair)
    path, meta, partial = (work / f"console-{n}.db", work / f"console-{n}.json",
                           work / f"console-{n}.partial.json")
    if path.exists() and meta.exists():
        now = float(json.loads(meta.read_text())["now"])
        return Catalog(path, clock=lambda: now, numbers=numbers), now, f"reused {path}"
    start = 0
    if path.exists() and partial.exists():
        now = float(json.loads(partial.read_text())["now"])
        catalog = Catalog(path, clock=lambda: now, numbers=numbers)
        start = int(catalog._conn().execute("SELECT COUNT(*) FROM calls").fetchone()[0])
        if start % BATCH:
            raise SystemExit(f"{path}: {start} calls is not a whole number of batches; remove it")
    else:
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        _write(partial, {"calls": n, "now": now})
        catalog = Catalog(path, clock=lambda: now, numbers=numbers)
    rate = fill(catalog, key_pair, n, now, start=start)
    catalog._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _write(meta, {"calls": n, "now": now})  # the cache counts only once the load finished
    how = f"loaded {n - start:,} calls into {path} at {rate:,.0f} calls/s (bulk loader, 2 processes)"
    return catalog, now, how + (f", resumed after {start:,}" if start else "")


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
