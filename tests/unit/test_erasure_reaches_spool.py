"""Issue 6 re-tried (red team): ``erase --caller`` reported ``done`` while a recording of the
subject still waited in the spool -- its manifest (caller and callee numbers in clear) and
plaintext audio stayed on disk, and the next shipper pass stored it and put the subject back
in the catalog.  Erasure now removes the subject's spool entries and names them in the receipt."""

from __future__ import annotations

import json

import pytest
from tamper_support import CALLER, Deployment


@pytest.fixture()
def dep(tmp_path):
    d = Deployment(tmp_path)
    d.call("n1_1.1")
    d.record("n1_1.1")
    d.call("n1_2.2")
    d.record("n1_2.2", ship=False)  # the call just ended: still in the spool
    d.call("n1_3.3", caller="4917000000000")
    d.record("n1_3.3", ship=False)  # another subject, also waiting
    yield d
    d.close()


def _files_naming(root, digits: str) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and digits.encode() in p.read_bytes()]


def test_erase_by_caller_removes_the_subjects_spool_entries(dep, capsys):
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["status"] == "done" and receipt["spool_entries_deleted"] == ["n1_2.2_call001"]
    assert "spool:n1_2.2_call001" in receipt["copies"]["deleted"]
    assert _files_naming(dep.root, CALLER) == []
    assert [e.recording_id for e in dep.spool.pending()] == ["n1_3.3_call001"]  # others wait on
    dep.shipper.ship_once()  # the next pass must not bring the subject back
    assert dep.catalog.get_call("n1_2.2") is None and dep.catalog.get_recording("n1_2.2_call001") is None


def test_erase_by_call_id_reaches_a_call_only_the_spool_knows(dep, capsys):
    dep.sql("DELETE FROM calls WHERE call_id='n1_2.2'")  # the CDR has not been written yet
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_2.2")
    assert code == 0, out
    assert json.loads(out)["spool_entries_deleted"] == ["n1_2.2_call001"]
    dep.shipper.ship_once()
    assert dep.catalog.get_recording("n1_2.2_call001") is None


def test_a_spooled_recording_under_a_legal_hold_is_withheld_not_destroyed(dep, capsys):
    """The spool purge must respect holds: a caller-scope hold covers a recording of the subject
    that is still waiting to be shipped (no catalog row yet), and its call row stays."""
    code, out = dep.cli(capsys, "hold", "add", "--caller", CALLER, "--reason", "litigation 7")
    assert code == 0, out
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["status"] == "refused_partial" and receipt["spool_entries_deleted"] == []
    assert "n1_2.2_call001" in [w["recording_id"] for w in receipt["withheld"]]
    assert sorted(e.recording_id for e in dep.spool.pending()) == ["n1_2.2_call001", "n1_3.3_call001"]
    assert dep.catalog.get_call("n1_2.2") is not None
