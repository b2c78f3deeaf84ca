"""``keys rotate-index`` re-indexes every number ``call_numbers`` held, also those the call's own
sealed row does not name (issue 11, schema 12): a number only a recording's signed manifest names
(the catalog keeps no copy of it since schema 11) and a number an earlier version of the call row
named (a late CDR replaced the first).  After the rotation erasure by such a number still finds
the call, and a caller hold or open erasure request on it is re-keyed instead of stopping the
rotation.  Both engines."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_recorder.catalog import Catalog, extra_numbers
from pbx_recorder.catalog.index_rotation import IndexRotation
from pbx_recorder.catalog.number_keys import protection_for
from pbx_recorder.catalog.number_migration import protect
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.catalog.repository import StoredRecording
from pbx_recorder.config import load_config
from pbx_recorder.hash_key import read_hash_key
from pbx_recorder.lifecycle import number_lookup
from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.lifecycle.policy import number_hash
from pbx_recorder.lifecycle.tombstones import Tombstones, path_beside
from storage.keyring import KeyRing
from storage.local import LocalTier

CALLER = "4915112345678"
OTHER = "4917000000002"
TRANSFER = "4930987654321"  # named only by the recording's signed manifest (its CDR's dst)
DIALED = "4940111222333"    # named only by the manifest's callee_num (the row's callee changed)
DROPPED = "4989555666777"   # named by the call row's first CDR, which a late CDR replaced
NOW = 1_800_000_000.0


@pytest.fixture
def site(tmp_path: Path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "hmac.key").write_text("0123456789abcdef0123456789abcdef")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
catalog: {{path: {tmp_path}/catalog.db}}
storage:
  hot: hot
  tiers:
    hot: {{type: local, path: {tmp_path}/hot}}
privacy: {{hash_key_file: {tmp_path}/keys/hmac.key}}
""")
    config = load_config(cfg, env={})
    numbers = protection_for(config)
    cat = Catalog(config.catalog.path, numbers=numbers)
    cat.upsert_call({"call_id": "c1", "caller_num": CALLER, "callee_num": "200", "cdr": {"src": CALLER},
                     "started_at": NOW - 30, "status": "answered"})
    signed = {"recording_id": "r1", "call_id": "c1", "callee_num": DIALED,
              "cdr": {"src": CALLER, "dst": TRANSFER}, "files": [{"name": "r1.wav", "sha256": "ab"}]}
    cat.upsert_recording({"recording_id": "r1", "call_id": "c1", "state": "verified", "manifest": signed})
    first = {"src": OTHER, "lastdata": f"PJSIP/{DROPPED}@trunk", "disposition": "NO ANSWER"}
    cat.upsert_call({"call_id": "c2", "caller_num": OTHER, "callee_num": "201", "cdr": first,
                     "started_at": NOW - 20, "status": "no_answer"})
    cat.upsert_call({"call_id": "c2", "cdr": {"src": OTHER, "disposition": "ANSWERED"}, "status": "answered"})
    cat.upsert_call({"call_id": "c3", "caller_num": OTHER, "callee_num": "202", "cdr": {"src": OTHER},
                     "started_at": NOW - 10, "status": "answered"})
    protect(cat._conn(), numbers)  # (marks the catalog as fully protected)
    yield config, cat, numbers, tmp_path
    cat.close()


def naming(conn, key_file, number: str) -> set[str]:
    return number_lookup.calls_naming(conn, read_hash_key(key_file), number)


def test_numbers_the_call_row_does_not_hold_are_found_after_a_rotation(site):
    config, _, numbers, _ = site
    key_file = config.privacy.hash_key_file
    conn = open_catalog(config.catalog.path)
    for number, call_id in ((TRANSFER, "c1"), (DIALED, "c1"), (DROPPED, "c2")):
        assert naming(conn, key_file, number) == {call_id}, number  # found before

    report = IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    assert report.finished and not report.errors

    for number, call_id in ((TRANSFER, "c1"), (DIALED, "c1"), (DROPPED, "c2"), (CALLER, "c1")):
        assert naming(conn, key_file, number) == {call_id}, number
    new = BlindIndex(read_hash_key(key_file), alone=True)
    stored = {r[0] for r in conn.execute("SELECT bi FROM call_numbers WHERE call_id = 'c1'")}
    # no old-key value left, and none for the row's own caller (found by calls.caller_bi)
    assert stored == {new.full(TRANSFER), new.full(DIALED)}
    assert conn.execute("SELECT caller_bi FROM calls WHERE call_id = 'c1'").fetchone()[0] == new.full(CALLER)
    conn.close()


