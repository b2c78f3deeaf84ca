"""A spool entry's removal cut short by a crash (session-45 review): the manifest went first and the
folder after, so a kill in between left the audio in a folder with neither manifest nor intent --
recovery left it "for an operator", erasure did not see it, retention never touches the spool, and
an erasure's receipt (or a late copy's "destroyed on arrival") said it was gone.  Now the folder is
renamed out of every scan in one step first; recovery finishes the removal; and an erasure removes
a manifest-less folder an older version left behind by the call its name gives."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from tamper_support import CALLER, Deployment

from pbx_recorder.recording import spool as spool_module
from pbx_recorder.recording.spool import MANIFEST, REMOVING_PREFIX


class Killed(BaseException):
    pass


@pytest.fixture()
def dep(tmp_path):
    d = Deployment(tmp_path)
    d.call("n1_2.2")
    d.rid = d.record("n1_2.2", ship=False)  # type: ignore[attr-defined]
    yield d
    d.close()


def test_a_removal_killed_half_way_leaves_nothing_any_scan_sees_and_recovery_ends_it(dep, monkeypatch):
    real_rmtree = shutil.rmtree

    def killed(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise Killed  # the process dies before any file of the entry is deleted

    monkeypatch.setattr(spool_module.shutil, "rmtree", killed)
    with pytest.raises(Killed):
        dep.spool.remove(dep.rid)
    monkeypatch.setattr(spool_module.shutil, "rmtree", real_rmtree)
    names = os.listdir(dep.spool.root)
    assert names == [f"{REMOVING_PREFIX}{dep.rid}"]  # before: the rid's folder, audio in it
    assert dep.spool.pending() == []  # nothing ships it again
    repaired, incomplete = dep.spool.recover()
    assert repaired == [] and incomplete == [] and os.listdir(dep.spool.root) == []


def test_an_erasure_removes_a_manifest_less_folder_an_older_version_left(dep, capsys):
    entry = dep.spool.entry_dir(dep.rid)
    (entry / MANIFEST).unlink()  # what the old removal left when killed after its first step
    assert any(p.suffix == ".wav" for p in entry.iterdir())
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    receipt = json.loads(out)
    assert dep.rid in receipt["spool_entries_deleted"]  # before: left, and the receipt said done
    assert not entry.exists()
