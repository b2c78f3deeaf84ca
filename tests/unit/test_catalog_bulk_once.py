"""The bulk write path with the recorder's number protection on: the same calls, seals, signed
manifests, blind indexes and ledger as call-by-call writing, each recording row written once
(the hooks that need no row run first), and a hook that does need the row still finds it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.recording import ledger, manifest_copy
from pbx_recorder.recording.call_seal import CallSealer, check_calls
from pbx_recorder.recording.ledger import StoredLedgerHook
from pbx_recorder.recording.signing import SignAfterStore, verify_manifest
from tests.unit.catalog_plan_support import traced
from tests.unit.test_catalog_bulk import KEY, NOW, _call

MASTER, HASH_KEY = os.urandom(32), os.urandom(32)


def _numbers() -> NumberProtection:
    return NumberProtection(NumberCipher(lambda _key_id: MASTER, "m1"), BlindIndex(HASH_KEY))


def _catalog(path: Path) -> Catalog:
    numbers = _numbers()  # as app.py builds it: the seal covers the numbers in clear
    return Catalog(path, clock=lambda: NOW, numbers=numbers,
                   sealer=CallSealer(KEY, clock=lambda: NOW, reveal=numbers.open_call))


def _hooks() -> list[Any]:
    return [SignAfterStore(KEY), StoredLedgerHook(clock=lambda: NOW)]


def _with_numbers(i: int) -> tuple[dict[str, Any], list[Any]]:
    call, recs = _call(i)
    cdr = {"src": call["caller_num"], "dst": "4008001234", "disposition": "ANSWERED"}
    if i % 2 == 0:  # a transfer target: the one kind of number call_numbers keeps (catalog.named_rows)
        cdr["lastdata"] = f"PJSIP/1370000000{i}@trunk"
    return {**call, "callee_num": "4008001234", "cdr": cdr, "consent": {"decision": "granted"}}, recs


def _opened(catalog: Catalog) -> dict[str, Any]:
    """Every row as the catalog reads it back (numbers opened: tokens carry random nonces)."""
    conn = catalog._conn()
    ids = [r[0] for r in conn.execute("SELECT call_id FROM calls ORDER BY call_id")]
    calls = [{k: v for k, v in (catalog.get_call(c) or {}).items() if k != "numbers"} for c in ids]
    recs = [{k: v for k, v in r.items()} for c in ids for r in catalog.recordings_for_call(c)]
    return {"calls": calls, "recordings": recs,
            "ledger": [tuple(r) for r in conn.execute("SELECT * FROM ledger ORDER BY seq")],
            "call_numbers": sorted(tuple(r) for r in conn.execute("SELECT bi, call_id FROM call_numbers")),
            "call_tags": sorted(tuple(r) for r in conn.execute("SELECT * FROM call_tags"))}


def test_bulk_with_numbers_protected_writes_what_the_per_call_path_writes(tmp_path: Path) -> None:
    one, bulk = _catalog(tmp_path / "one.db"), _catalog(tmp_path / "bulk.db")
    for i in range(5):
        call, [rec] = _with_numbers(i)
        one.upsert_call(call)
        rid = str(rec.row["recording_id"])
        one.upsert_recording({**rec.row, "state": "stored"})
        for hook in _hooks():
            extra = hook(one, rid, rec.manifest, rec.record)
            if extra:
                one.upsert_recording({"recording_id": rid, **extra})
        one.mark_state(rid, "verified")
    assert bulk.write_calls((_with_numbers(i) for i in range(5)), after_store=_hooks()) == 5
    a, b = _opened(one), _opened(bulk)
    assert a == b and len(b["calls"]) == 5 and len(b["ledger"]) == 10
    assert b["calls"][0]["caller_num"] == "13900000000"
    # index rows for the transfer targets only: a call's own caller and callee are found by its row
    own = {r for r in bulk._conn().execute("SELECT caller_bi FROM calls UNION SELECT callee_bi FROM calls")}
    assert len(b["call_numbers"]) == 3 and not {(bi,) for bi, _ in b["call_numbers"]} & own
    index = BlindIndex(HASH_KEY)
    assert {bi for bi, _ in b["call_numbers"]} == {index.full(f"1370000000{i}") for i in (0, 2, 4)}
    conn = bulk._conn()
    assert conn.execute("SELECT COUNT(*) FROM calls WHERE caller_num != ''").fetchone()[0] == 0  # sealed away
    assert ledger.verify_chain(conn) == []
    assert check_calls(conn, KEY.public_key(), numbers=_numbers()) == []  # seals over the numbers in clear
    signed = {str(r.row["recording_id"]): r.manifest for _, [r] in (_with_numbers(i) for i in range(5))}
    for rec in b["recordings"]:
        assert rec["state"] == "verified"
        manifest = signed[rec["recording_id"]].to_dict()  # stored beside the audio (schema 11)
        assert rec["manifest_sha256"] == manifest_copy.signed_sha256(manifest)
        assert rec["manifest"] == manifest_copy.catalog_copy(manifest)[0]
        assert verify_manifest(manifest, rec["signature"], KEY.public_key())


@pytest.mark.sqlite_only  # reads SQLite's statement trace
def test_each_recording_row_is_written_once(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    with traced(catalog.shared_writer()) as statements:
        catalog.write_calls((_with_numbers(i) for i in range(3)), after_store=_hooks())
    writes = [s for s in statements if "recordings" in s.split("(")[0]
              and s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(writes) == 3 and all(s.lstrip().upper().startswith("INSERT INTO RECORDINGS") for s in writes)
    assert {r[0] for r in catalog._conn().execute("SELECT state FROM recordings")} == {"verified"}


class RowReadingHook:
    """A hook that reads the recording's row (no ``before_row``): it must run after the row is there."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, catalog: Catalog, recording_id: str, manifest: Any,
                 record: Any = None) -> dict[str, Any]:
        row = catalog.get_recording(recording_id)
        assert row is not None and row["state"] == "stored"
        self.seen.append(recording_id)
        return {"storage_class": "GLACIER"}


def test_a_hook_that_reads_the_row_finds_it_stored(tmp_path: Path) -> None:
    catalog, reader = _catalog(tmp_path / "cat.db"), RowReadingHook()
    assert catalog.write_calls((_with_numbers(i) for i in range(2)), after_store=[*_hooks(), reader]) == 2
    assert len(reader.seen) == 2
    rows = [catalog.get_recording(rid) for rid in reader.seen]
    assert all(r and r["state"] == "verified" and r["storage_class"] == "GLACIER" and r["signature"]
               for r in rows)
    assert ledger.verify_chain(catalog._conn()) == []
