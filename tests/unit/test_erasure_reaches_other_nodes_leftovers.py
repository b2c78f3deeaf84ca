"""Erasure reaches the leftovers on every node sharing the catalog, not only on the node it runs on.

``erase`` deletes the spool-quarantine leftovers of the node where it runs.  With two recorder
nodes on one catalog, node B's quarantine (a crash's ``.raw`` original: the caller's voice in
clear) and node B's monitor folder (a finished file no job holds: an orphan) kept the erased
subject's audio: the orphan was even "held for an operator" with an ALERT at every scan, since
its call row was gone.  Now node B's daemon, at each orphan scan, deletes the leftovers of calls
whose call id the erasure tombstoned in the catalog (``LateCopyGuard.erased_leftover``); the
erasure's receipt lists them under ``late_copies``.  Another subject's leftovers are untouched.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from tamper_support import CALLER, NOW, Deployment

from pbx_recorder.core.naming import recording_paths
from pbx_recorder.fault_recovery import FaultRecovery
from pbx_recorder.lifecycle.late_copies import ErasureAwareCatalog, LateCopyGuard
from pbx_recorder.recording import ledger
from pbx_recorder.recording.call_seal import CallSealer
from pbx_recorder.recording.pipeline import Pipeline
from pbx_recorder.recording.shipper import InProcessClaimer
from pbx_recorder.recording.spool import QUARANTINE_DIR, Spool

OTHER = "4917000000000"
ERASED, KEPT = "n2_5.5", "n2_6.6"  # node B's calls: the subject's, and another caller's


@pytest.fixture()
def nodes(tmp_path: Path):
    """Node A (where ``erase`` runs) and node B: the same catalog and keys, B's own disks."""
    a = Deployment(tmp_path)
    a.call(ERASED)
    a.record(ERASED)  # node B's call, stored; its rows are in the shared catalog
    a.call(KEPT, caller=OTHER)
    a.record(KEPT)
    b = tmp_path / "node-b"
    (b / "monitor").mkdir(parents=True)
    (b / "hash.key").write_bytes((tmp_path / "hash.key").read_bytes())
    (b / "hash.key").chmod(0o600)
    catalog_b = ErasureAwareCatalog(tmp_path / "cat.db", clock=lambda: NOW, sealer=CallSealer(a.sign_key),
                                    guard=LateCopyGuard(b / "hash.key"))
    spool_b = Spool(b / "spool")
    pipeline = Pipeline(spool_b, catalog=catalog_b, stable_ms=10, poll_ms=5, closure_timeout_s=1,
                        discard_timeout_s=1)
    callbook = SimpleNamespace(monitor_dir=str(b / "monitor"), node_prefix="n2_", recording_ids=lambda: set())
    app = SimpleNamespace(catalog=catalog_b, pipeline=pipeline, callbook=callbook,
                          shipper=SimpleNamespace(claimer=InProcessClaimer()))
    yield a, b, spool_b, FaultRecovery(app, time.time)  # type: ignore[arg-type]
    catalog_b.close()
    a.close()


def _quarantined(b: Path, spool: Spool, call_id: str) -> Path:
    src = b / "monitor" / f"{call_id}_call001.raw"
    src.write_bytes(os.urandom(4000))
    return spool.quarantine(f"{call_id}_call001", call_id, src, "the .raw original of a spooled stereo WAV",
                            NOW)


def _orphan(b: Path, call_id: str) -> Path:
    """A finished file of a second recording of the call, closed long ago, that no job holds."""
    (path,) = (Path(p) for p in recording_paths(str(b / "monitor"), call_id, f"{call_id}_call002",
                                                  NOW - 50, "mixed"))
    path.write_bytes(b"RIFF" + os.urandom(4000))
    old = time.time() - 300
    os.utime(path, (old, old))
    return path


def _receipt(a: Deployment, request_id: str) -> dict:
    return json.loads(a.catalog._conn().execute(
        "SELECT receipt FROM erasure_requests WHERE request_id=?", (request_id,)).fetchone()[0])


async def test_node_b_deletes_the_erased_callers_quarantined_leftover(nodes, capsys) -> None:
    a, b, spool_b, recovery_b = nodes
    erased = _quarantined(b, spool_b, ERASED)
    kept = _quarantined(b, spool_b, KEPT)
    code, out = a.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-1")
    assert code == 0 and json.loads(out)["status"] == "done", out
    assert erased.exists()  # node A's erase cannot reach node B's disk
    assert await recovery_b.recover_orphans() == 1
    assert not erased.exists() and not erased.parent.exists()
    assert kept.exists()
    receipt = _receipt(a, "ER-1")
    assert [(c["call_id"], c["copy"], c["action"]) for c in receipt["late_copies"]] == [
        (ERASED, "spool_quarantine", "destroyed")]
    assert f"spool-quarantine:{ERASED}_call001" in receipt["copies"]["deleted"]
    assert receipt["late_leftovers_deleted"] == 1 and "late_recordings_destroyed" not in receipt
    assert await recovery_b.recover_orphans() == 0  # nothing left to do; the receipt is not doubled
    assert len(_receipt(a, "ER-1")["late_copies"]) == 1
    assert sorted(p.name for p in (b / "spool" / QUARANTINE_DIR).rglob("*.raw")) == [kept.name]


