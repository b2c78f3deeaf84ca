"""``keys rotate-index``: a new blind-index key, every index re-made in resumable batches; while
it runs every call is found under either key (once), holds and erasure keep working; at the end
no old-key index is left and the old key is gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.index_rotation import IndexRotation, load_state
from pbx_recorder.catalog.number_keys import KeyFileIndex, protection_for
from pbx_recorder.catalog.number_migration import protect
from pbx_recorder.catalog.number_protection import BlindIndex
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.cli import main
from pbx_recorder.config import load_config
from pbx_recorder.errors import PolicyRefusal
from pbx_recorder.hash_key import previous_path, read_hash_key
from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.lifecycle.tombstones import Tombstones, path_beside
from storage import atomic
from storage.local import LocalTier

CALLER = "4915112345678"
OTHER = "4917000000002"
TRANSFER = "4930987654321"
NOW = 1_800_000_000.0
# call id -> (caller, callee, started_at): sorted by id, a1/a2 are the first batch of 2, z9 the last
CALLS = {"a1": (CALLER, "200", NOW - 50), "a2": (OTHER, "201", NOW - 40), "b1": ("300", CALLER, NOW - 30),
         "b2": (OTHER, "202", NOW - 20), "z9": (CALLER, "203", NOW - 10)}


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
    for call_id, (caller, callee, started) in CALLS.items():
        cdr = {"src": caller, "lastdata": f"PJSIP/{TRANSFER}@trunk"} if call_id == "b2" else {"src": caller}
        cat.upsert_call({"call_id": call_id, "caller_num": caller, "callee_num": callee, "cdr": cdr,
                         "started_at": started, "status": "answered"})
    protect(cat._conn(), numbers)  # (marks the catalog as fully protected)
    yield config, cat, numbers, str(cfg)
    cat.close()


def ids(rows) -> list[str]:
    return [r["call_id"] for r in rows]


def fresh(config) -> Catalog:
    """What a process started now sees (``calls search``): both key files read."""
    return Catalog(config.catalog.path, numbers=protection_for(config))


def crash_after_first_batch(state):
    if state["phase"] == "calls" and state["done"] >= 2:
        raise KeyboardInterrupt


def stored_indexes(conn) -> dict[str, tuple[str, ...]]:
    return {r[0]: tuple(r[1:]) for r in conn.execute(
        "SELECT call_id, caller_bi, caller_bi4, callee_bi, callee_bi4 FROM calls ORDER BY call_id")}


def test_crash_mid_rotation_every_call_found_once_then_resume_leaves_no_old_index(site, monkeypatch):
    monkeypatch.setattr(KeyFileIndex, "CHECK_EVERY", 0.0)  # the daemon looks at its key files at once
    config, cat, numbers, _ = site
    key_file = config.privacy.hash_key_file
    old = BlindIndex(read_hash_key(key_file), alone=True)
    conn = open_catalog(config.catalog.path)
    daemon = Catalog(config.catalog.path, numbers=numbers)  # started before: its index follows the file
    rotation = IndexRotation(conn, key_file, numbers.cipher, batch=2, after_batch=crash_after_first_batch)
    with pytest.raises(KeyboardInterrupt):
        rotation.run()
    state = load_state(conn)
    assert (state["phase"], state["done"], state["cursor"]) == ("calls", 2, "a2")
    new = BlindIndex(read_hash_key(key_file), alone=True)
    assert previous_path(key_file).exists() and new.full(CALLER) != old.full(CALLER)
    by_id = stored_indexes(conn)
    assert by_id["a1"][0] == new.full(CALLER) and by_id["z9"][0] == old.full(CALLER)  # both keys in use

    daemon.upsert_call({"call_id": "m1", "caller_num": CALLER, "callee_num": "204", "started_at": NOW - 5})
    assert stored_indexes(conn)["m1"][0] == new.full(CALLER)  # the running daemon writes under the new key
    # a node that still has the old key as its only key writes under it: found as well
    stale = Catalog(config.catalog.path, numbers=NumberProtection(numbers.cipher, old))
    stale.upsert_call({"call_id": "m2", "caller_num": CALLER, "callee_num": "205", "started_at": NOW - 4})
    stale.close()

    search = fresh(config)
    assert ids(search.search(CallFilters(caller=CALLER))) == ["m2", "m1", "z9", "a1"]
    assert ids(search.search(CallFilters(caller=CALLER[-4:]))) == ["m2", "m1", "z9", "a1"]
    assert ids(search.search(CallFilters(caller="+49 151 12345678"))) == ["m2", "m1", "z9", "a1"]
    assert ids(search.search(CallFilters(callee=CALLER))) == ["b1"]
    assert ids(search.search(CallFilters(callee=CALLER[-4:]))) == ["b1"]
    search.close()

    report = IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    assert report.resumed and report.finished and report.retired == "deleted" and not report.errors
    assert not previous_path(key_file).exists()
    assert load_state(conn)["phase"] == "done"
    final = BlindIndex(read_hash_key(key_file), alone=True)
    for call_id, (caller, callee, _) in {**CALLS, "m1": (CALLER, "204", 0), "m2": (CALLER, "205", 0)}.items():
        assert stored_indexes(conn)[call_id] == (final.full(caller), final.last4(caller), final.full(callee),
                                                 final.last4(callee)), call_id
    named = {r[0] for r in conn.execute("SELECT bi FROM call_numbers")}
    assert final.full(TRANSFER) in named and old.full(TRANSFER) not in named
    assert not any(old.full(n) in named for n in (CALLER, OTHER, TRANSFER))
    after = fresh(config)
    assert ids(after.search(CallFilters(caller=CALLER[-4:]))) == ["m2", "m1", "z9", "a1"]
    assert after.get_call("a1")["caller_num"] == CALLER
    after.close()
    daemon.upsert_call({"call_id": "m3", "caller_num": CALLER, "started_at": NOW - 3})
    assert stored_indexes(conn)["m3"][0] == final.full(CALLER)
    daemon.close()
    conn.close()


def hold_values(conn, hold_id: str) -> tuple[str, str]:
    value, value4 = conn.execute("SELECT value, value4 FROM holds WHERE hold_id = ?", (hold_id,)).fetchone()
    return str(value), str(value4)


def test_erasure_and_holds_by_number_mid_rotation(site, tmp_path):
    config, cat, numbers, _ = site
    key_file = config.privacy.hash_key_file
    conn = open_catalog(config.catalog.path)
    tiers = {"hot": LocalTier("hot", tmp_path / "hot")}
    holds = HoldManager(conn, tiers, hash_key=read_hash_key(key_file), numbers=numbers)
    held = holds.add("caller", OTHER, "lawsuit", "alice", now=NOW)
    with pytest.raises(KeyboardInterrupt):
        IndexRotation(conn, key_file, numbers.cipher, batch=2, after_batch=crash_after_first_batch).run()
    value, value4 = hold_values(conn, held["hold_id"])
    assert value.count("|") == 1  # new|old while the rotation runs
    key = read_hash_key(key_file)
    both = BlindIndex(key, read_hash_key(previous_path(key_file)))
    assert value4 == "|".join(both.last4s(OTHER)) and value == "|".join(both.fulls(OTHER))  # in step
    matched = HoldManager(conn, {}, hash_key=key)._matching_call_ids("caller", value, value4)
    assert sorted(matched) == ["a2", "b2"]  # through the last-4 index under either key (schema 15)
    mid = HoldManager(conn, tiers, hash_key=key, numbers=numbers)
    for call_id in ("a2", "b2"):  # a2 re-indexed already, b2 not yet: both under the hold
        assert mid.hold_for({"recording_id": f"r-{call_id}", "call_id": call_id}) is not None, call_id
    assert mid.hold_for({"recording_id": "r-a1", "call_id": "a1"}) is None

    tombstones = Tombstones(path_beside(key_file), key)
    receipt = Eraser(conn, tiers, hash_key=key, holds=mid, tombstones=tombstones, numbers=numbers).erase(
        caller=CALLER, request_id="RQ1", actor="dpo", now=NOW)
    assert receipt["status"] == "done" and receipt["calls_matched"] == 3  # a1 (new key), b1 and z9 (old)
    assert {r[0] for r in conn.execute("SELECT call_id FROM calls")} == {"a2", "b2"}
    assert len(tombstones.hashes()) >= 2  # the number under both keys (a late copy of either node)

    report = IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    assert report.finished
    value, value4 = hold_values(conn, held["hold_id"])
    final = BlindIndex(read_hash_key(key_file), alone=True)
    assert (value, value4) == (final.full(OTHER), final.last4(OTHER))
    after = HoldManager(conn, tiers, hash_key=read_hash_key(key_file), numbers=numbers)
    assert after.hold_for({"recording_id": "r-b2", "call_id": "b2"}) is not None
    conn.close()


def test_a_hold_on_a_number_no_call_has_keeps_the_old_key_until_it_is_added_again(site, tmp_path):
    config, cat, numbers, _ = site
    key_file = config.privacy.hash_key_file
    conn = open_catalog(config.catalog.path)
    tiers = {"hot": LocalTier("hot", tmp_path / "hot")}
    holds = HoldManager(conn, tiers, hash_key=read_hash_key(key_file), numbers=numbers)
    orphan = holds.add("caller", "4915550000000", "future calls", "alice", now=NOW)
    with pytest.raises(PolicyRefusal, match=orphan["hold_id"]):
        IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    assert previous_path(key_file).exists() and load_state(conn)["phase"] == "finish"
    assert ids(fresh(config).search(CallFilters(caller=CALLER))) == ["z9", "a1"]
    holds = HoldManager(conn, tiers, hash_key=read_hash_key(key_file), numbers=numbers)
    holds.add("caller", "4915550000000", "future calls", "alice", now=NOW)  # new|old
    holds.remove(orphan["hold_id"], "alice", now=NOW)
    assert IndexRotation(conn, key_file, numbers.cipher, batch=2).run().finished
    assert not previous_path(key_file).exists()
    conn.close()


def test_the_daemons_index_follows_the_key_file(tmp_path):
    key_file = tmp_path / "hmac.key"
    key_file.write_text("0123456789abcdef0123456789abcdef")
    index = KeyFileIndex(key_file)
    index.CHECK_EVERY = 0.0  # (default: at most every 0.5 s)
    before = index.full(CALLER)
    assert index.fulls(CALLER) == (before,)
    atomic.write_bytes(previous_path(key_file), b"0123456789abcdef0123456789abcdef")
    atomic.write_bytes(key_file, b"fedcba9876543210fedcba9876543210")
    assert index.full(CALLER) != before and index.fulls(CALLER) == (index.full(CALLER), before)
    first = BlindIndex(b"0123456789abcdef0123456789abcdef", alone=True)
    assert index.last4s(CALLER)[1] == first.last4(CALLER)
    previous_path(key_file).unlink()
    assert index.fulls(CALLER) == (index.full(CALLER),)


def test_cli_rotate_index_reports_audits_and_keeps_the_old_key_on_request(site, capsys):
    config, cat, numbers, cfg = site
    key_file = config.privacy.hash_key_file
    assert main(["--config", cfg, "keys", "rotate-index", "--status"]) == 0
    assert "no index key rotation" in capsys.readouterr().out
    assert main(["--config", cfg, "keys", "rotate-index", "--batch", "2", "--keep-old"]) == 0
    out = capsys.readouterr().out
    assert "rotated index key ik-" in out
    assert "10 call rows read, 5 re-indexed" in out and "kept at" in out  # two passes read every row
    conn = open_catalog(config.catalog.path)
    state = load_state(conn)
    old_id = state["old"]
    kept = Path(key_file).parent / "retired-index-keys" / f"{old_id}.key"
    assert kept.exists() and oct(kept.stat().st_mode & 0o777) == "0o600"
    assert kept.read_bytes().strip() == b"0123456789abcdef0123456789abcdef"
    detail = json.loads(conn.execute("SELECT detail FROM audit_log WHERE action = 'keys.rotate_index'")
                        .fetchone()[0])
    assert detail["finished"] and detail["old_key"] == old_id and detail["calls_reindexed"] == 5
    assert "0123456789abcdef" not in json.dumps(detail)
    conn.close()
    assert main(["--config", cfg, "keys", "rotate-index", "--status"]) == 0
    assert "done" in capsys.readouterr().out
    assert ids(fresh(config).search(CallFilters(caller=CALLER[-4:]))) == ["z9", "a1"]


@pytest.mark.sqlite_only  # reads the bytes of the SQLite file
def test_a_copied_catalog_file_yields_no_number_and_no_old_index_after_rotation(site):
    config, cat, numbers, _ = site
    key_file = config.privacy.hash_key_file
    old = BlindIndex(read_hash_key(key_file), alone=True)
    conn = open_catalog(config.catalog.path)
    IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.close()
    cat.close()
    db = Path(config.catalog.path)
    data = b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    for number in (CALLER, OTHER, TRANSFER):
        assert number[-7:].encode() not in data
        assert old.full(number).split(":", 1)[1].encode() not in data
        assert old.last4(number).encode() not in data


def test_late_copy_guard_and_verify_mid_rotation(site, tmp_path):
    """A daemon's guard made before the rotation: an erasure from before it (old key only) and one
    made while it runs (both keys) each destroy a late copy; ``verify``'s index check accepts rows
    under either key while it runs and only the new one after."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pbx_recorder.lifecycle.late_copies import LateCopyGuard
    from pbx_recorder.recording import call_seal

    config, cat, numbers, _ = site
    key_file = config.privacy.hash_key_file
    conn = open_catalog(config.catalog.path)
    guard = LateCopyGuard(key_file, clock=lambda: NOW)
    tiers = {"hot": LocalTier("hot", tmp_path / "hot")}
    key = read_hash_key(key_file)
    holds = HoldManager(conn, tiers, hash_key=key, numbers=numbers)
    Eraser(conn, tiers, hash_key=key, holds=holds, tombstones=Tombstones(path_beside(key_file), key),
           numbers=numbers).erase(caller=OTHER, request_id="before", actor="dpo", now=NOW)
    assert guard.verdict(conn, "late-1", {"caller_num": OTHER}, NOW - 60).action == "destroy"
    with pytest.raises(KeyboardInterrupt):
        IndexRotation(conn, key_file, numbers.cipher, batch=2, after_batch=crash_after_first_batch).run()
    assert guard.verdict(conn, "late-2", {"caller_num": OTHER}, NOW - 60).action == "destroy"
    key = read_hash_key(key_file)
    Eraser(conn, tiers, hash_key=key, holds=HoldManager(conn, tiers, hash_key=key, numbers=numbers),
           tombstones=Tombstones(path_beside(key_file), key), numbers=numbers).erase(
        caller=CALLER, request_id="during", actor="dpo", now=NOW + 10)
    stale = LateCopyGuard(key_file)  # a guard made mid-rotation (reads both key files)
    assert stale.verdict(conn, "late-4", {"caller_num": OTHER}, NOW - 60).action == "destroy"  # old key only
    for g in (guard, stale):
        assert g.verdict(conn, "late-3", {"caller_num": CALLER}, NOW).action == "destroy"
        assert g.verdict(conn, "new-call", {"caller_num": CALLER}, NOW + 20).action == "keep"

    signing = Ed25519PrivateKey.generate()
    first = BlindIndex(b"0123456789abcdef0123456789abcdef", alone=True)  # the key replaced
    cat.upsert_call({"call_id": "x1", "caller_num": "4915000000009", "started_at": NOW})  # new key
    stale_writer = Catalog(config.catalog.path, numbers=NumberProtection(numbers.cipher, first))
    stale_writer.upsert_call({"call_id": "y1", "caller_num": "4915000000008", "started_at": NOW})  # old key
    stale_writer.close()
    for call_id in ("x1", "y1"):
        call_seal.reseal(conn, call_id, signing, reveal=numbers.open_call)
    mid = protection_for(config)
    for call_id in ("x1", "y1"):
        assert call_seal.check_calls(conn, signing.public_key(), numbers=mid, call_id=call_id) == []
    IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    after = protection_for(config)
    assert call_seal.check_calls(conn, signing.public_key(), numbers=after, call_id="y1") == []
    conn.execute("UPDATE calls SET caller_bi = ? WHERE call_id = 'y1'", (first.full("4915000000008"),))
    found = call_seal.check_calls(conn, signing.public_key(), numbers=after, call_id="y1")
    assert found and "number index does not match" in found[0][1]  # the retired key's index: reported
    conn.close()


