"""Issue 11: the ledger stays one linear hash chain when two processes (two nodes) append to
the same PostgreSQL catalog at once.

Two OS processes, each with its own connection pool (``engine.connect(url)``), start together
behind a barrier and append 200 entries each through ``ledger.append`` (autocommit connection:
each append is its own transaction, serialized by the catalog's advisory write lock).  The
chain must then verify clean with ``ledger.verify_chain``: 400 rows, seq 1..400 without a gap
or a fork, every entry of both writers present, and the two writers' entries interleaved (the
appends really were concurrent, not one process after the other).
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest

from pbx_recorder import ledger
from pbx_recorder.catalog import Catalog, engine
from tests.postgres_server import PostgresServer

pytestmark = [pytest.mark.real, pytest.mark.timeout(240)]

APPENDS = 200


def _append_many(url: str, writer: str, barrier: Any, out: Any) -> None:
    conn = engine.connect(url)
    try:
        barrier.wait(timeout=60)
        for i in range(APPENDS):
            ledger.append(conn, "stored", f"{writer}-{i:03d}", {"writer": writer, "i": i}, time.time())
        out.put((writer, "ok"))
    except Exception as exc:  # reported to the test, which fails naming it
        out.put((writer, repr(exc)))
    finally:
        conn.close()
        engine.close_pools()


def test_two_processes_appending_at_once_keep_one_linear_chain(postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    Catalog(url).close()  # the schema, created once before the writers start
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_append_many, args=(url, w, barrier, out)) for w in ("node-a", "node-b")]
    for p in procs:
        p.start()
    try:
        results = dict(out.get(timeout=180) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert results == {"node-a": "ok", "node-b": "ok"}, results

    conn = engine.connect(url, read_only=True)
    try:
        assert ledger.verify_chain(conn) == []
        rows = conn.execute("SELECT seq, recording_id, prev_hash, hash FROM ledger ORDER BY seq").fetchall()
    finally:
        conn.close()
    assert [r[0] for r in rows] == list(range(1, 2 * APPENDS + 1))
    assert len({r[3] for r in rows}) == len(rows)  # no two rows share a hash
    assert all(rows[i][2] == rows[i - 1][3] for i in range(1, len(rows)))  # each links to the one before
    ids = [r[1] for r in rows]
    for writer in ("node-a", "node-b"):
        mine = [i for i in ids if i.startswith(writer)]
        assert mine == [f"{writer}-{i:03d}" for i in range(APPENDS)]  # all there, in its own order
    switches = sum(1 for a, b in zip(ids, ids[1:], strict=False) if a[:6] != b[:6])
    assert switches > 1, "the writers never interleaved: the appends were not concurrent"
