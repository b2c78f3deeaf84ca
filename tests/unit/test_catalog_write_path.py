"""The per-call catalog writes (daemon, pipeline, shipper hooks) stay flat as the catalog grows.

At 10M calls one call's writes took 2.6 s because the ledger hook looked a recording up by id
in an unindexed ledger.  Two views of the same property: every lookup the write path runs is
planned on an index (EXPLAIN QUERY PLAN), and the work SQLite does for one call (its virtual
machine steps) does not grow with the number of calls already in the catalog.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder.catalog import Catalog
from pbx_recorder.recording.call_seal import CallSealer
from pbx_recorder.recording.ledger import StoredLedgerHook, connection_of
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.shipper import ShipRecord
from pbx_recorder.recording.signing import SignAfterStore
from storage.base import StoredObject
from tests.unit.catalog_plan_support import big_scans, lookups, plan, traced

NOW = 1_780_000_000.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
# reading the newest row of a chain from the end of its primary key: one step whatever the size
_TAIL_READ = re.compile(r"ORDER BY \w+ DESC LIMIT 1\s*$", re.IGNORECASE)


def write_one_call(catalog: Catalog, i: int) -> None:
    """What the daemon, the pipeline and the shipper write for one finished call, in their order."""
    call_id, rid = f"n1_{i}.0", f"n1_{i}.0-r1"
    catalog.upsert_call({"call_id": call_id, "caller_num": f"1380000{i:04d}", "callee_num": "4001",
                         "agent": f"agent{i % 7}", "queue": "sales", "status": "answered",
                         "consent_decision": "granted", "tags": ["vip"], "started_at": NOW + i})
    manifest = Manifest(recording_id=rid, call_id=call_id, files=(ManifestFile("a.wav", 10, "ab" * 32, 3.0),),
                        created_at=NOW + i)
    catalog.upsert_recording({"recording_id": rid, "call_id": call_id, "state": "spooled",
                              "created_at": NOW + i})
    catalog.get_recording(rid)
    obj = StoredObject("hot", f"2026/{rid}.wav", 10, "cd" * 32)
    catalog.upsert_recording({"recording_id": rid, "call_id": call_id, "state": "stored", "tier": "hot",
                              "storage_key": obj.key, "sha256": obj.sha256, "manifest": manifest.to_dict(),
                              "created_at": NOW + i})
    record = ShipRecord(rid, call_id, manifest, None, (obj,), ("audio",))  # type: ignore[arg-type]
    extra = SignAfterStore(KEY)(catalog, rid, manifest, record)
    catalog.upsert_recording({"recording_id": rid, **extra})
    StoredLedgerHook(clock=lambda: NOW + i)(catalog, rid, manifest, record)
    catalog.mark_state(rid, "verified")


def _catalog(tmp_path: Path, calls: int) -> Catalog:
    catalog = Catalog(tmp_path / f"cat{calls}.db", clock=lambda: NOW,
                      sealer=CallSealer(KEY, clock=lambda: NOW))
    for i in range(calls):
        write_one_call(catalog, i)
    return catalog


@pytest.mark.sqlite_only  # SQLite query plans and statement counters
def test_every_lookup_of_the_write_path_is_planned_on_an_index(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, 3)
    conn = connection_of(catalog)
    with traced(conn) as statements:
        write_one_call(catalog, 99)
    checked = [s for s in lookups(statements) if not _TAIL_READ.search(s)]
    assert any("FROM ledger WHERE recording_id" in s for s in checked)  # the hook's lookup is among them
    scans = {s: big_scans(plan(conn, s)) for s in checked}
    assert {s: p for s, p in scans.items() if p} == {}


def _vm_steps(conn: sqlite3.Connection, work: object) -> int:
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(tick, 100)
    try:
        work()  # type: ignore[operator]
    finally:
        conn.set_progress_handler(None, 0)
    return steps[0]


@pytest.mark.slow  # (about 15 s: handed out first, tests/conftest.py)
@pytest.mark.sqlite_only  # SQLite query plans and statement counters
def test_one_call_costs_the_same_in_a_small_and_a_ten_times_larger_catalog(tmp_path: Path) -> None:
    costs = []
    for size in (150, 1500):
        catalog = _catalog(tmp_path, size)
        conn = connection_of(catalog)
        costs.append(_vm_steps(conn, lambda c=catalog, n=size: [write_one_call(c, n + k) for k in range(5)]))
        catalog.close()
    small, large = costs
    assert large < small * 1.5, costs  # a scan of the ledger made it ~10x