def test_an_erasure_request_opened_before_the_rotation_is_completed_after_it(site, tmp_path):
    """The console opens a request (subject: the keyed hash of the number as typed, '+' and all)
    and executes it later; after a rotation its subject is under the new key, so it matches."""
    from pbx_recorder.lifecycle.policy import number_hash

    config, cat, numbers, _ = site
    key_file = config.privacy.hash_key_file
    conn = open_catalog(config.catalog.path)
    tiers = {"hot": LocalTier("hot", tmp_path / "hot")}

    def eraser() -> Eraser:
        key = read_hash_key(key_file)
        holds = HoldManager(conn, tiers, hash_key=key, numbers=numbers)
        return Eraser(conn, tiers, hash_key=key, holds=holds,
                      tombstones=Tombstones(path_beside(key_file), key), numbers=numbers)

    typed = "+" + CALLER
    before = number_hash(read_hash_key(key_file), typed)
    opened = eraser().receive(subject_hash=before, request_id=None, now=NOW)
    report = IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    assert report.finished and report.requests_rekeyed == 1
    subject = conn.execute("SELECT subject FROM erasure_requests WHERE request_id = ?",
                           (opened["request_id"],)).fetchone()[0]
    assert subject == number_hash(read_hash_key(key_file), typed)
    receipt = eraser().erase(caller=typed, request_id=opened["request_id"], actor="dpo", now=NOW + 1)
    assert receipt["status"] == "done" and receipt["calls_matched"] == 3
    conn.close()


