"""Issue 11: the ledger stays one linear hash chain when two processes (two nodes) append to
the same PostgreSQL catalog at once.

Two OS processes, each with its own connection pool (``engine.connect(url)``), start together
behind a barrier and append 200 entries each through ``ledger.append`` (autocommit connection:
each append is its own transaction, serialized by the catalog's advisory write lock).  The
chain must then verify clean with ``ledger.verify_chain``: 400 rows, seq 1..400 without a gap
or a fork, every entry of both writers present, and the two writers' entries interleaved (the
appends really were concurrent, not one process after the other).  The same with the bulk
write path: two processes writing batches of sealed calls through ``Catalog.write_calls``
(pipelined on PostgreSQL) leave one chain and a valid seal on every call row, and so do two
processes whose threads write calls one at a time through group commit (``Catalog.grouped``).
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest

from pbx_recorder.catalog import Catalog, engine
from pbx_recorder.recording import ledger
from pbx_recorder.recording.call_seal import CallSealer, check_calls
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


def _run_two_writers(target: Any, url: str) -> None:
    """``target(url, writer, barrier, out)`` in two spawned processes ("node-a", "node-b") that
    start together at a barrier; each must report "ok"."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, w, barrier, out)) for w in ("node-a", "node-b")]
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


def test_two_processes_appending_at_once_keep_one_linear_chain(postgres: PostgresServer) -> None:
    url = postgres.fresh_schema()
    Catalog(url).close()  # the schema, created once before the writers start
    _run_two_writers(_append_many, url)

    conn = engine.connect(url, read_only=True)
    try:
        assert ledger.verify_chain(conn) == []
        rows = conn.execute("SELECT seq, recording_id, prev_hash, hash FROM ledger ORDER BY seq").fetchall()
    finally:
        conn.close()
    assert [r[0] for r in rows] == list(range(1, 2 * APPENDS + 1))
    assert len({r[3] for r in rows}) == len(rows)  # no two rows share a hash
    # each links to the one before: its hash is recomputed over that row's (verify_chain above;
    # the link is not stored again, ledger.append), so a fork would fail there
    assert {r[2] for r in rows} == {""}
    ids = [r[1] for r in rows]
    for writer in ("node-a", "node-b"):
        mine = [i for i in ids if i.startswith(writer)]
        assert mine == [f"{writer}-{i:03d}" for i in range(APPENDS)]  # all there, in its own order
    switches = sum(1 for a, b in zip(ids, ids[1:], strict=False) if a[:6] != b[:6])
    assert switches > 1, "the writers never interleaved: the appends were not concurrent"


BATCHES, PER_BATCH = 8, 10


def _write_batches(url: str, writer: str, barrier: Any, out: Any) -> None:
    """One node's shipper: batches of sealed calls with their signed, chained recordings
    (``Catalog.write_calls``, pipelined on PostgreSQL)."""
    from tests.unit.test_catalog_bulk import KEY, _call, _hooks

    catalog = Catalog(url, sealer=CallSealer(KEY))
    try:
        barrier.wait(timeout=60)
        base = 0 if writer == "node-a" else 10_000
        for b in range(BATCHES):
            first = base + b * PER_BATCH
            catalog.write_calls((_call(i) for i in range(first, first + PER_BATCH)), after_store=_hooks())
        out.put((writer, "ok"))
    except Exception as exc:  # reported to the test, which fails naming it
        out.put((writer, repr(exc)))
    finally:
        catalog.close()
        engine.close_pools()


def test_two_nodes_writing_call_batches_at_once_keep_one_chain_and_every_seal(
        postgres: PostgresServer) -> None:
    from tests.unit.test_catalog_bulk import KEY

    url = postgres.fresh_schema()
    Catalog(url).close()
    _run_two_writers(_write_batches, url)

    conn = engine.connect(url, read_only=True)
    try:
        assert ledger.verify_chain(conn) == []
        assert check_calls(conn, KEY.public_key()) == []  # every call row sealed as written
        calls = conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        seqs = [r[0] for r in conn.execute("SELECT seq FROM ledger ORDER BY seq").fetchall()]
        events = conn.execute("SELECT event, COUNT(*) FROM ledger GROUP BY event ORDER BY 1").fetchall()
    finally:
        conn.close()
    total = 2 * BATCHES * PER_BATCH
    assert calls == total
    assert seqs == list(range(1, 2 * total + 1))  # one call_sealed and one stored entry per call
    assert [tuple(e) for e in events] == [("call_sealed", total), ("stored", total)]


def test_two_nodes_writing_calls_through_group_commit_keep_one_chain_and_every_seal(
        postgres: PostgresServer) -> None:
    """Each node's threads write calls one at a time through ``Catalog.grouped`` (shared
    transactions, a savepoint per call)."""
    from tests.unit.test_catalog_group_commit import check_two_writers, write_grouped

    url = postgres.fresh_schema()
    Catalog(url).close()
    _run_two_writers(write_grouped, url)
    conn = engine.connect(url, read_only=True)
    try:
        check_two_writers(conn)
    finally:
        conn.close()
