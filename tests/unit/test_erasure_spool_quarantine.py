"""Erasure reaches the spool's quarantine: a crash's ``.raw`` original of the subject's call, kept
in ``<spool>/_quarantine/<recording id>/`` for an operator (the caller's voice in clear), was left
behind by ``erase --caller`` / ``erase --call-id`` although the receipt said ``done``.  Now it is
removed with its note and named in the receipt; another call's leftover is never touched, and a
legal hold on the call keeps it (the request is then partial).  ``retention apply`` removes the
leftover of a recording it disposes of (not one of a held recording, nor another's)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tamper_support import CALLER, NOW, Deployment

from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.spool import NOTE_SUFFIX, QUARANTINE_DIR

OTHER = "4917000000000"
DAY = 86400.0


def _leftover(dep: Deployment, rid: str, call_id: str, *, note: bool = True) -> Path:
    """What fault recovery does with a stereo ``.raw`` original: into the quarantine, with a note."""
    src = dep.root / "mon" / f"{rid}.raw"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(os.urandom(4000))
    kept = dep.spool.quarantine(rid, call_id, src, "the .raw original of a spooled stereo WAV", NOW)
    if not note:  # a crash between the move and the note
        kept.with_name(kept.name + NOTE_SUFFIX).unlink()
    return kept


@pytest.fixture()
def dep(tmp_path):
    d = Deployment(tmp_path)
    d.call("n1_1.1")
    d.record("n1_1.1")  # shipped: its spool entry is gone, the leftover stays in quarantine
    d.call("n1_2.2")
    d.record("n1_2.2", ship=False)  # still waiting in the spool, its leftover beside it
    d.call("n1_3.3", caller=OTHER)
    d.record("n1_3.3")  # another subject's call
    yield d
    d.close()


def _quarantine(dep: Deployment) -> list[str]:
    root = dep.root / "spool" / QUARANTINE_DIR
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_erase_by_caller_removes_the_subjects_quarantined_leftovers_only(dep, capsys):
    _leftover(dep, "n1_1.1_call001", "n1_1.1")
    _leftover(dep, "n1_2.2_call001", "n1_2.2", note=False)  # found by its folder (the recording)
    _leftover(dep, "n1_3.3_call001", "n1_3.3")
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["status"] == "done"
    assert receipt["spool_quarantine_deleted"] == ["n1_1.1_call001/n1_1.1_call001.raw",
                                                   "n1_2.2_call001/n1_2.2_call001.raw"]
    assert "spool-quarantine:n1_1.1_call001/n1_1.1_call001.raw" in receipt["copies"]["deleted"]
    # the other subject's leftover and its note are untouched; the erased calls' folders are gone
    assert _quarantine(dep) == ["n1_3.3_call001/n1_3.3_call001.raw",
                                "n1_3.3_call001/n1_3.3_call001.raw" + NOTE_SUFFIX]


def test_erase_by_call_id_reaches_a_leftover_whose_call_row_is_already_gone(dep, capsys):
    _leftover(dep, "n1_1.1_call001", "n1_1.1")
    _leftover(dep, "n1_3.3_call001", "n1_3.3")
    dep.sql("DELETE FROM recordings WHERE call_id='n1_1.1'", "DELETE FROM calls WHERE call_id='n1_1.1'")
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_1.1")
    assert code == 0, out
    assert json.loads(out)["spool_quarantine_deleted"] == ["n1_1.1_call001/n1_1.1_call001.raw"]
    assert [p for p in _quarantine(dep) if not p.startswith("n1_3.3_call001/")] == []


def test_a_note_naming_another_call_is_never_taken_for_the_erased_one(dep, capsys):
    """The folder is the erased call's recording, but the note names another call: kept."""
    kept = _leftover(dep, "n1_1.1_call001", "n1_3.3")
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_1.1")
    assert code == 0, out
    assert json.loads(out)["spool_quarantine_deleted"] == []
    assert kept.is_file()


def test_a_legal_hold_on_the_call_keeps_its_quarantined_leftover(dep, capsys):
    kept = _leftover(dep, "n1_1.1_call001", "n1_1.1")
    code, out = dep.cli(capsys, "hold", "add", "--call", "n1_1.1", "--reason", "litigation 9")
    assert code == 0, out
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["status"] == "refused_partial" and receipt["spool_quarantine_deleted"] == []
    assert {"recording_id": "n1_1.1_call001", "call_id": "n1_1.1",
            "reason": "legal hold (kept in the spool's quarantine)"}.items() <= next(
        w for w in receipt["withheld"] if w["reason"].startswith("legal hold (kept")).items()
    assert kept.is_file() and kept.with_name(kept.name + NOTE_SUFFIX).is_file()


def test_a_call_hold_keeps_the_leftover_of_a_call_only_the_quarantine_knows(dep, capsys):
    """Its rows gone (an earlier erasure), no spool entry: the hold on the call id alone keeps it."""
    kept = _leftover(dep, "n1_1.1_call001", "n1_1.1")
    code, out = dep.cli(capsys, "hold", "add", "--call", "n1_1.1", "--reason", "regulator")
    assert code == 0, out
    dep.sql("DELETE FROM hold_recordings", "DELETE FROM recordings WHERE call_id='n1_1.1'",
            "DELETE FROM calls WHERE call_id='n1_1.1'")
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_1.1")
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["status"] == "refused_partial" and receipt["spool_quarantine_deleted"] == []
    assert kept.is_file()


def _record_due(dep: Deployment, call_id: str) -> str:
    """A recording stored 400 days ago with the 180-day class: due for disposal today."""
    rid = f"{call_id}_call001"
    src = dep.root / "mon" / f"{rid}.wav"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(os.urandom(6000))
    m = Manifest(recording_id=rid, call_id=call_id, recorded_from=NOW - 400 * DAY,
                 created_at=NOW - 400 * DAY, retention_class="standard",
                 cdr={"src": CALLER, "dst": "4930123456"}, files=(ManifestFile(src.name, 0, "", 2.0),))
    dep.spool.spool_recording(rid, [src], m)
    assert rid in dep.shipper.ship_once().shipped
    return rid


def test_retention_apply_removes_the_leftover_of_a_recording_it_disposes_and_keeps_a_held_ones(
        tmp_path, capsys):
    dep = Deployment(tmp_path)
    try:
        for call_id in ("n1_7.7", "n1_8.8"):
            dep.call(call_id, started_at=NOW - 400 * DAY, ended_at=NOW - 400 * DAY)
            _leftover(dep, _record_due(dep, call_id), call_id)
        _leftover(dep, "n1_9.9_call001", "n1_9.9")  # a recording retention does not dispose of
        assert dep.cli(capsys, "hold", "add", "--call", "n1_8.8", "--reason", "case 3")[0] == 0
        code, out = dep.cli(capsys, "retention", "apply", "--yes")
        assert code == 0, out
        assert "disposed 1, refused 1" in out
        assert "removed  spool quarantine n1_7.7_call001/n1_7.7_call001.raw" in out
        assert [p.split("/")[0] for p in _quarantine(dep)] == ["n1_8.8_call001"] * 2 + ["n1_9.9_call001"] * 2
    finally:
        dep.close()