def test_a_start_interrupted_before_its_state_was_saved_starts_cleanly(site):
    config, cat, numbers, _ = site
    key_file = Path(config.privacy.hash_key_file)
    current = key_file.read_bytes()
    previous_path(key_file).write_bytes(current)  # what a start leaves before saving its state
    key_file.with_name(key_file.name + ".next").write_bytes(b"ab" * 32 + b"\n")
    conn = open_catalog(config.catalog.path)
    report = IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    assert report.finished and not report.resumed
    assert key_file.read_bytes() not in (current, b"ab" * 32 + b"\n")
    assert not key_file.with_name(key_file.name + ".next").exists()
    conn.close()


def test_a_row_that_cannot_be_opened_keeps_the_previous_key_until_it_is_fixed(site):
    from pbx_recorder.errors import CryptoError

    config, cat, numbers, _ = site
    key_file = config.privacy.hash_key_file
    conn = open_catalog(config.catalog.path)
    good = conn.execute("SELECT numbers FROM calls WHERE call_id = 'b1'").fetchone()[0]
    moved = conn.execute("SELECT numbers FROM calls WHERE call_id = 'a2'").fetchone()[0]
    conn.execute("UPDATE calls SET numbers = ? WHERE call_id = 'b1'", (moved,))  # a token from another row
    with pytest.raises(CryptoError, match="call b1"):
        IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    assert previous_path(key_file).exists()
    state = load_state(conn)
    assert (state["phase"], state["cursor"]) == ("sweep", "")  # the sweep starts over
    with pytest.raises(CryptoError, match="could not be re-indexed"):  # a re-run without a fix: the same
        IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    conn.execute("UPDATE calls SET numbers = ? WHERE call_id = 'b1'", (good,))
    assert ids(fresh(config).search(CallFilters(callee=CALLER))) == ["b1"]  # found under the old key
    report = IndexRotation(conn, key_file, numbers.cipher, batch=2).run()
    assert report.finished and not previous_path(key_file).exists()
    assert ids(fresh(config).search(CallFilters(callee=CALLER))) == ["b1"]
    conn.close()