def test_erasure_by_such_a_number_after_a_rotation_erases_the_call(site):
    config, _, numbers, tmp_path = site
    key_file = config.privacy.hash_key_file
    conn = open_catalog(config.catalog.path)
    assert IndexRotation(conn, key_file, numbers.cipher, batch=2).run().finished
    key = read_hash_key(key_file)
    tiers = {"hot": LocalTier("hot", tmp_path / "hot")}
    holds = HoldManager(conn, tiers, hash_key=key, numbers=numbers)
    eraser = Eraser(conn, tiers, hash_key=key, holds=holds, tombstones=Tombstones(path_beside(key_file), key),
                    numbers=numbers)
    receipt = eraser.erase(caller=TRANSFER, request_id="RQ1", actor="dpo", now=NOW)
    assert receipt["calls_matched"] == 1 and receipt["status"] == "done"
    receipt = eraser.erase(caller=DROPPED, request_id="RQ2", actor="dpo", now=NOW)
    assert receipt["calls_matched"] == 1
    assert {r[0] for r in conn.execute("SELECT call_id FROM calls")} == {"c3"}
    conn.close()


def test_a_hold_and_an_open_request_on_such_a_number_are_re_keyed(site):
    config, _, numbers, tmp_path = site
    key_file = config.privacy.hash_key_file
    conn = open_catalog(config.catalog.path)
    key = read_hash_key(key_file)
    tiers = {"hot": LocalTier("hot", tmp_path / "hot")}
    holds = HoldManager(conn, tiers, hash_key=key, numbers=numbers)
    held = holds.add("caller", TRANSFER, "lawsuit", "alice", now=NOW)
    opened = Eraser(conn, tiers, hash_key=key, holds=holds).receive(
        subject_hash=number_hash(key, DROPPED), request_id=None, now=NOW)

    report = IndexRotation(conn, key_file, numbers.cipher, batch=2).run()  # not refused: both re-keyed
    assert report.finished and report.holds_rekeyed == 1 and report.requests_rekeyed == 1
    new = BlindIndex(read_hash_key(key_file), alone=True)
    value = conn.execute("SELECT value FROM holds WHERE hold_id = ?", (held["hold_id"],)).fetchone()[0]
    assert value == new.full(TRANSFER)
    key = read_hash_key(key_file)
    subject = conn.execute("SELECT subject FROM erasure_requests").fetchone()[0]
    assert subject == number_hash(key, DROPPED)
    eraser = Eraser(conn, tiers, hash_key=key, holds=HoldManager(conn, tiers, hash_key=key, numbers=numbers),
                    tombstones=Tombstones(path_beside(key_file), key), numbers=numbers)
    receipt = eraser.erase(caller=DROPPED, request_id=opened["request_id"], actor="dpo", now=NOW + 1)
    assert receipt["calls_matched"] == 1
    conn.close()


def _extras(conn, numbers) -> dict[str, set[str]]:
    ids = [r[0] for r in conn.execute("SELECT call_id FROM call_extra_numbers ORDER BY call_id")]
    return {i: extra_numbers.of_call(conn, numbers, i) for i in ids}


def test_the_bulk_path_seals_what_the_per_call_path_seals_and_nothing_for_a_usual_call(site):
    config, cat, numbers, tmp_path = site
    bulk = Catalog(tmp_path / "bulk.db", numbers=numbers)
    batch = []
    for call_id, dst in (("d1", TRANSFER), ("d2", "200")):  # d2: its manifest names what its row names
        call = {"call_id": call_id, "caller_num": CALLER, "callee_num": "200", "cdr": {"src": CALLER},
                "started_at": NOW, "status": "answered"}
        signed = {"recording_id": f"{call_id}r", "call_id": call_id, "callee_num": "200",
                  "cdr": {"src": CALLER, "dst": dst}, "files": [{"name": "a.wav", "sha256": "ab"}]}
        row = {"recording_id": f"{call_id}r", "call_id": call_id, "state": "verified", "manifest": signed,
               "created_at": NOW}
        cat.upsert_call(call)
        cat.upsert_recording(row)
        batch.append((call, [StoredRecording(row, signed)]))
    assert bulk.write_calls(batch) == 2
    want = {"c1": {TRANSFER, DIALED}, "c2": {DROPPED}, "d1": {TRANSFER}}
    assert _extras(cat.connection(), numbers) == want
    assert _extras(bulk.connection(), numbers) == {"d1": {TRANSFER}}
    bulk.close()