async def test_node_b_deletes_the_erased_calls_orphan_instead_of_holding_it(nodes, capsys, caplog) -> None:
    a, b, spool_b, recovery_b = nodes
    orphan = _orphan(b, ERASED)
    other = _orphan(b, KEPT)
    code, out = a.cli(capsys, "erase", "--call-id", ERASED, "--request-id", "ER-2")
    assert code == 0 and json.loads(out)["status"] == "done", out
    await recovery_b.recover_orphans()
    assert not orphan.exists()  # not kept "for an operator" with an ALERT at every scan
    assert not any("ALERT" in r.getMessage() and ERASED in r.getMessage() for r in caplog.records)
    receipt = _receipt(a, "ER-2")
    assert [(c["call_id"], c["copy"]) for c in receipt["late_copies"]] == [(ERASED, "orphan")]
    assert f"monitor:{ERASED}_call002" in receipt["copies"]["deleted"]
    assert a.catalog.get_recording(f"{ERASED}_call002") is None
    # the other call's orphan is settled as before (its call row allows it: spooled, not deleted)
    assert not other.exists() and spool_b.is_complete(f"{KEPT}_call002")


async def test_nothing_erased_nothing_deleted(nodes) -> None:
    _, b, spool_b, recovery_b = nodes
    kept = _quarantined(b, spool_b, ERASED)
    await recovery_b.recover_orphans()
    assert kept.exists()


async def test_a_call_the_erasure_withheld_keeps_its_leftovers_on_every_node(nodes, capsys) -> None:
    """A legal hold on the caller, then ``erase --call-id``: the recording is withheld and the call
    row stays (the request is partial); the call id is tombstoned for live copies only.  Node B's
    sweep must keep that call's quarantined original (``erase`` itself keeps it)."""
    a, b, spool_b, recovery_b = nodes
    src = b / "monitor" / f"{ERASED}_call002.raw"  # a leftover of a recording the catalog never had
    src.write_bytes(os.urandom(4000))
    kept = spool_b.quarantine(f"{ERASED}_call002", ERASED, src, "the .raw original", NOW)
    code, out = a.cli(capsys, "hold", "add", "--caller", CALLER, "--reason", "subpoena")
    assert code == 0, out
    code, out = a.cli(capsys, "erase", "--call-id", ERASED, "--request-id", "ER-3")
    assert code == 0 and json.loads(out)["status"] == "refused_partial", out
    assert await recovery_b.recover_orphans() == 0
    assert kept.exists()
    assert "late_copies" not in _receipt(a, "ER-3")


async def test_one_leftover_that_cannot_be_deleted_keeps_no_other(nodes, capsys, monkeypatch) -> None:
    a, b, spool_b, recovery_b = nodes
    first = _quarantined(b, spool_b, ERASED)
    src = b / "monitor" / f"{ERASED}_call002.raw"
    src.write_bytes(os.urandom(4000))
    second = spool_b.quarantine(f"{ERASED}_call002", ERASED, src, "another leftover", NOW)
    code, out = a.cli(capsys, "erase", "--call-id", ERASED, "--request-id", "ER-4")
    assert code == 0, out
    drop = Spool.drop_quarantined

    def refuse_first(self, item):  # type: ignore[no-untyped-def]
        if item.path == first:
            raise PermissionError("read-only file system")
        drop(self, item)

    monkeypatch.setattr(Spool, "drop_quarantined", refuse_first)
    assert await recovery_b.recover_orphans() == 1
    assert first.exists() and not second.exists()
    late = _receipt(a, "ER-4")["late_copies"]  # only what is gone is named
    assert [(c["recording_id"], c["copy"]) for c in late] == [(f"{ERASED}_call002", "spool_quarantine")]


async def test_a_leftover_whose_note_is_lost_is_tied_to_its_erased_call_by_the_ledger(nodes, capsys) -> None:
    """README "Still open" (session 36): a quarantined original whose note was lost (a crash
    between the move and the note) was tied to its call only by its recording's catalog row,
    which the erasure removes: it stayed, the erased caller's voice in clear.  The ledger's
    ``erased`` entry of the recording (the folder's name) names the call."""
    a, b, spool_b, recovery_b = nodes
    erased = _quarantined(b, spool_b, ERASED)
    kept = _quarantined(b, spool_b, KEPT)
    for path in (erased, kept):
        path.with_name(path.name + ".note.json").unlink()
    code, out = a.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-5")
    assert code == 0, out
    assert await recovery_b.recover_orphans() == 1
    assert not erased.exists() and kept.exists()
    assert [(c["call_id"], c["copy"]) for c in _receipt(a, "ER-5")["late_copies"]] == [
        (ERASED, "spool_quarantine")]


async def test_a_ledger_entry_naming_another_call_never_ties_a_leftover(nodes, capsys) -> None:
    """The ledger's ``erased`` entry is read for the folder's recording id; a call id there that the
    recording id does not start with (another call's, written by mistake or by hand) is ignored."""
    a, b, spool_b, recovery_b = nodes
    kept = _quarantined(b, spool_b, KEPT)
    kept.with_name(kept.name + ".note.json").unlink()
    code, out = a.cli(capsys, "erase", "--call-id", ERASED, "--request-id", "ER-6")
    assert code == 0, out
    conn = a.catalog._conn()
    conn.execute("BEGIN IMMEDIATE")
    ledger.append(conn, "erased", f"{KEPT}_call001", {"request_id": "ER-6", "call_id": ERASED}, NOW)
    conn.execute("COMMIT")
    a.sql(f"DELETE FROM recordings WHERE recording_id = '{KEPT}_call001'")  # no row to tell it apart
    assert await recovery_b.recover_orphans() == 0
    assert kept.exists()