def test_an_open_request_is_completed_mid_rotation_under_the_old_subject(site, tmp_path):
    from pbx_recorder.lifecycle.policy import number_hash

    config, cat, numbers, _ = site
    key_file = config.privacy.hash_key_file
    conn = open_catalog(config.catalog.path)
    tiers = {"hot": LocalTier("hot", tmp_path / "hot")}
    typed = "+4930111111111"  # no call has it: nothing re-keys its request before it is run
    key = read_hash_key(key_file)
    holds = HoldManager(conn, tiers, hash_key=key, numbers=numbers)
    opened = Eraser(conn, tiers, hash_key=key, holds=holds).receive(
        subject_hash=number_hash(key, typed), request_id=None, now=NOW)
    with pytest.raises(KeyboardInterrupt):
        IndexRotation(conn, key_file, numbers.cipher, batch=2, after_batch=crash_after_first_batch).run()
    key = read_hash_key(key_file)
    eraser = Eraser(conn, tiers, hash_key=key, holds=HoldManager(conn, tiers, hash_key=key, numbers=numbers),
                    tombstones=Tombstones(path_beside(key_file), key), numbers=numbers)
    receipt = eraser.erase(caller=typed, request_id=opened["request_id"], actor="dpo", now=NOW + 1)
    assert receipt["status"] == "done" and receipt["request_id"] == opened["request_id"]
    conn.close()


