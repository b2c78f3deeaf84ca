"""Issue 6 "masking is complete" / issue 10 ``pbxrecdnid``: a call with a known number goes
through the AMI peer -> the daemon -> the catalog -> every CLI output an agent can get, and
every log line of the whole run; the number's digits never appear.  The CDR carries the
number in every field Asterisk puts it in (src, dst, clid, channel, dstchannel, lastdata,
the dialplan's pbxrecdnid)."""

from __future__ import annotations

import asyncio
import json
import logging
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
CALL = make_call_id("pbx1", "300.1")
CHANNEL = f"SIP/{CALLER}-00000007"  # chan_sip names a channel after the peer: here, the number
TRUNK = f"PJSIP/{DIALED}-00000008"


async def run_call(tmp_path: Path) -> Path:
    agi_port = free_port()
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, agi_port)
        async with daemon_running(cfg) as daemon:
            base = {"Channel": CHANNEL, "Uniqueid": "300.1", "Linkedid": "300.1"}
            await peer.emit({"Event": "Newchannel", **base, "ChannelState": "4", "CallerIDNum": CALLER,
                             "CallerIDName": CALLER, "Exten": DIALED, "Context": "from-trunk"})
            await peer.emit({"Event": "Newstate", **base, "ChannelState": "6", "ChannelStateDesc": "Up"})
            env = env_block(["direction=inbound", f"dialed={DIALED}", "linkedid=300.1", "lang=en"],
                            channel=CHANNEL, uniqueid="300.1")
            channel = InbandChannel("1")  # the recordings start in band, on the AGI socket
            await asyncio.to_thread(converse, agi_port, env, channel)
            assert len(channel.mixmonitors) == 2
            for action in channel.mixmonitors:
                close_like_asterisk(action)
            await peer.emit({"Event": "Hangup", **base, "Cause": "16", "Cause-txt": "Normal Clearing"})
            await peer.emit({
                "Event": "Cdr", "Source": CALLER, "Destination": "1", "CallerID": f'"{CALLER}" <{CALLER}>',
                "Channel": CHANNEL, "DestinationChannel": TRUNK, "LastApplication": "Dial",
                "LastData": f"PJSIP/{DIALED}@trunk,30,tT", "PbxrecDnid": DIALED, "Disposition": "ANSWERED",
                "Duration": "3", "BillableSeconds": "2", "UniqueID": "300.1", "Linkedid": "300.1",
                "StartTime": "2024-11-21 15:00:00"})
            catalog = daemon.app.catalog

            def shipped() -> bool:
                rows = catalog.recordings_for_call(CALL)
                return len(rows) >= 2 and all(r["state"] not in ("recording", "spooled") for r in rows)

            await until(shipped, 20)
            row = catalog.get_call(CALL)
            assert row["caller_num"] == CALLER and row["cdr"]["pbxrecdnid"] == DIALED  # stored in full
            assert row["cdr"]["clid"] == f'"{CALLER}" <{CALLER}>' and CALLER in row["cdr"]["channel"]
    return cfg


def digits_in(text: str) -> list[str]:
    return [n for n in (CALLER, DIALED) if n in text]


def test_no_output_an_agent_can_get_and_no_log_line_shows_the_number(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    cfg = asyncio.run(run_call(tmp_path))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records and digits_in(logged) == [], [r.getMessage() for r in caplog.records
                                                        if digits_in(r.getMessage())]
    cfg.write_text(cfg.read_text() + "\naccess:\n  users: {adam: agent, sue: supervisor}\n")
    monkeypatch.setenv("PBX_RECORDER_USER", "adam")
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    runner = CliRunner()
    outputs = {}
    for args in (["calls", "search", "--json"], ["calls", "search"], ["calls", "show", CALL, "--json"],
                 ["calls", "show", CALL], ["calls", "search", "--caller", "5678", "--json"],
                 ["calls", "live", "--json"], ["calls", "search", "--unmask"], ["audit", "list"],
                 ["verify"], ["recordings", "get", f"{CALL}_call001", "--out", str(tmp_path / "x.wav")]):
        result = runner.invoke(cli, ["--config", str(cfg), *args], catch_exceptions=True)
        outputs[" ".join(args)] = result.output + str(result.exception or "")
    assert [k for k, v in outputs.items() if digits_in(v)] == []
    found = json.loads(outputs["calls search --json"])
    assert [c["call_id"] for c in found] == [CALL]
    assert found[0]["caller_num"] == "491******5678" and found[0]["cdr"]["pbxrecdnid"] == "******3456"
    assert found[0]["cdr"]["clid"] == '"491******5678" <491******5678>'
    shown = json.loads(outputs[f"calls show {CALL} --json"])
    assert shown["call"]["cdr"]["lastdata"] == "PJSIP/******3456@trunk,30,tT"
    assert "may not calls.unmask" in outputs["calls search --unmask"]
    names = [p.name for folder in ("hot", "spool") for p in (tmp_path / folder).rglob("*")]
    assert names and digits_in(" ".join(names)) == []  # storage keys and spool entries carry no number
    monkeypatch.setenv("PBX_RECORDER_USER", "sue")  # a role that may unmask does see it, audited
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    result = runner.invoke(cli, ["--config", str(cfg), "calls", "show", CALL, "--json", "--unmask"])
    assert json.loads(result.output)["call"]["cdr"]["pbxrecdnid"] == DIALED
    # what the daemon wrote is sealed and its chain heads signed: a clean verify, call seals included
    result = runner.invoke(cli, ["--config", str(cfg), "verify", "--deep"])
    assert result.exit_code == 0 and "status ok" in result.output, result.output
    assert (tmp_path / "chain-heads" / "ledger.head.json").is_file()


@pytest.fixture(autouse=True)
def _quiet_root_logger():
    yield
    logging.getLogger().handlers[:] = [h for h in logging.getLogger().handlers
                                       if type(h).__name__ == "LogCaptureHandler"]
