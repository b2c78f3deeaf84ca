"""The bulk write path on PostgreSQL sends its statements pipelined: a batch waits for the server
only where it reads a row, and a statement that fails inside the pipeline still takes the whole
batch back.  PostgreSQL only (marker ``postgres_only``: ``PBXR_TEST_CATALOG=postgresql``):
SQLite has no round trips."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pbx_recorder.catalog import batch_reads, engine, stored_form
from pbx_recorder.errors import CatalogError
from pbx_recorder.recording import ledger
from pbx_recorder.recording.call_seal import check_calls
from tests.unit.test_catalog_bulk import KEY, _call, _catalog, _dump, _hooks

# the waits of a batch, however many calls it holds: BEGIN and its advisory lock, the batch's
# stored call rows (collision checks) and its recordings' ledger entries (a retry appends no second
# ``stored`` entry) read once, the chain head and issued counter read once, the new rows'
# ``INSERT ... RETURNING`` answers read together at the end, COMMIT
WAITS_PER_BATCH = 8


pytestmark = pytest.mark.postgres_only


def _postgres(tmp_path: Path):  # type: ignore[no-untyped-def]
    catalog = _catalog(tmp_path / "cat.db")
    assert engine.is_postgres(catalog._conn())
    return catalog


def test_a_batch_waits_for_the_server_a_fixed_number_of_times(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = _postgres(tmp_path)
    catalog.write_calls([_call(0)], after_store=_hooks())  # type: ignore[arg-type]
    trips, sent = [0], [0]  # waits for the server; statements sent
    sync, execute = psycopg.Pipeline.sync, psycopg.Cursor.execute

    def counted_sync(self: psycopg.Pipeline) -> None:
        trips[0] += 1
        sync(self)

    def counted_execute(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        sent[0] += 1
        if self.connection.info.pipeline_status == psycopg.pq.PipelineStatus.OFF:
            trips[0] += 1  # outside a pipeline every statement waits for its result
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.Pipeline, "sync", counted_sync)
    monkeypatch.setattr(psycopg.Cursor, "execute", counted_execute)
    waits = []
    for first, calls in ((1, 10), (11, 40)):
        trips[0] = sent[0] = 0
        assert catalog.write_calls((_call(i) for i in range(first, first + calls)),  # type: ignore[arg-type]
                                   after_store=_hooks()) == calls
        waits.append(trips[0])
        # each call's row, its seal's and its recording's ledger entries and its recording row
        # travel without waiting
        assert sent[0] - trips[0] >= 4 * calls
    assert waits[0] == waits[1] <= WAITS_PER_BATCH  # four times the calls, not one wait more
    monkeypatch.undo()
    assert ledger.verify_chain(catalog._conn()) == []
    assert catalog._conn().execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 51


def test_a_statement_failing_inside_the_pipeline_takes_the_batch_back(tmp_path: Path) -> None:
    catalog = _postgres(tmp_path)
    catalog.write_calls([_call(0)], after_store=_hooks())  # type: ignore[arg-type]
    before = _dump(catalog._conn())
    bad, recs = _call(2)
    batch = [_call(1), ({**bad, "duration": "soon"}, recs), _call(3)]  # the server refuses the text
    with pytest.raises(CatalogError):
        catalog.write_calls(batch, after_store=_hooks())  # type: ignore[arg-type]
    conn = catalog._conn()
    assert not conn.in_transaction
    assert _dump(conn) == before  # nothing of the batch: no call, recording or ledger entry
    assert catalog.write_calls([_call(1), _call(3)], after_store=_hooks()) == 2  # type: ignore[arg-type]
    assert ledger.verify_chain(conn) == []
    assert [r[0] for r in conn.execute("SELECT seq FROM ledger ORDER BY seq")] == [1, 2, 3, 4, 5, 6]


def _stand_in_after_the_collision_read(monkeypatch: pytest.MonkeyPatch, catalog, call_id: str,  # type: ignore[no-untyped-def]
                                       **columns: object) -> None:
    """Another connection (the pipeline's stand-in row of a recording, which takes no lock)
    inserts ``call_id``'s row after the bulk path has found none and before it writes."""
    original = stored_form.read_back

    def late_stand_in(*args, **kwargs):  # type: ignore[no-untyped-def]
        other = engine.connect(catalog.path)
        names = ["call_id", "updated_at", *columns]
        other.execute(f"INSERT INTO calls ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
                      "ON CONFLICT DO NOTHING", [call_id, 1.0, *columns.values()])
        other.close()
        monkeypatch.setattr(stored_form, "read_back", original)
        return original(*args, **kwargs)

    monkeypatch.setattr(stored_form, "read_back", late_stand_in)


def test_a_stand_in_row_inserted_after_the_collision_read_is_written_over_and_sealed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = _postgres(tmp_path)
    call, recs = _call(1)
    _stand_in_after_the_collision_read(monkeypatch, catalog, str(call["call_id"]))
    assert catalog.write_calls([(call, recs)], after_store=_hooks()) == 1  # type: ignore[arg-type]
    conn = catalog._conn()
    row = conn.execute("SELECT caller_num, agent, started_at FROM calls WHERE call_id = ?",
                       (call["call_id"],)).fetchone()
    assert tuple(row) == (call["caller_num"], call["agent"], call["started_at"])
    assert check_calls(conn, KEY.public_key()) == []  # the seal is over the row as stored
    assert ledger.verify_chain(conn) == []
    assert [r[0] for r in conn.execute("SELECT event FROM ledger ORDER BY seq")] == ["call_sealed", "stored"]


def test_a_row_that_is_not_a_bare_stand_in_is_read_back_before_it_is_sealed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = _postgres(tmp_path)
    call, recs = _call(1)  # (binds no pbx_node: the other writer's value stays, as an upsert keeps it)
    _stand_in_after_the_collision_read(monkeypatch, catalog, str(call["call_id"]), pbx_node="n9")
    moved, check = [], batch_reads.KnownReads.check_inserts

    def watched(self: batch_reads.KnownReads) -> None:
        try:
            check(self)
        except batch_reads.StandInMoved as exc:
            moved.append(exc)
            raise

    monkeypatch.setattr(batch_reads.KnownReads, "check_inserts", watched)
    assert catalog.write_calls([(call, recs)], after_store=_hooks()) == 1  # type: ignore[arg-type]
    assert len(moved) == 1  # the batch's end found the row not in: written again, read on its own
    conn = catalog._conn()
    row = conn.execute("SELECT pbx_node, caller_num FROM calls WHERE call_id = ?",
                       (call["call_id"],)).fetchone()
    assert tuple(row) == ("n9", call["caller_num"])
    assert check_calls(conn, KEY.public_key()) == []
    assert ledger.verify_chain(conn) == []
