"""Issue 6 re-tried (red team): ``erase --caller`` run while the subject's call was still in
progress said ``done``, and the daemon stored the call when it ended -- the subject came back into
the catalog and the tier.  Here the erasure runs mid-call against the daemon over the in-process
AMI peer and fake FastAGI; after the hang-up nothing of the subject is in the catalog, the tiers,
the spool or any log line in clear, and the receipt and ``erase status`` name the late copies
destroyed on arrival."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path

import pytest
from ami_peer import AmiPeer
from click.testing import CliRunner
from fake_asterisk_agi import InbandChannel, converse, env_block
from test_daemon import close_like_asterisk, daemon_running, free_port, until, write_config

from pbx_recorder.cli import cli
from pbx_recorder.core.naming import make_call_id

CALLER = "4915112345678"
DIALED = "4930123456"
CALL = make_call_id("pbx1", "400.1")
CHANNEL = f"SIP/{CALLER}-00000009"


def receipt(cfg_dir: Path, request_id: str) -> dict:
    conn = sqlite3.connect(cfg_dir / "catalog.db")
    try:
        row = conn.execute("SELECT status, receipt FROM erasure_requests WHERE request_id=?",
                           (request_id,)).fetchone()
    finally:
        conn.close()
    return {**json.loads(row[1] or "{}"), "row_status": row[0]} if row else {}


def erase(cfg: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--config", str(cfg), "erase", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


async def run_call_erased_midway(tmp_path: Path) -> tuple[Path, dict]:
    agi_port = free_port()
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, agi_port)
        async with daemon_running(cfg) as daemon:
            base = {"Channel": CHANNEL, "Uniqueid": "400.1", "Linkedid": "400.1"}
            await peer.emit({"Event": "Newchannel", **base, "ChannelState": "4", "CallerIDNum": CALLER,
                             "CallerIDName": CALLER, "Exten": DIALED, "Context": "from-trunk"})
            await peer.emit({"Event": "Newstate", **base, "ChannelState": "6", "ChannelStateDesc": "Up"})
            env = env_block(["direction=inbound", f"dialed={DIALED}", "linkedid=400.1", "lang=en"],
                            channel=CHANNEL, uniqueid="400.1")
            channel = InbandChannel("1")  # the recordings start in band, on the AGI socket
            await asyncio.to_thread(converse, agi_port, env, channel)
            mixmonitors = channel.mixmonitors
            assert len(mixmonitors) == 2
            catalog = daemon.app.catalog
            await until(lambda: CALL in catalog.load_live_calls(), 5)
            # mid-call: the data protection officer erases the caller
            out = await asyncio.to_thread(erase, cfg, "--caller", CALLER, "--request-id", "ER-mid")
            first = json.loads(out[out.index("{"):])
            assert first["status"] == "done" and first["live_call_snapshots_deleted"] == 1
            await peer.emit({"Event": "Hold", **base})  # the call goes on: its snapshot changes
            await peer.emit({"Event": "Unhold", **base})

            def snapshot_destroyed() -> bool:  # snapshots are written at most 5 times a second,
                late = receipt(tmp_path, "ER-mid").get("late_copies", [])  # so wait for it before
                return any(c["copy"] == "live_call_snapshot" for c in late)  # the hang-up ends the call

            await until(snapshot_destroyed, 20)
            for action in mixmonitors:
                close_like_asterisk(action)
            await peer.emit({"Event": "Hangup", **base, "Cause": "16", "Cause-txt": "Normal Clearing"})
            await peer.emit({
                "Event": "Cdr", "Source": CALLER, "Destination": DIALED, "CallerID": f'"{CALLER}" <{CALLER}>',
                "Channel": CHANNEL, "Disposition": "ANSWERED", "Duration": "3", "BillableSeconds": "2",
                "UniqueID": "400.1", "Linkedid": "400.1", "StartTime": "2024-11-21 15:00:00"})

            def both_handled() -> bool:  # destroyed on arrival, or (the defect) stored
                late = receipt(tmp_path, "ER-mid").get("late_copies", [])
                stored = [r for r in catalog.recordings_for_call(CALL) if r["state"] == "verified"]
                return len([c for c in late if c["copy"] == "spool"]) + len(stored) == 2

            await until(both_handled, 20)
            await until(lambda: CALL not in catalog.load_live_calls(), 5)
            assert catalog.get_call(CALL) is None
            assert catalog.recordings_for_call(CALL) == []
    return cfg, receipt(tmp_path, "ER-mid")


def files_naming(root: Path, digits: str) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and (digits in p.name or digits.encode() in p.read_bytes())]


@pytest.mark.sqlite_only  # reads the receipt with sqlite3
def test_a_call_erased_mid_call_leaves_nothing_of_the_subject_after_the_hangup(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    cfg, final = asyncio.run(run_call_erased_midway(tmp_path))
    assert final["row_status"] == final["status"] == "done"
    copies = sorted((c["copy"], c["action"]) for c in final["late_copies"])
    assert copies == [("call_row", "destroyed"), ("live_call_snapshot", "destroyed"),
                      ("spool", "destroyed"), ("spool", "destroyed")]
    spooled = sorted(c["recording_id"] for c in final["late_copies"] if c["copy"] == "spool")
    deleted = [c for c in final["copies"]["deleted"] if c.startswith("spool:")]
    assert [f"spool:{r}" for r in spooled] == deleted
    # nothing stored, nothing waiting, no number in any file (catalog and its WAL included)
    assert [p for p in (tmp_path / "hot").rglob("*") if p.is_file()] == []
    assert [p for p in (tmp_path / "spool").iterdir() if p.is_dir()] == []
    assert files_naming(tmp_path, CALLER) == []
    conn = sqlite3.connect(tmp_path / "catalog.db")
    logged = [tuple(r) for r in conn.execute(
        "SELECT recording_id, reason, policy FROM deletion_log ORDER BY recording_id")]
    conn.close()
    assert logged == [(r, "erasure_late_copy", "ER-mid") for r in spooled]
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if CALLER in m] == []
    assert any("late copy of call=" + CALL in m for m in messages)
    status = CliRunner().invoke(cli, ["--config", str(cfg), "erase", "status"])
    assert "ER-mid  done  4 late cop(ies) destroyed on arrival" in status.output, status.output
    assert all(f"spool {r} destroyed" in status.output for r in spooled) and CALLER not in status.output
    verify = CliRunner().invoke(cli, ["--config", str(cfg), "verify"])
    assert verify.exit_code == 0, verify.output


@pytest.fixture(autouse=True)
def _quiet_root_logger():
    yield
    logging.getLogger().handlers[:] = [h for h in logging.getLogger().handlers
                                       if type(h).__name__ == "LogCaptureHandler"]
