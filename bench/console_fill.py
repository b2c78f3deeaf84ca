"""The filled catalog of bench_console.py: N realistic calls loaded in bulk, cached under ``--work``.

The project's write path (``Catalog.write_calls``: per call a collision check, the Ed25519 seal
with its ledger entry, the recording row written, signed and chained) runs at 300-500 calls/s
on this machine (README "Catalog at call-center scale"): 1,000,000 calls would take close to an
hour.  This loader builds every row with the catalog's own code and inserts it as
``Catalog.upsert_call`` / ``upsert_recording`` would, in batches of ``executemany``:

* the call row from ``bench.catalog_data.CallGenerator`` (the calls bench_catalog.py uses), its
  numbers sealed by ``NumberProtection.seal_call`` (encrypted token + blind indexes, as in a
  catalog with encryption on), JSON columns encoded by the repository's ``_encode``, the
  repository's ``updated_at`` default; ``call_tags`` rows come from the schema's own trigger;
* ``call_numbers``: ``NumberProtection.named_numbers`` of the call's numbers, CDR and manifest,
  as ``_index_named`` writes them;
* the recording row as ``write_calls`` leaves it (``verified``), manifest sealed by
  ``seal_manifest``.

Left out, and said so next to the figures: the per-call seal column and the ledger entries
(``call_sealed``, ``stored``) with the manifest signature.  No search reads them; they add some
250 bytes per call to other tables.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from bench.catalog_data import AGENTS, CallGenerator
from pbx_recorder.catalog import Catalog
from pbx_recorder.catalog.number_migration import protect
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import CALL_FIELDS, CLEAR_DEFAULTS, NumberProtection
from pbx_recorder.catalog.repository import _encode
from pbx_recorder.service.accounts import Accounts

BATCH = 5000
PASSWORD = "bench console password"
#: argon2id at its smallest cost: logging in is not what is measured
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
TEAM = "bench-team"
TEAM_AGENTS = tuple(AGENTS[:12])  # a team lead's 12 agents out of 500
#: account -> (role, teams); the agent account is named after an agent of the calls
USERS = {"bench-admin": ("admin", ()), "bench-lead": ("supervisor", (TEAM,)), AGENTS[7]: ("agent", ())}


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


def _rows(catalog: Catalog, numbers: NumberProtection, gen: CallGenerator, start: int, count: int,
          now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[tuple[str, str]]]:
    calls, recordings, named = [], [], set()
    for g in gen.calls(start, count):
        call, cid = g.call, str(g.call["call_id"])
        plain = {f: call.get(f, CLEAR_DEFAULTS[f]) for f in CALL_FIELDS}
        named |= {(bi, cid) for bi in numbers.named_numbers(plain["caller_num"], plain["callee_num"],
                                                             plain["cdr"])}
        calls.append({"updated_at": now, **call, **numbers.seal_call(cid, plain)})
        rec = {**g.recording.row, "state": "verified"}
        manifest = rec["manifest"]
        named |= {(bi, cid) for bi in numbers.named_numbers(manifest.get("cdr"), manifest.get("callee_num"))}
        rec["manifest"] = numbers.seal_manifest(str(rec["recording_id"]), manifest)
        recordings.append(rec)
    return calls, recordings, named


def _insert(conn: Any, table: str, allowed: list[str], rows: list[dict[str, Any]]) -> None:
    cols = [c for c in allowed if c in rows[0]]
    if any(set(r) - set(allowed) for r in rows):
        raise SystemExit(f"bulk loader: unknown {table} columns")
    conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                     [[_encode(c, r.get(c)) for c in cols] for r in rows])


def fill(catalog: Catalog, numbers: NumberProtection, n: int, now: float, progress: bool = True) -> float:
    """Load ``n`` calls (each with its recording) into an empty ``catalog``; calls per second."""
    gen, conn, t0 = CallGenerator(n, now), catalog._conn(), time.perf_counter()
    # as bench_catalog.py: the empty catalog is marked fully protected (no clear-number fallback
    # query), which every row loaded below is; a walk over the filled catalog would read 2N rows
    protect(conn, numbers)
    for start in range(0, n, BATCH):
        calls, recordings, named = _rows(catalog, numbers, gen, start, min(BATCH, n - start), now)
        with catalog.transaction():
            _insert(conn, "calls", catalog._columns["calls"], calls)
            _insert(conn, "recordings", catalog._columns["recordings"], recordings)
            conn.executemany("INSERT INTO call_numbers (bi, call_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             sorted(named))
        if progress and (start // BATCH) % 20 == 0:
            done = start + len(calls)
            print(f"  loaded {done:,}/{n:,} ({done / (time.perf_counter() - t0):,.0f} calls/s)", flush=True)
    return n / (time.perf_counter() - t0)


def accounts(catalog: Catalog, now: float) -> None:
    """The bench's accounts (admin, a team lead of 12 agents, one agent), made once."""
    acc = Accounts(catalog.connection(), hasher=CHEAP)
    for name, (role, teams) in USERS.items():
        if acc.get(name) is None:
            acc.add(name, role, PASSWORD, teams=teams, actor="bench", actor_role="host-admin", now=now)
    acc.set_team_agents(TEAM, TEAM_AGENTS, actor="bench", actor_role="host-admin", now=now)


def open_filled(work: Path, n: int, now: float) -> tuple[Catalog, NumberProtection, float, str]:
    """The SQLite catalog of ``n`` calls in ``work`` (loaded now, or reused from an earlier run);
    (catalog, numbers, the catalog's "now", what happened)."""
    numbers = numbers_for(keys(work))
    path, meta = work / f"console-{n}.db", work / f"console-{n}.json"
    if path.exists() and meta.exists():
        now = float(json.loads(meta.read_text())["now"])
        return Catalog(path, clock=lambda: now, numbers=numbers), numbers, now, f"reused {path}"
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    catalog = Catalog(path, clock=lambda: now, numbers=numbers)
    rate = fill(catalog, numbers, n, now)
    catalog._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tmp = meta.with_suffix(".tmp")
    tmp.write_text(json.dumps({"calls": n, "now": now}))
    os.replace(tmp, meta)  # the cache counts only once the load finished
    return catalog, numbers, now, f"loaded {n:,} calls into {path} at {rate:,.0f} calls/s (bulk loader)"
