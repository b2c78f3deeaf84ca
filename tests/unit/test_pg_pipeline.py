"""The bulk write path on PostgreSQL sends its statements pipelined: a batch waits for the server
only where it reads a row, and a statement that fails inside the pipeline still takes the whole
batch back.  PostgreSQL only (``PBXR_TEST_CATALOG=postgresql``): SQLite has no round trips."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pbx_recorder import ledger
from pbx_recorder.catalog import engine
from pbx_recorder.errors import CatalogError
from tests.unit.test_catalog_bulk import _call, _catalog, _dump, _hooks

# the reads of one call in the bulk path: the collision check, the row read back to be sealed,
# the ledger's entries of the recording (a retry appends no second ``stored`` entry)
READS_PER_CALL = 3


def _postgres(tmp_path: Path):  # type: ignore[no-untyped-def]
    catalog = _catalog(tmp_path / "cat.db")
    if not engine.is_postgres(catalog._conn()):
        pytest.skip("PostgreSQL only (PBXR_TEST_CATALOG=postgresql)")
    return catalog


def test_a_batch_waits_for_the_server_only_at_its_reads(tmp_path: Path,
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
    calls = 10
    assert catalog.write_calls((_call(i) for i in range(1, calls + 1)), after_store=_hooks()) == calls  # type: ignore[arg-type]
    # (+ BEGIN and its advisory lock, the chain head and issued counter read once, COMMIT)
    assert trips[0] <= READS_PER_CALL * calls + 5
    assert sent[0] > 2 * trips[0]  # the writes travel with the reads, not one round trip each
    monkeypatch.undo()
    assert ledger.verify_chain(catalog._conn()) == []
    assert catalog._conn().execute("SELECT COUNT(*) FROM calls").fetchone()[0] == calls + 1


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
