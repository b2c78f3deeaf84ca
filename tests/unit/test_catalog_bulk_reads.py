"""The bulk path reads a batch's stored call rows and ledger entries once, up front
(``catalog.batch_reads``): what it writes stays what the per-call path writes, also when a batch
names a call or a recording twice, repeats an earlier batch, or reuses a call id inside itself.
Both engines."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.errors import CallIdCollision
from pbx_recorder.recording import ledger
from pbx_recorder.recording.call_seal import check_calls
from tests.unit.test_catalog_bulk import KEY, NOW, _call, _catalog, _dump, _hooks, one_at_a_time


def _events(catalog: Catalog) -> list[tuple[str, str]]:
    return [(str(r[0]), str(r[1])) for r in catalog._conn().execute(
        "SELECT event, recording_id FROM ledger ORDER BY seq")]


def test_a_call_named_twice_in_a_batch_is_written_as_the_per_call_path_writes_it(tmp_path: Path) -> None:
    first, again = _call(1)
    later = ({**first, "status": "failed", "agent": "a2"}, again)  # the same call, its row changed
    batch = [first_pair := (first, again), _call(2), later]
    one, bulk = _catalog(tmp_path / "one.db"), _catalog(tmp_path / "bulk.db")
    one_at_a_time(one, batch)
    assert bulk.write_calls(batch, after_store=_hooks()) == 3  # type: ignore[arg-type]
    assert _dump(bulk._conn()) == _dump(one._conn())
    row = bulk._conn().execute("SELECT status, agent FROM calls WHERE call_id = ?",
                               (first_pair[0]["call_id"],)).fetchone()
    assert tuple(row) == ("failed", "a2")  # the second write saw the first (no collision)
    # one seal entry per call, one ``stored`` entry per recording: the second look read the table
    assert _events(bulk) == [("call_sealed", "call:n1_1.0"), ("stored", "n1_1.0_call001"),
                             ("call_sealed", "call:n1_2.0"), ("stored", "n1_2.0_call001")]
    assert ledger.verify_chain(bulk._conn()) == []
    assert check_calls(bulk._conn(), KEY.public_key()) == []


def test_a_repeated_batch_appends_nothing_and_changes_nothing(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    batch = [_call(i) for i in range(4)]
    assert catalog.write_calls(batch, after_store=_hooks()) == 4  # type: ignore[arg-type]
    before = _dump(catalog._conn())
    assert catalog.write_calls(batch, after_store=_hooks()) == 4  # type: ignore[arg-type]  # a retry
    assert _dump(catalog._conn()) == before  # the entries read up front said: stored already
    assert len(_events(catalog)) == 8


def test_a_call_id_reused_inside_one_batch_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    catalog.write_calls([_call(0)], after_store=_hooks())  # type: ignore[arg-type]
    before = _dump(catalog._conn())
    call, recs = _call(5)
    clash = ({**call, "started_at": NOW - 999}, recs)  # another call that got the same id
    with pytest.raises(CallIdCollision):
        catalog.write_calls([_call(4), (call, recs), clash], after_store=_hooks())  # type: ignore[arg-type]
    assert _dump(catalog._conn()) == before
    assert not catalog._conn().in_transaction
    # and the next batch reads for itself (nothing of the failed one is left to be served)
    assert catalog.write_calls([_call(4), _call(5)], after_store=_hooks()) == 2  # type: ignore[arg-type]
    assert ledger.verify_chain(catalog._conn()) == []
    assert len(_events(catalog)) == 6
