"""A crash while spooling must leave no plaintext in the PBX's drop folder and lose no leg.

The process is "killed" (a BaseException from the mover, as kill -9 would stop it) after leg 1
of a dual recording, or after a foreign-owned file's copy was published but before its unlink;
then ``Spool.recover()`` and one orphan pass run, as at a restart.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.core.naming import make_call_id, make_recording_id, recording_paths
from pbx_recorder.fault_recovery import FaultRecovery
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.pipeline import Pipeline
from pbx_recorder.recording.shipper import InProcessClaimer
from pbx_recorder.recording.spool import Spool
from storage import atomic
from storage.hashing import hash_file

CALL = make_call_id("n1", "1700000000.1", "20261201150000")
RID = make_recording_id(CALL, "call", 1)


class Killed(BaseException):
    """The process dies: nothing after this point runs, no except clause catches it."""


def _legs(monitor: Path) -> list[Path]:
    legs = [Path(p) for p in recording_paths(str(monitor), CALL, RID, 1764601680, "dual")]
    for n, leg in enumerate(legs):
        leg.write_bytes(os.urandom(4096) + bytes([n]))
        old = time.time() - 300
        os.utime(leg, (old, old))
    return legs


def _manifest(legs: list[Path]) -> Manifest:
    return Manifest(recording_id=RID, call_id=CALL, mode="dual", cdr={"disposition": "ANSWERED"},
                    files=(ManifestFile(name=legs[0].name, size=0, sha256="", role="read"),
                           ManifestFile(name=legs[1].name, size=0, sha256="", role="write")))


def _mover_dying_at(call: int):  # type: ignore[no-untyped-def]
    seen = {"n": 0}

    def mover(src: Path, dst: Path) -> str:
        seen["n"] += 1
        if seen["n"] == call:
            raise Killed(f"killed before move {call}")
        return atomic.move_file(src, dst)
    return mover


def _recovery(tmp_path: Path, monitor: Path, catalog: Catalog, spool: Spool,
              claimer: InProcessClaimer | None = None) -> FaultRecovery:
    pipeline = Pipeline(spool, catalog=catalog, stable_ms=10, poll_ms=5, closure_timeout_s=1,
                        discard_timeout_s=1)
    callbook = SimpleNamespace(monitor_dir=str(monitor), node_prefix="n1_", recording_ids=lambda: set())
    shipper = SimpleNamespace(claimer=claimer or InProcessClaimer())
    app = SimpleNamespace(catalog=catalog, pipeline=pipeline, callbook=callbook, shipper=shipper)
    return FaultRecovery(app, time.time)  # type: ignore[arg-type]


@pytest.mark.parametrize("dies_at", [1, 2])
async def test_killed_between_legs_recover_spools_both_and_empties_the_drop_folder(
        tmp_path: Path, dies_at: int) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    legs = _legs(monitor)
    hashes = [hash_file(p) for p in legs]
    with pytest.raises(Killed):
        Spool(tmp_path / "spool", mover=_mover_dying_at(dies_at)).spool_recording(RID, legs, _manifest(legs))
    spool = Spool(tmp_path / "spool")  # restart
    assert spool.recover() == ([RID], [])
    (entry,) = spool.pending()
    assert [f.sha256 for f in entry.manifest.files] == hashes
    assert [f.role for f in entry.manifest.files] == ["read", "write"]
    assert "file_missing" not in entry.manifest.flags
    assert list(monitor.iterdir()) == []
    catalog = Catalog(tmp_path / "c.db")
    try:  # one orphan pass afterwards: nothing left to find, nothing duplicated
        recovery = _recovery(tmp_path, monitor, catalog, spool)
        assert await recovery.recover_orphans() == 0
        assert [e.recording_id for e in spool.pending()] == [RID]
        assert not recovery.app.pipeline.deferred
    finally:
        catalog.close()


def _killed_after_the_copy(tmp_path: Path, monitor: Path,
                           monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A PBX-owned recording (so copied, not moved) spooled by a process killed after its copy was
    published, before the source's unlink; (the source, its SHA-256 before the spooling)."""
    (src,) = [Path(p) for p in recording_paths(str(monitor), CALL, RID, 1764601680, "mixed")]
    src.write_bytes(os.urandom(4096))
    digest = hash_file(src)
    real_uid = os.geteuid()
    monkeypatch.setattr(atomic.os, "geteuid", lambda: real_uid + 4242)  # the PBX account owns it
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self == src:
            raise Killed("killed after the copy was published")
        real_unlink(self, missing_ok=missing_ok)
    monkeypatch.setattr(Path, "unlink", unlink)
    manifest = Manifest(recording_id=RID, call_id=CALL,
                        files=(ManifestFile(name=src.name, size=0, sha256=""),))
    with pytest.raises(Killed):
        Spool(tmp_path / "spool").spool_recording(RID, [src], manifest)
    monkeypatch.undo()
    return src, digest


def test_killed_after_the_copy_before_the_unlink_recover_removes_the_pbx_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    src, digest = _killed_after_the_copy(tmp_path, monitor, monkeypatch)
    assert src.exists() and (tmp_path / "spool" / RID / src.name).exists()  # the crash window
    spool = Spool(tmp_path / "spool")
    assert spool.recover() == ([RID], [])
    (entry,) = spool.pending()
    assert [f.sha256 for f in entry.manifest.files] == [digest]
    assert hash_file(entry.file_path(src.name)) == digest
    assert list(monitor.iterdir()) == []