def test_keys_rotate_re_encrypts_them_and_erasure_removes_them(site):
    config, cat, numbers, tmp_path = site
    ring = KeyRing(Path(config.privacy.hash_key_file).parent / "catalog-keys")
    ring.generate("catalog2")
    rotated = NumberProtection(NumberCipher(ring.get, "catalog2"), numbers.index)
    conn = open_catalog(config.catalog.path)
    report = protect(conn, rotated, force=True)
    assert report.extra_numbers == 2 and not report.errors
    tokens = [r[0] for r in conn.execute("SELECT numbers FROM call_extra_numbers")]
    assert all(t.startswith("pn1:catalog2:") for t in tokens)
    assert _extras(conn, rotated) == {"c1": {TRANSFER, DIALED}, "c2": {DROPPED}}
    key = read_hash_key(config.privacy.hash_key_file)
    tiers = {"hot": LocalTier("hot", tmp_path / "hot")}
    Eraser(conn, tiers, hash_key=key, holds=HoldManager(conn, tiers, hash_key=key, numbers=rotated),
           tombstones=Tombstones(path_beside(config.privacy.hash_key_file), key), numbers=rotated).erase(
        caller=TRANSFER, request_id="RQ1", actor="dpo", now=NOW)
    assert _extras(conn, rotated) == {"c2": {DROPPED}}  # with the call, its sealed numbers went
    conn.close()


@pytest.mark.sqlite_only  # reads the bytes of the SQLite file
def test_the_catalog_file_holds_none_of_them_in_clear(site):
    config, cat, _, _ = site
    cat.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = Path(config.catalog.path).read_bytes()
    for number in (TRANSFER, DIALED, DROPPED):
        assert number.encode() not in data and number[-7:].encode() not in data, number


def test_a_recording_stored_before_its_call_row_keeps_nothing_once_the_row_names_its_numbers(site):
    config, cat, numbers, _ = site
    signed = {"recording_id": "e1r", "call_id": "e1", "callee_num": "200",
              "cdr": {"src": CALLER, "dst": TRANSFER}, "files": [{"name": "a.wav", "sha256": "ab"}]}
    cat.upsert_recording({"recording_id": "e1r", "call_id": "e1", "state": "verified", "manifest": signed})
    conn = cat.connection()
    assert extra_numbers.of_call(conn, numbers, "e1") == {CALLER, TRANSFER}  # a stand-in row names nothing
    cat.upsert_call({"call_id": "e1", "caller_num": CALLER, "callee_num": "200",
                     "cdr": {"src": CALLER, "dst": TRANSFER}, "started_at": NOW, "status": "answered"})
    assert conn.execute("SELECT count(*) FROM call_extra_numbers WHERE call_id = 'e1'").fetchone()[0] == 0


def test_erasure_leaves_no_index_row_of_the_erased_call(site):
    """Erasure (and every path through ``marks.forget_call``) removes the call's ``call_numbers``
    rows: a keyed hash of each number linked to a call id that no longer exists would say, to
    whoever holds the index key, that the number made a call there."""
    config, _, numbers, tmp_path = site
    key = read_hash_key(config.privacy.hash_key_file)
    conn = open_catalog(config.catalog.path)
    # (c3 names only its own caller and callee: it has no index row, catalog.named_rows)
    assert {r[0] for r in conn.execute("SELECT call_id FROM call_numbers")} == {"c1", "c2"}
    tiers = {"hot": LocalTier("hot", tmp_path / "hot")}
    eraser = Eraser(conn, tiers, hash_key=key, holds=HoldManager(conn, tiers, hash_key=key, numbers=numbers),
                    tombstones=Tombstones(path_beside(config.privacy.hash_key_file), key), numbers=numbers)
    assert eraser.erase(caller=TRANSFER, request_id="RQ1", actor="dpo", now=NOW)["calls_matched"] == 1
    assert {r[0] for r in conn.execute("SELECT call_id FROM call_numbers")} == {"c2"}
    conn.close()