def test_a_catalog_indexed_under_a_retired_key_is_reindexed_without_it(site, capsys):
    """A backup taken before a rotation restores with indexes under the retired key: ``--reindex``
    re-makes them from the decrypted numbers under the current key (no old key needed)."""
    config, cat, numbers, cfg = site
    retired = BlindIndex(b"an index key that was deleted!!", alone=True)
    restored = Catalog(config.catalog.path, numbers=NumberProtection(numbers.cipher, retired))
    restored.upsert_call({"call_id": "r1", "caller_num": CALLER, "callee_num": OTHER, "started_at": NOW,
                          "cdr": {"lastdata": f"PJSIP/{TRANSFER}@trunk"}})
    restored.close()
    assert ids(fresh(config).search(CallFilters(callee=OTHER))) == []  # unsearchable as restored
    assert main(["--config", cfg, "keys", "rotate-index", "--reindex", "--batch", "2"]) == 0
    assert "6 call rows read, 1 re-indexed" in capsys.readouterr().out
    assert ids(fresh(config).search(CallFilters(callee=OTHER))) == ["r1"]
    assert ids(fresh(config).search(CallFilters(caller=CALLER[-4:]))) == ["r1", "z9", "a1"]
    conn = open_catalog(config.catalog.path)
    current = BlindIndex(read_hash_key(config.privacy.hash_key_file), alone=True)
    named = {r[0] for r in conn.execute("SELECT bi FROM call_numbers WHERE call_id = 'r1'")}
    assert current.full(TRANSFER) in named and retired.full(TRANSFER) not in named
    assert load_state(conn)["phase"] == "done"
    conn.close()
