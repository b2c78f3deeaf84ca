"""Issue 10: every file MixMonitor finished ends in the catalog or in an alert: spooling is
retried with back-off for any error, and orphaned files in the monitor folder are settled."""

from __future__ import annotations

import os
import time
import wave
from pathlib import Path

from ami.actions import start_recording
from pbx_recorder.catalog import Catalog
from pbx_recorder.core.commands import FinalizeRecording, StartRecording
from pbx_recorder.core.naming import make_recording_id, recording_paths
from pbx_recorder.recording import orphans
from pbx_recorder.recording.closure import CLOSED_MARKER, Closure
from pbx_recorder.recording.pipeline import Pipeline, retry_delay
from pbx_recorder.recording.spool import Spool

CALL = "n1_20261201150000-1700000000.1"
RID = make_recording_id(CALL, "call", 1)
SNIPPET = Path(__file__).resolve().parents[2] / "dialplan" / "asterisk" / "pbx-recorder.conf"


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10\x00\xf0" * 8000)
    return path


async def _closed(path: str) -> Closure:
    return Closure(path, CLOSED_MARKER, size=1)


async def test_read_only_spool_is_retried_with_backoff_and_shows_in_the_catalog(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "a.wav")
    broken = [True]

    def mover(src: Path, dst: Path) -> str:
        if broken[0]:
            raise PermissionError(13, "Read-only file system", str(dst))
        os.replace(src, dst)
        return ""

    now = [1000.0]
    catalog = Catalog(tmp_path / "c.db")
    pipe = Pipeline(Spool(tmp_path / "spool", mover=mover), catalog=catalog, waiter=_closed,
                    clock=lambda: now[0])
    cmd = FinalizeRecording(CALL, RID, (str(wav),), {"kind": "call", "mode": "mixed", "cdr": {"a": "1"}})
    assert await pipe.finalize(cmd) is None
    row = catalog.get_recording(RID)
    assert row is not None and row["state"] == "stopped" and row["flags"] == ["spool_failed"]
    assert wav.exists() and RID in pipe.pending_ids()
    assert not (tmp_path / "spool" / RID).exists()  # rolled back: no half entry for recovery
    assert await pipe.retry_deferred() == 0  # not due yet (5 s)
    now[0] += 5.1
    assert await pipe.retry_deferred() == 0  # still read-only: next in 10 s
    broken[0] = False
    now[0] += 5.1
    assert await pipe.retry_deferred() == 0  # back-off not over
    now[0] += 5.0
    assert await pipe.retry_deferred() == 1
    assert catalog.get_recording(RID)["state"] == "spooled" and not pipe.deferred
    assert [retry_delay(n) for n in (1, 2, 3, 10)] == [5.0, 10.0, 20.0, 300.0]
    catalog.close()


def test_scan_finds_closed_files_nobody_holds(tmp_path: Path) -> None:
    (mixed,) = recording_paths(str(tmp_path), CALL, RID, 1764601680, "mixed")
    other = make_recording_id(CALL, "consent", 2)
    legs = recording_paths(str(tmp_path), CALL, other, 1764601680, "dual")
    busy = make_recording_id(CALL, "call", 3)
    (held,) = recording_paths(str(tmp_path), CALL, busy, 1764601680, "mixed")
    for p in (mixed, *legs, held):
        Path(p).write_bytes(b"RIFF")
    (tmp_path / "someone-elses.wav").write_bytes(b"x")
    fresh = make_recording_id(CALL, "call", 4)
    (young,) = recording_paths(str(tmp_path), CALL, fresh, 1764601680, "mixed")
    now = time.time()
    for p in (mixed, *legs, held):
        os.utime(p, (now - 120, now - 120))
    Path(young).write_bytes(b"RIFF")  # still being written, no marker yet
    found = orphans.scan(tmp_path, {busy}, now)
    assert [(o.recording_id, o.kind, o.mode, len(o.paths)) for o in found] == [
        (RID, "call", "mixed", 1), (other, "consent", "dual", 2)]
    Path(young + ".closed").write_text("")
    assert fresh in {o.recording_id for o in orphans.scan(tmp_path, {busy}, now)}
    assert orphans.scan(tmp_path, {busy}, now, node_prefix="n2_") == []  # another node's files


def test_orphan_decisions_never_keep_what_consent_did_not_allow() -> None:
    row = {"started_at": 1.0, "record_decision": "record", "consent_decision": "granted"}
    assert orphans.decide("call", row) == orphans.SHIP
    assert orphans.decide("consent", row) == orphans.SHIP
    notified = {**row, "consent_decision": "notified"}
    assert orphans.decide("call", notified) == orphans.SHIP
    assert orphans.decide("consent", notified) == orphans.DELETE
    for refused in ({**row, "record_decision": "refused"}, {**row, "consent_decision": "interrupted"},
                    {**row, "record_decision": "no_record"}):
        assert orphans.decide("call", refused) == orphans.DELETE
    assert orphans.decide("call", None) == orphans.HOLD
    assert orphans.decide("call", {"call_id": "x", "started_at": None}) == orphans.HOLD
    orphan = orphans.Orphan(RID, CALL, "call", [Path("/m/x.wav")])
    meta = orphans.metadata(orphan, {**row, "cdr": {"disposition": "ANSWERED"}, "flags": ["a"]})
    assert meta["cdr"] == {"disposition": "ANSWERED"} and meta["flags"] == ["a", "orphan_recovered"]


def test_dialogue_recording_keeps_its_id_where_the_snippet_finds_it() -> None:
    start = StartRecording(CALL, RID, "PJSIP/x-1", "/m/a.wav", kind="consent", dialogue=True)
    assert start_recording(start)["Options"].startswith("i(PBXREC_DIALOGUE_MMID)")
    plain = StartRecording(CALL, RID, "PJSIP/x-1", "/m/a.wav")
    assert "PBXREC_DIALOGUE_MMID" not in start_recording(plain)["Options"]
    text = SNIPPET.read_text().splitlines()
    lines = [ln.strip() for ln in text if ln.strip().startswith(("exten", "same"))]
    fail = next(i for i, ln in enumerate(lines) if "(unavailable)" in ln)
    stop = next(i for i, ln in enumerate(lines) if "StopMixMonitor(${PBXREC_DIALOGUE_MMID})" in ln)
    done = next(i for i, ln in enumerate(lines) if "(done),Return()" in ln)
    assert fail < stop < done  # the fail direction stops it before the call goes on
    assert any("Set(PBXREC_DIALOGUE_MMID=)" in ln for ln in lines[:fail])
