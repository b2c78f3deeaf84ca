"""Issue 6 re-tried (red team): a call still in progress when ``erase --caller`` ran was stored
when it ended -- its call row, its spooled recording -- so the erased subject came back into the
catalog and the tier after the receipt said ``done``.  The tombstones carry the erasure time; the
call-row writer, the live-call snapshot and the shipper check them: a call that started before
the erasure is destroyed on arrival (and named in the receipt), one that started after it is a
new call and is kept, a legal hold still wins."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest
from tamper_support import CALLER, NOW, Deployment

from pbx_recorder.errors import ConfigError
from pbx_recorder.lifecycle import policy
from pbx_recorder.lifecycle.late_copies import ErasureAwareCatalog, LateCopyGuard
from pbx_recorder.lifecycle.tombstones import Tombstones
from pbx_recorder.recording.call_seal import CallSealer
from pbx_recorder.recording.manifest import Manifest, ManifestFile


@pytest.fixture()
def dep(tmp_path):
    d = Deployment(tmp_path)
    guard = LateCopyGuard(tmp_path / "hash.key")
    d.catalog.close()  # the daemon's catalog: every call row and snapshot asks the guard first
    d.catalog = ErasureAwareCatalog(tmp_path / "cat.db", clock=lambda: NOW, sealer=CallSealer(d.sign_key),
                                    guard=guard)
    d.shipper.catalog = d.catalog
    d.shipper.arrival_checks.append(guard.admit_spool_entry)
    d.call("n1_1.1")
    d.record("n1_1.1")  # an earlier call of the subject, stored
    yield d
    d.close()


def spool_live_call(d: Deployment, call_id: str, started: float) -> str:
    """The call ends: its row is written and its recording reaches the spool (as the daemon does)."""
    d.catalog.upsert_call({"call_id": call_id, "caller_num": CALLER, "callee_num": "4930123456",
                           "consent_decision": "granted", "status": "answered",
                           "started_at": started, "ended_at": started + 60})
    rid = f"{call_id}_call001"
    src = d.root / "mon" / f"{rid}.wav"
    src.write_bytes(os.urandom(6000))
    m = Manifest(recording_id=rid, call_id=call_id, recorded_from=started + 5, created_at=started + 61,
                 cdr={"src": CALLER, "dst": "4930123456"}, files=(ManifestFile(src.name, 0, "", 2.0),))
    d.spool.spool_recording(rid, [src], m)
    return rid


def files_naming(root, digits: str) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and digits.encode() in p.read_bytes()]


def receipt_of(d: Deployment, request_id: str) -> dict:
    row = d.catalog._conn().execute("SELECT status, receipt FROM erasure_requests WHERE request_id=?",
                                    (request_id,)).fetchone()
    return {**json.loads(row["receipt"]), "row_status": row["status"]}


def test_a_call_live_during_the_erasure_is_destroyed_when_it_arrives(dep, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    started = time.time() - 30  # live when the erasure runs
    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-live")
    assert code == 0 and json.loads(out)["status"] == "done", out
    rid = spool_live_call(dep, "n1_2.2", started)
    assert dep.catalog.get_call("n1_2.2") is None  # the call row was not written
    summary = dep.shipper.ship_once()
    assert summary.destroyed == [rid] and summary.shipped == []
    assert dep.catalog.get_call("n1_2.2") is None and dep.catalog.get_recording(rid) is None
    assert list(dep.spool.pending()) == [] and not (dep.root / "spool" / rid).exists()
    assert files_naming(dep.root, CALLER) == []  # catalog (and WAL), tier, spool, tombstones
    receipt = receipt_of(dep, "ER-live")
    assert receipt["row_status"] == receipt["status"] == "done"
    late = {(e["copy"], e["recording_id"]): e for e in receipt["late_copies"]}
    assert late[("spool", rid)]["action"] == "destroyed" and ("call_row", "") in late
    assert late[("spool", rid)]["data_key"].startswith("never made")
    assert f"spool:{rid}" in receipt["copies"]["deleted"] and receipt["late_recordings_destroyed"] == 1
    log_rows = dep.catalog._conn().execute(
        "SELECT reason, policy FROM deletion_log WHERE recording_id=?", (rid,)).fetchall()
    assert [tuple(r) for r in log_rows] == [("erasure_late_copy", "ER-live")]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "late copy of call=n1_2.2" in logged and CALLER not in logged
    code, out = dep.cli(capsys, "erase", "status")
    assert code == 0 and "ER-live  done  2 late cop(ies) destroyed on arrival" in out, out
    assert f"call n1_2.2: spool {rid} destroyed" in out and CALLER not in out
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out
    dep.shipper.ship_once()  # idempotent: nothing comes back, the receipt is not doubled
    assert len(receipt_of(dep, "ER-live")["late_copies"]) == 2


def test_a_call_that_starts_after_the_erasure_is_a_new_call_and_is_kept(dep, capsys):
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    rid = spool_live_call(dep, "n1_3.3", time.time() + 5)
    assert dep.shipper.ship_once().shipped == [rid]
    assert dep.catalog.get_call("n1_3.3")["caller_num"] == CALLER
    assert dep.catalog.get_recording(rid)["state"] == "verified"


def test_a_legal_hold_on_the_subject_still_wins_over_a_late_copy(dep, capsys):
    code, out = dep.cli(capsys, "hold", "add", "--caller", CALLER, "--reason", "litigation 7")
    assert code == 0, out
    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-held")
    assert code == 0 and json.loads(out)["status"] == "refused_partial", out
    rid = spool_live_call(dep, "n1_4.4", time.time() - 30)
    assert dep.shipper.ship_once().shipped == [rid]
    assert dep.catalog.get_call("n1_4.4") is not None
    receipt = receipt_of(dep, "ER-held")
    assert rid in [w["recording_id"] for w in receipt["withheld"]]
    assert receipt["row_status"] == "refused_partial"
    code, out = dep.cli(capsys, "erase", "status")
    assert rid in out and "PARTIAL" in out


def test_an_erasure_by_call_id_of_a_live_call_reaches_its_row_and_recording(dep, capsys):
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_5.5", "--request-id", "ER-cid")
    assert code == 0, out
    rid = spool_live_call(dep, "n1_5.5", time.time() + 5)  # the call id names the call: no new call
    assert dep.shipper.ship_once().destroyed == [rid]
    assert dep.catalog.get_call("n1_5.5") is None
    assert [e["copy"] for e in receipt_of(dep, "ER-cid")["late_copies"]] == ["call_row", "spool"]


def test_the_live_call_snapshot_of_an_erased_subject_is_not_written_again(dep, capsys):
    snapshot = {"call_id": "n1_6.6", "caller_num": CALLER, "created_at": time.time() - 30}
    dep.catalog.save_live_call("n1_6.6", snapshot)
    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-snap")
    assert code == 0 and json.loads(out)["live_call_snapshots_deleted"] == 1, out
    dep.catalog.save_live_call("n1_6.6", {**snapshot, "state": "recording"})  # the call's next event
    assert dep.catalog.load_live_calls() == {}
    new = {"call_id": "n1_7.7", "caller_num": CALLER, "created_at": time.time() + 5}
    dep.catalog.save_live_call("n1_7.7", new)  # a new call of the subject
    assert list(dep.catalog.load_live_calls()) == ["n1_7.7"]


def test_tombstones_keep_the_erasure_time_and_a_rerun_moves_it_on(tmp_path):
    tomb = Tombstones(tmp_path / "t.jsonl", b"k" * 32)
    h = policy.number_hash(tomb.hash_key, CALLER)
    assert tomb.add([("number", h)], request_id="R1", now=100.0) == 1
    assert tomb.add([("number", h)], request_id="R1", now=50.0) == 0
    assert tomb.add([("number", h)], request_id="R1", now=200.0) == 1
    tomb.add([("number", h)], request_id="R2", now=300.0, restore=False)
    assert tomb.erasures([h]) == [(300.0, "R2", "number"), (200.0, "R1", "number")]
    assert tomb.hashes() == {h}
    assert CALLER not in tomb.path.read_text()


@pytest.mark.parametrize(("started", "held", "action"), [
    (150.0, False, "destroy"), (250.0, False, "destroy"), (350.0, False, "keep"),
    (150.0, True, "withhold"), (None, False, "destroy")])
def test_late_copy_verdict(started, held, action):
    erasures = [(300.0, "R2", "number"), (200.0, "R1", "number")]
    v = policy.late_copy_verdict(erasures, started, held=held)
    assert v.action == action
    if action != "keep":
        assert (v.request_id, v.erased_at) == ("R2", 300.0)


def test_numbers_are_found_in_channel_names_and_formatted_text():
    found = policy.numbers_in({"channel": f"SIP/{CALLER}-00000007", "clid": '"x" <+49 151 12345678>'})
    assert CALLER in found and "+" + CALLER in found


def test_without_the_hash_key_nothing_of_a_call_is_shipped_once_anything_was_erased(dep, capsys):
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    (dep.root / "hash.key").unlink()  # the daemon cannot tell an erased subject from a new one
    rid = "n1_8.8_call001"
    src = dep.root / "mon" / f"{rid}.wav"
    src.write_bytes(os.urandom(6000))
    dep.spool.spool_recording(rid, [src], Manifest(recording_id=rid, call_id="n1_8.8", recorded_from=NOW,
                                                   files=(ManifestFile(src.name, 0, "", 2.0),)))
    summary = dep.shipper.ship_once()
    assert summary.retrying == [rid] and [e.recording_id for e in dep.spool.pending()] == [rid]
    with pytest.raises(ConfigError, match="privacy.hash_key_file"):
        dep.catalog.upsert_call({"call_id": "n1_8.8", "caller_num": "4917000000000", "started_at": NOW})


def test_another_node_on_the_same_catalog_destroys_the_late_copy_too(dep, capsys, tmp_path):
    """Two recorder nodes share the catalog (PostgreSQL in production).  The erasure runs on node A,
    whose host keeps the tombstone file; node B, with the same keys but no tombstone file, ends a
    call of the subject that was live during the erasure: the catalog's copy of the tombstones
    stops it there too, and a later call of the subject on node B is kept."""
    started = time.time() - 30
    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-nodeA")
    assert code == 0 and json.loads(out)["status"] == "done", out
    node_b = tmp_path / "node-b"
    node_b.mkdir()
    (node_b / "hash.key").write_bytes((tmp_path / "hash.key").read_bytes())
    (node_b / "hash.key").chmod(0o600)
    assert not (node_b / "erasure-tombstones.jsonl").exists()
    guard_b = LateCopyGuard(node_b / "hash.key")
    catalog_b = ErasureAwareCatalog(tmp_path / "cat.db", clock=lambda: NOW, sealer=CallSealer(dep.sign_key),
                                    guard=guard_b)
    try:
        catalog_b.upsert_call({"call_id": "n2_7.7", "caller_num": CALLER, "callee_num": "4930123456",
                               "status": "answered", "started_at": started, "ended_at": started + 60})
        assert catalog_b.get_call("n2_7.7") is None  # destroyed on arrival at node B
        late = json.loads(dep.catalog._conn().execute(
            "SELECT receipt FROM erasure_requests WHERE request_id='ER-nodeA'").fetchone()[0])["late_copies"]
        assert [(c["call_id"], c["copy"]) for c in late] == [("n2_7.7", "call_row")]
        later = time.time() + 5
        catalog_b.upsert_call({"call_id": "n2_8.8", "caller_num": CALLER, "callee_num": "4930123456",
                               "status": "answered", "started_at": later, "ended_at": later + 60})
        assert catalog_b.get_call("n2_8.8") is not None  # a new call after the erasure is kept
        # the destroyed call is tombstoned by its id too (its recordings are dropped when they come),
        # on node B's host and in the catalog: node A's guard sees it without node B's file
        assert guard_b.call_destroyed("n2_7.7", catalog_b._conn())
        assert (node_b / "erasure-tombstones.jsonl").exists()
        assert LateCopyGuard(tmp_path / "hash.key").call_destroyed("n2_7.7", dep.catalog._conn())
    finally:
        catalog_b.close()
