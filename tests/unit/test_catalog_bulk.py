"""The bulk write path writes what the per-call path writes (seals, signatures, ledger chain), in
one transaction: all of a batch or none of it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder.catalog import Catalog
from pbx_recorder.catalog.repository import StoredRecording
from pbx_recorder.errors import CallIdCollision
from pbx_recorder.recording import ledger
from pbx_recorder.recording.call_seal import CallSealer, check_calls
from pbx_recorder.recording.ledger import StoredLedgerHook
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.shipper import ShipRecord
from pbx_recorder.recording.signing import SignAfterStore
from storage.base import StoredObject

NOW = 1_780_000_000.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def _call(i: int) -> tuple[dict[str, object], list[StoredRecording]]:
    call_id, rid = f"n1_{i}.0", f"n1_{i}.0_call001"
    call = {"call_id": call_id, "caller_num": f"1390000{i:04d}", "agent": "a1", "queue": "q1",
            "status": "answered", "tags": ["vip"] if i % 2 else [], "started_at": NOW + i}
    manifest = Manifest(recording_id=rid, call_id=call_id, created_at=NOW + i,
                        files=(ManifestFile("a.wav", 100, f"{i:064x}", 5.0),))
    obj = StoredObject("hot", f"2026/{rid}.wav", 100, f"{i + 1:064x}")
    row = {"recording_id": rid, "call_id": call_id, "tier": "hot", "storage_key": obj.key,
           "sha256": obj.sha256, "size": 100, "manifest": manifest.to_dict(),
           "created_at": NOW + i, "stored_at": NOW + i}
    record = ShipRecord(rid, call_id, manifest, None, (obj,), ("audio",))  # type: ignore[arg-type]
    return call, [StoredRecording(row, manifest, record)]


def _hooks() -> list[object]:
    return [SignAfterStore(KEY), StoredLedgerHook(clock=lambda: NOW)]


def _catalog(path: Path) -> Catalog:
    return Catalog(path, clock=lambda: NOW, sealer=CallSealer(KEY, clock=lambda: NOW))


def _dump(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    # (without PostgreSQL's ``rowid`` stand-in: a sequence, which the per-call path's stand-in
    # call row ``INSERT ... ON CONFLICT DO NOTHING`` advances and the bulk path no longer sends)
    out = {}
    for t in ("calls", "recordings", "ledger", "call_tags"):
        cur = conn.execute(f"SELECT * FROM {t} ORDER BY 1")
        keep = [i for i, d in enumerate(cur.description) if d[0] != "rowid"]
        out[t] = [tuple(r[i] for i in keep) for r in cur]
    return out


def one_at_a_time(catalog: Catalog, batch: list[tuple[dict[str, object], list[StoredRecording]]]) -> None:
    """The per-call path: the daemon's row, then the shipper's store + hooks + verified, call by call."""
    for call, recs in batch:
        catalog.upsert_call(call)
        for rec in recs:
            rid = str(rec.row["recording_id"])
            catalog.upsert_recording({**rec.row, "state": "stored"})
            for hook in _hooks():
                extra = hook(catalog, rid, rec.manifest, rec.record)  # type: ignore[operator]
                if extra:
                    catalog.upsert_recording({"recording_id": rid, **extra})
            catalog.mark_state(rid, "verified")


def test_bulk_writes_what_the_per_call_path_writes(tmp_path: Path) -> None:
    one, bulk = _catalog(tmp_path / "one.db"), _catalog(tmp_path / "bulk.db")
    one_at_a_time(one, [_call(i) for i in range(6)])
    assert bulk.write_calls((_call(i) for i in range(6)), after_store=_hooks()) == 6  # type: ignore[arg-type]
    a, b = _dump(one._conn()), _dump(bulk._conn())
    seals = [r[0] for r in one._conn().execute("SELECT seal FROM calls")]
    assert a == b and len(a["ledger"]) == 12 and len(seals) == 6 and all(seals)  # sealed, chained
    assert ledger.verify_chain(bulk._conn()) == []
    assert check_calls(bulk._conn(), KEY.public_key()) == []
    assert {r[0] for r in bulk._conn().execute("SELECT state FROM recordings")} == {"verified"}


def test_a_failing_call_leaves_nothing_of_its_batch(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    catalog.write_calls([_call(0)], after_store=_hooks())  # type: ignore[arg-type]
    before = _dump(catalog._conn())
    clash, recs = _call(0)
    batch = [_call(1), _call(2), ({**clash, "started_at": NOW - 999}, recs)]  # a reused call id
    with pytest.raises(CallIdCollision):
        catalog.write_calls(batch, after_store=_hooks())  # type: ignore[arg-type]
    assert _dump(catalog._conn()) == before
    assert not catalog._conn().in_transaction
