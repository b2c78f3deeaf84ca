"""Group commit (``catalog.group_commit``): per-call writes of several threads share transactions;
a unit that fails is rolled back alone (the group run again with savepoints: none when no unit
fails); a failed commit fails every unit of its group and nothing is reported stored; the hooks
that publish the ledger head run only after a commit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pbx_recorder.catalog import Catalog, engine
from pbx_recorder.errors import CallIdCollision, CatalogError
from pbx_recorder.recording import ledger
from pbx_recorder.recording.call_seal import CallSealer
from pbx_recorder.recording.chain_head import ChainHeadHook
from tests.unit.test_catalog_bulk import KEY, NOW, _call, _hooks

WRITERS = 6


def _catalog(path: Path) -> Catalog:
    return Catalog(path, clock=lambda: NOW, sealer=CallSealer(KEY, clock=lambda: NOW))


def _write_one(catalog: Catalog, i: int) -> str:
    """The per-call path (as the shipper writes a call): the call row, its recording, the hooks."""
    call, [rec] = _call(i)
    catalog.upsert_call(call)
    rid = str(rec.row["recording_id"])
    catalog.upsert_recording({**rec.row, "state": "stored"})
    for hook in _hooks():
        extra = hook(catalog, rid, rec.manifest, rec.record)
        if extra:
            catalog.upsert_recording({"recording_id": rid, **extra})
    catalog.mark_state(rid, "verified")
    return rid


def _wait_for(predicate: Any) -> None:
    done = threading.Event()
    while not predicate():
        done.wait(0.001)


def test_concurrent_writers_share_transactions(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    group = catalog.group_commit
    first_started = threading.Event()

    def first() -> str:
        first_started.set()  # the leader's transaction is open: the others queue behind it
        _wait_for(lambda: len(group._queue) == WRITERS - 1)
        return _write_one(catalog, 0)

    results: dict[int, str] = {}
    threads = [threading.Thread(target=lambda: results.__setitem__(0, catalog.grouped(first)))]
    threads[0].start()
    first_started.wait()
    for i in range(1, WRITERS):
        t = threading.Thread(target=lambda i=i: results.__setitem__(i, catalog.grouped(
            lambda: _write_one(catalog, i))))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    assert sorted(results) == list(range(WRITERS))
    assert (group.commits, group.units) == (2, WRITERS)  # the first alone, the other five together
    conn = catalog._conn()
    assert conn.execute("SELECT COUNT(*) FROM recordings WHERE state = 'verified'").fetchone()[0] == WRITERS
    assert ledger.verify_chain(conn) == []
    catalog.close()


def test_a_failing_unit_is_rolled_back_alone(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    call, _ = _call(1)

    def collides() -> None:
        _write_one(catalog, 2)  # written, then taken back with its unit
        catalog.upsert_call({**call, "started_at": NOW + 999})  # another call with the same id

    outcomes = catalog.group_commit.run_all([lambda: _write_one(catalog, 1), collides,
                                             lambda: _write_one(catalog, 3)])
    assert outcomes[0] == ("n1_1.0_call001", None) and outcomes[2] == ("n1_3.0_call001", None)
    assert isinstance(outcomes[1][1], CallIdCollision)
    assert catalog.group_commit.commits == 1
    conn = catalog._conn()
    assert [r[0] for r in conn.execute("SELECT call_id FROM calls ORDER BY 1")] == ["n1_1.0", "n1_3.0"]
    assert ledger.verify_chain(conn) == []
    catalog.close()


def _failing_commit(catalog: Catalog) -> list[int]:
    """Make the catalog's next transaction fail at its commit (a disk full, a lost server)."""
    real, failed = catalog.transaction, []

    @contextmanager
    def transaction() -> Iterator[Any]:
        with real() as conn:
            yield conn
            if not failed:
                failed.append(1)
                raise CatalogError("catalog query failed: disk I/O error")

    catalog.transaction = transaction  # type: ignore[method-assign]
    return failed