def test_a_source_that_differs_from_its_published_copy_is_kept_with_an_alert(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    src, _ = _killed_after_the_copy(tmp_path, monitor, monkeypatch)
    src.write_bytes(b"other bytes")  # not what was copied: deleting either could lose audio
    spool = Spool(tmp_path / "spool")
    with caplog.at_level(logging.ERROR):
        assert spool.recover() == ([RID], [])
    assert src.read_bytes() == b"other bytes"
    assert spool.pending()[0].manifest.files[0].size == 4096
    assert any("ALERT" in r.getMessage() and RID in r.getMessage() for r in caplog.records)


def _legacy_entry(tmp_path: Path, monitor: Path) -> tuple[Spool, list[Path]]:
    """What the old code left: an entry with leg 1 only (file_missing), leg 2 in the drop folder."""
    legs = _legs(monitor)
    spool = Spool(tmp_path / "spool")
    spool.spool_recording(RID, [legs[0]], _manifest(legs).with_flags("spool_repaired"))
    assert "file_missing" in spool.pending()[0].manifest.flags
    return spool, legs


async def test_orphan_pass_moves_a_lost_leg_into_its_spool_entry(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    spool, legs = _legacy_entry(tmp_path, monitor)
    leg2 = hash_file(legs[1])
    catalog = Catalog(tmp_path / "c.db")
    try:
        catalog.upsert_recording({"recording_id": RID, "call_id": CALL, "state": "spooled", "mode": "dual"})
        recovery = _recovery(tmp_path, monitor, catalog, spool)
        with caplog.at_level(logging.ERROR):
            assert await recovery.recover_orphans() == 1
        (entry,) = spool.pending()
        assert [f.name for f in entry.manifest.files] == [legs[0].name, legs[1].name]
        assert entry.manifest.files[1].sha256 == leg2 and entry.manifest.files[1].role == "write"
        assert "file_missing" not in entry.manifest.flags and "leg_recovered" in entry.manifest.flags
        assert list(monitor.iterdir()) == []
        assert any("ALERT" in r.getMessage() and RID in r.getMessage() and CALL in r.getMessage()
                   for r in caplog.records)
        assert await recovery.recover_orphans() == 0
    finally:
        catalog.close()


async def test_orphan_pass_waits_while_the_shipper_holds_the_entry(tmp_path: Path) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    spool, legs = _legacy_entry(tmp_path, monitor)
    claimer = InProcessClaimer()
    assert claimer.claim(RID)
    catalog = Catalog(tmp_path / "c.db")
    try:
        recovery = _recovery(tmp_path, monitor, catalog, spool, claimer)
        assert await recovery.recover_orphans() == 0
        assert legs[1].exists() and len(spool.pending()[0].manifest.files) == 1
        claimer.release(RID)
        assert await recovery.recover_orphans() == 1
        assert not legs[1].exists() and len(spool.pending()[0].manifest.files) == 2
    finally:
        catalog.close()


def test_a_kill_while_adding_a_leg_is_finished_by_recover(tmp_path: Path) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    spool, legs = _legacy_entry(tmp_path, monitor)
    dying = Spool(tmp_path / "spool", mover=_mover_dying_at(1))
    with pytest.raises(Killed):
        dying.add_file(RID, legs[1], "write")
    assert spool.pending() == []  # mid-change: not shippable until recovered
    assert spool.recover() == ([RID], [])
    (entry,) = spool.pending()
    assert [f.name for f in entry.manifest.files] == [legs[0].name, legs[1].name]
    assert list(monitor.iterdir()) == []


async def test_a_leftover_of_a_stored_recording_is_removed_only_when_byte_identical(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    legs = _legs(monitor)
    shipped = {"files": [{"name": legs[0].name, "sha256": hash_file(legs[0]), "size": 4097}]}
    catalog = Catalog(tmp_path / "c.db")
    try:
        catalog.upsert_recording({"recording_id": RID, "call_id": CALL, "state": "verified", "mode": "dual",
                                  "manifest": shipped, "flags": ["file_missing"]})
        recovery = _recovery(tmp_path, monitor, catalog, Spool(tmp_path / "spool"))
        with caplog.at_level(logging.ERROR):
            assert await recovery.recover_orphans() == 1
        assert not legs[0].exists()  # the PBX's copy of what was shipped: gone
        assert legs[1].exists()  # never shipped: deleting it would lose the leg
        assert "leftover_file" in catalog.get_recording(RID)["flags"]
        alerts = [r.getMessage() for r in caplog.records if "ALERT" in r.getMessage()]
        assert any(legs[1].name in m and "operator" in m for m in alerts)
    finally:
        catalog.close()


async def test_a_leftover_whose_bytes_differ_from_the_shipped_copy_is_kept(tmp_path: Path) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    legs = _legs(monitor)
    shipped = {"files": [{"name": legs[0].name, "sha256": "0" * 64},
                         {"name": legs[1].name, "sha256": "1" * 64}]}
    catalog = Catalog(tmp_path / "c.db")
    try:
        catalog.upsert_recording({"recording_id": RID, "call_id": CALL, "state": "stored", "mode": "dual",
                                  "manifest": shipped})
        recovery = _recovery(tmp_path, monitor, catalog, Spool(tmp_path / "spool"))
        assert await recovery.recover_orphans() == 0
        assert all(p.exists() for p in legs)
    finally:
        catalog.close()