def test_a_failed_commit_fails_every_unit_and_stores_nothing(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    _failing_commit(catalog)
    outcomes = catalog.group_commit.run_all([lambda i=i: _write_one(catalog, i) for i in range(3)])
    assert [type(error) for _, error in outcomes] == [CatalogError] * 3
    assert all(result is None for result, _ in outcomes)  # none is reported stored
    conn = catalog._conn()
    assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
    assert catalog.group_commit.run_all([lambda: _write_one(catalog, 0)]) == [("n1_0.0_call001", None)]
    catalog.close()


class Publisher:
    """An ``after_commit`` hook like ``ChainHeadHook``: notes the ledger head it would publish."""

    after_commit = True

    def __init__(self) -> None:
        self.published: list[tuple[str, int]] = []

    def __call__(self, catalog: Any, recording_id: str, manifest: Any, record: Any = None) -> None:
        conn = ledger.connection_of(catalog)
        assert not conn.in_transaction  # never inside the transaction that made the head
        self.published.append((recording_id, conn.execute("SELECT MAX(seq) FROM ledger").fetchone()[0]))


def test_the_chain_head_hook_runs_after_the_commit() -> None:
    assert ChainHeadHook.after_commit is True


def test_a_rolled_back_batch_publishes_no_head(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    publisher = Publisher()
    _failing_commit(catalog)
    with pytest.raises(CatalogError):
        catalog.write_calls([_call(i) for i in range(3)], after_store=[*_hooks(), publisher])
    assert publisher.published == []  # the heads of the rolled-back entries were never published
    catalog.write_calls([_call(i) for i in range(2)], after_store=[*_hooks(), publisher])
    # after the commit, once per recording, the committed head (2 calls x 2 entries)
    assert publisher.published == [("n1_0.0_call001", 4), ("n1_1.0_call001", 4)]
    catalog.close()


def test_a_shipment_whose_commit_fails_publishes_nothing_and_is_retried(tmp_path: Path) -> None:
    from pbx_recorder.recording.manifest import Manifest, ManifestFile
    from pbx_recorder.recording.shipper import Shipper
    from pbx_recorder.recording.signing import SignAfterStore
    from pbx_recorder.recording.spool import Spool
    from storage.local import LocalTier

    catalog, spool, publisher = _catalog(tmp_path / "cat.db"), Spool(tmp_path / "spool"), Publisher()
    src = tmp_path / "a.wav"
    src.write_bytes(b"RIFF" + bytes(4000))
    rid = "n1_1.0_call001"
    spool.spool_recording(rid, [src], Manifest(recording_id=rid, call_id="n1_1.0", created_at=NOW,
                                               files=(ManifestFile("a.wav", 0, "", 1.0),)))
    now = [NOW]
    shipper = Shipper(spool, catalog, lambda region: LocalTier("hot", tmp_path / "hot"),
                      after_store=[SignAfterStore(KEY), ledger.StoredLedgerHook(lambda: NOW), publisher],
                      clock=lambda: now[0])
    _failing_commit(catalog)
    assert shipper.ship_once().retrying == [rid]
    assert publisher.published == [] and spool.is_complete(rid) and catalog.get_recording(rid) is None
    assert catalog._conn().execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
    now[0] += 10
    assert shipper.ship_once().shipped == [rid]
    assert publisher.published == [(rid, 1)] and catalog.get_recording(rid)["state"] == "verified"
    catalog.close()


THREADS, PER_THREAD = 4, 8


def write_grouped(target: str, writer: str, barrier: Any, out: Any) -> None:
    """One node: THREADS threads writing calls one at a time through group commit (spawned; the
    two-process tests on SQLite here and on PostgreSQL in tests/real use it)."""
    from pbx_recorder.catalog import engine

    catalog = _catalog(Path(target)) if not engine.is_url(target) else Catalog(
        target, clock=lambda: NOW, sealer=CallSealer(KEY, clock=lambda: NOW))
    base = 0 if writer == "node-a" else 10_000
    errors: list[str] = []

    def thread(t: int) -> None:
        try:
            for k in range(PER_THREAD):
                i = base + t * 100 + k
                catalog.grouped(lambda i=i: _write_one(catalog, i))
        except Exception as exc:  # reported to the test, which fails naming it
            errors.append(repr(exc))

    try:
        barrier.wait(timeout=60)
        threads = [threading.Thread(target=thread, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        out.put((writer, errors[0] if errors else "ok"))
    finally:
        catalog.close()
        engine.close_pools()


def check_two_writers(conn: Any) -> None:
    """One linear chain, every call row sealed as written, every call of both writers there."""
    from pbx_recorder.recording.call_seal import check_calls

    assert ledger.verify_chain(conn) == []
    assert check_calls(conn, KEY.public_key()) == []
    total = 2 * THREADS * PER_THREAD
    assert conn.execute("SELECT COUNT(*) FROM recordings WHERE state = 'verified'").fetchone()[0] == total
    seqs = [r[0] for r in conn.execute("SELECT seq FROM ledger ORDER BY seq").fetchall()]
    assert seqs == list(range(1, 2 * total + 1))  # call_sealed and stored, one each a call


@pytest.mark.sqlite_only  # (the same on PostgreSQL: tests/real/test_postgres_concurrent_chain.py)
def test_two_processes_writing_through_group_commit_keep_one_chain(tmp_path: Path) -> None:
    import multiprocessing

    target = str(tmp_path / "cat.db")
    _catalog(Path(target)).close()
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=write_grouped, args=(target, w, barrier, out)) for w in ("node-a", "node-b")]
    for p in procs:
        p.start()
    try:
        results = dict(out.get(timeout=120) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=30)
    assert results == {"node-a": "ok", "node-b": "ok"}, results
    catalog = _catalog(Path(target))
    check_two_writers(catalog._conn())
    catalog.close()


@pytest.mark.sqlite_only  # reads SQLite's statement trace
def test_the_shipper_writes_a_recording_row_once_when_its_hooks_need_no_row(tmp_path: Path) -> None:
    from pbx_recorder.recording import manifest_copy, stored_manifest
    from pbx_recorder.recording.manifest import Manifest, ManifestFile
    from pbx_recorder.recording.shipper import Shipper
    from pbx_recorder.recording.signing import SignAfterStore, verify_manifest
    from pbx_recorder.recording.spool import Spool
    from storage.local import LocalTier
    from tests.unit.catalog_plan_support import traced

    catalog, spool, publisher = _catalog(tmp_path / "cat.db"), Spool(tmp_path / "spool"), Publisher()
    src = tmp_path / "a.wav"
    src.write_bytes(b"RIFF" + bytes(4000))
    rid = "n1_1.0_call001"
    spool.spool_recording(rid, [src], Manifest(recording_id=rid, call_id="n1_1.0", created_at=NOW,
                                               files=(ManifestFile("a.wav", 0, "", 1.0),)))
    tier = LocalTier("hot", tmp_path / "hot")
    shipper = Shipper(spool, catalog, lambda region: tier,
                      after_store=[SignAfterStore(KEY), ledger.StoredLedgerHook(lambda: NOW), publisher])
    with traced(catalog.shared_writer()) as statements:  # group commit writes through it
        assert shipper.ship_once().shipped == [rid]
    writes = [s for s in statements if "recordings" in s.split("(")[0]
              and s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(writes) == 1  # written once, 'verified', with the hooks' fields (it was three writes)
    row = catalog.get_recording(rid)
    signed = stored_manifest.read_signed(row, tier, None)
    assert row["state"] == "verified" and verify_manifest(signed, row["signature"], KEY.public_key())
    assert row["manifest_sha256"] == manifest_copy.signed_sha256(signed)
    assert publisher.published == [(rid, 1)] and ledger.verify_chain(catalog._conn()) == []
    catalog.close()


@pytest.mark.sqlite_only  # SQLite's per-connection page cache (PostgreSQL's is the server's)
def test_leaders_on_different_threads_write_through_one_connection(tmp_path: Path) -> None:
    """A commit by another connection empties a SQLite connection's page cache at its next
    transaction: every leader writes through the catalog's one writer connection, so the index
    pages a call touches stay cached from one group to the next whichever thread leads; the
    leader's own connection is its own again after the group."""
    catalog = _catalog(tmp_path / "cat.db")
    used: list[tuple[str, Any]] = []

    def unit(i: int) -> str:
        used.append((threading.current_thread().name, catalog._conn()))
        return _write_one(catalog, i)

    mine = catalog._conn()
    threads = [threading.Thread(target=lambda i=i: catalog.grouped(lambda: unit(i))) for i in range(4)]
    for t in threads:  # one after the other: each thread leads its own group
        t.start()
        t.join()
    catalog.grouped(lambda: unit(9))  # and this thread too
    writer = catalog.shared_writer()
    assert writer is not None and writer is not mine
    assert len({ident for ident, _ in used}) == 5 and all(conn is writer for _, conn in used)
    assert catalog.group_commit.commits == 5
    assert catalog._conn() is mine and not writer.in_transaction
    assert writer.execute("PRAGMA cache_size").fetchone()[0] == -engine.WRITER_CACHE_KIB
    assert mine.execute("PRAGMA cache_size").fetchone()[0] == -engine.CACHE_KIB
    assert mine.execute("SELECT COUNT(*) FROM recordings WHERE state = 'verified'").fetchone()[0] == 5
    assert ledger.verify_chain(mine) == []
    catalog.close()


@pytest.mark.sqlite_only
def test_a_writer_connection_that_cannot_be_opened_fails_the_group(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = _catalog(tmp_path / "cat.db")

    def refuse() -> None:
        raise CatalogError("cannot open catalog: disk I/O error")

    monkeypatch.setattr(catalog, "shared_writer", refuse)
    with pytest.raises(CatalogError, match="disk I/O error"):
        catalog.grouped(lambda: _write_one(catalog, 1))
    assert catalog._conn().execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0
    assert catalog.group_commit.commits == 0
    catalog.close()


@pytest.mark.sqlite_only
def test_the_writer_checkpoints_less_often(tmp_path: Path) -> None:
    """The writer's checkpoint interval is longer (the index pages the next calls dirty again are
    written into the file once for many calls), and its WAL is cut back only beyond twice that;
    every other connection keeps SQLite's defaults."""
    catalog = _catalog(tmp_path / "cat.db")
    writer = catalog.shared_writer()
    assert writer is not None
    assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == engine.WRITER_CHECKPOINT_PAGES
    page = writer.execute("PRAGMA page_size").fetchone()[0]
    limit = writer.execute("PRAGMA journal_size_limit").fetchone()[0]
    assert limit >= 2 * engine.WRITER_CHECKPOINT_PAGES * page
    assert catalog._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    catalog.close()


@pytest.mark.sqlite_only
def test_a_bulk_batch_is_written_through_the_writer_without_a_savepoint(tmp_path: Path) -> None:
    """write_calls takes the writer as group commit's leader in a transaction of its own: no
    savepoint (it would journal every page of the batch), all or nothing as before."""
    from tests.unit.catalog_plan_support import traced

    catalog = _catalog(tmp_path / "cat.db")
    writer = catalog.shared_writer()
    with traced(writer) as statements:
        assert catalog.write_calls((_call(i) for i in range(3)), after_store=_hooks()) == 3
    assert not any("SAVEPOINT" in s.upper() for s in statements)
    assert sum(s.lstrip().upper().startswith("BEGIN") for s in statements) == 1
    assert not catalog.group_commit._leading and catalog._conn() is not writer
    def failing() -> Iterator[Any]:  # the batch's source fails after one call was written
        yield _call(3)
        raise RuntimeError("the source of the batch failed")

    with pytest.raises(RuntimeError, match="source of the batch"):
        catalog.write_calls(failing(), after_store=_hooks())
    conn = catalog._conn()
    assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 3  # nothing of the failed batch
    assert not writer.in_transaction and not catalog.group_commit._leading
    assert ledger.verify_chain(conn) == []
    catalog.close()


@pytest.mark.sqlite_only  # reads SQLite's statement trace
def test_a_group_without_a_failing_unit_runs_no_savepoint(tmp_path: Path) -> None:
    """A savepoint copies every page a unit changes to SQLite's statement journal: a group whose
    units all succeed runs none, one transaction, each unit once."""
    from tests.unit.catalog_plan_support import traced

    catalog = _catalog(tmp_path / "cat.db")
    runs: list[int] = []

    def unit(i: int) -> str:
        runs.append(i)
        return _write_one(catalog, i)

    with traced(catalog.shared_writer()) as statements:
        outcomes = catalog.group_commit.run_all([lambda i=i: unit(i) for i in range(4)])
    assert [error for _, error in outcomes] == [None] * 4 and runs == [0, 1, 2, 3]
    assert not any("SAVEPOINT" in s.upper() for s in statements)
    assert sum(s.lstrip().upper().startswith("BEGIN") for s in statements) == 1
    assert catalog.group_commit.commits == 1 and catalog.group_commit.units == 4
    catalog.close()


@pytest.mark.sqlite_only  # reads SQLite's statement trace (the same outcome on PostgreSQL: the test above)
def test_a_failing_unit_makes_the_group_run_again_with_savepoints(tmp_path: Path) -> None:
    """The first run is rolled back whole; in the second each unit has its savepoint: the others
    are stored once (no second call row, no doubled ledger entry), the failing one's caller gets
    its error."""
    from tests.unit.catalog_plan_support import traced

    catalog = _catalog(tmp_path / "cat.db")
    runs: list[int] = []

    def unit(i: int) -> str:
        runs.append(i)
        if i == 2:
            raise ValueError("this unit's own failure")
        return _write_one(catalog, i)

    with traced(catalog.shared_writer()) as statements:
        outcomes = catalog.group_commit.run_all([lambda i=i: unit(i) for i in range(4)])
    assert [r for r, _ in outcomes] == ["n1_0.0_call001", "n1_1.0_call001", None, "n1_3.0_call001"]
    assert isinstance(outcomes[2][1], ValueError)
    assert [e for i, (_, e) in enumerate(outcomes) if i != 2] == [None] * 3
    assert runs == [0, 1, 2, 0, 1, 2, 3]  # (the first run stopped at the failure)
    assert sum(s.upper().startswith("SAVEPOINT") for s in statements) == 4
    conn = catalog._conn()
    stored = [r[0] for r in conn.execute("SELECT call_id FROM calls ORDER BY 1")]
    assert stored == ["n1_0.0", "n1_1.0", "n1_3.0"]
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 6  # call_sealed + stored, each once
    assert ledger.verify_chain(conn) == []
    assert catalog.group_commit.commits == 1
    catalog.close()


def test_a_failing_unit_alone_is_not_run_again(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    runs: list[int] = []

    def unit() -> None:
        runs.append(1)
        _write_one(catalog, 5)
        raise ValueError("failed after its writes")

    with pytest.raises(ValueError, match="after its writes"):
        catalog.group_commit.run(unit)
    conn = catalog._conn()
    assert runs == [1] and conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
    assert catalog.group_commit.run(lambda: _write_one(catalog, 6)) == "n1_6.0_call001"
    assert ledger.verify_chain(conn) == []
    catalog.close()
