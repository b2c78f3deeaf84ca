"""The daemon with ``pbx.type: freeswitch`` over in-process peers: the ESL peer (inbound events,
``uuid_record``) and a fake channel on the outbound consent socket.

Consent (explicit, caller presses 1) -> consent segment + call recording by ``uuid_record`` ->
files "written by FreeSWITCH" + RECORD_STOP (the client writes the closure markers) ->
CHANNEL_HANGUP_COMPLETE with the CDR -> spool -> shipper -> hot tier + catalog, exactly the
rows the Asterisk path writes.  A restarted daemon adopts the live recording from the
channel variables and does not start a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from esl.frames import render_event_plain
from pbx_recorder.app import build_app
from pbx_recorder.config import load_config
from pbx_recorder.daemon import Daemon
from tests.peers.esl_outbound_peer import FakeChannel
from tests.peers.esl_peer import EslPeer
from tests.peers.test_daemon import free_port, until, write_wav
from tests.unit.esl_samples import A_LEG, T0, ev

CALL = f"pbx1_{A_LEG}"


def write_config(tmp: Path, esl_port: int, socket_port: int) -> Path:
    path = tmp / "pbx-recorder.yaml"
    for prompt in ("consent-question", "consent-retry", "refusal-goodbye", "recording-notice"):
        write_wav(str(tmp / "prompts" / "en" / f"{prompt}.wav"), 0.1)
    (tmp / "esl.password").write_text("ClueCon\n")
    path.write_text(f"""
node: pbx1
pbx:
  type: freeswitch
  esl: {{host: 127.0.0.1, port: {esl_port}, password_file: {tmp}/esl.password,
        reconnect_min_s: 0.05, reconnect_max_s: 0.2,
        outbound: {{host: 127.0.0.1, port: {socket_port}, max_sessions: 4}}}}
  monitor_dir: {tmp}/monitor
spool: {{dir: {tmp}/spool, min_free_mb: 0, closure_timeout_s: 3, stable_ms: 100}}
catalog: {{path: {tmp}/catalog.db}}
signing: {{key_file: {tmp}/keys/signing.ed25519}}
privacy: {{hash_key_file: {tmp}/keys/hash.key}}
storage:
  tiers:
    hot: {{type: local, path: {tmp}/hot}}
consent: {{timeout_s: 2, max_attempts: 2, prompts_dir: {tmp}/prompts}}
rules:
  - name: record-inbound
    match: {{direction: [inbound]}}
    action: {{record: yes, consent: explicit, refusal: {{hangup: true}}}}
""")
    return path


class RecordingPeer(EslPeer):
    """``uuid_record start`` writes the file (as FreeSWITCH would), ``stop`` sends RECORD_STOP."""

    def __init__(self) -> None:
        super().__init__()
        self.api["uuid_record"] = self._record
        self.files: list[str] = []

    def _record(self, line: str) -> str:
        _, uuid, action, path, *_ = line.split(" ")
        if action == "start":
            write_wav(path, 1.0)
            self.files.append(path)
        elif action == "stop":
            self.push(render_event_plain(ev("RECORD_STOP", uuid, T0, {"Record-File-Path": path})))
        return "+OK Success\n"


@contextlib.asynccontextmanager
async def daemon_running(config_path: Path) -> AsyncIterator[Daemon]:
    app = build_app(load_config(config_path))
    daemon = Daemon(app, tick_s=0.1, install_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        assert await app.ami.wait_ready(5)
        await asyncio.sleep(0.1)  # the outbound server binds on the loop
        yield daemon
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)


def hangup_events(peer: RecordingPeer) -> list[Any]:
    cdr = {
        "Channel-State": "CS_REPORTING",
        "Answer-State": "hangup",
        "Hangup-Cause": "NORMAL_CLEARING",
        "variable_answer_epoch": str(int(T0 + 1)),
        "variable_billsec": "2",
        "variable_duration": "3",
        "variable_start_epoch": str(int(T0)),
        "variable_end_epoch": str(int(T0 + 3)),
        "variable_sip_call_id": "abc@127.0.0.1",
    }
    stops = [
        ev("RECORD_STOP", A_LEG, T0 + 3, {"Record-File-Path": f, "Channel-State": "CS_HANGUP"})
        for f in peer.files
    ]
    return [*stops, ev("CHANNEL_HANGUP_COMPLETE", A_LEG, T0 + 3, cdr)]


async def test_freeswitch_call_consented_recorded_shipped_and_catalogued(tmp_path: Path) -> None:
    peer = RecordingPeer()
    await peer.start()
    socket_port = free_port()
    try:
        async with daemon_running(write_config(tmp_path, peer.port, socket_port)) as daemon:
            peer.push_event(ev("CHANNEL_CREATE", A_LEG, T0))
            peer.push_event(ev("CHANNEL_ANSWER", A_LEG, T0 + 1))
            # while the consent session holds the call's socket, its PBX commands go out there
            def on_socket(line: str) -> str:  # FreeSWITCH runs it as if it came over the inbound ESL
                handler = peer.api.get(line.split(" ")[0])
                return handler(line) if handler else "+OK\n"

            channel = FakeChannel(socket_port, digits=["1"], api=on_socket)
            await channel.run()
            assert channel.vars_set["PBXREC_RESULT"] == "record"

            def sent(prefix: str) -> list[str]:
                return [c for c in channel.commands if c.startswith(prefix)] + peer.commands(prefix)

            starts = sent(f"api uuid_record {A_LEG} start")
            assert len(starts) == 2 and "consent" in starts[0] and "call" in starts[1]
            assert starts == [c for c in channel.commands if c.startswith(f"api uuid_record {A_LEG} start")]
            assert len(sent(f"api uuid_record {A_LEG} stop")) == 1  # the consent segment
            await until(lambda: any("PBXREC_RECORDING_FILE=" in c for c in sent("api uuid_setvar")), 5)
            setvars = sent("api uuid_setvar_multi")
            assert any(f"PBXREC_CALL_ID={A_LEG}" in c and "PBXREC_RECORDING_ID=" in c for c in setvars), (
                setvars
            )
            for headers in hangup_events(peer):
                peer.push_event(headers)
            catalog = daemon.app.catalog

            def shipped() -> bool:
                rows = catalog.recordings_for_call(CALL)
                return len(rows) >= 2 and all(r["state"] not in ("recording", "spooled") for r in rows)

            await until(shipped, 20)
            await until(lambda: CALL not in catalog.load_live_calls(), 5)
            rows = {r["kind"]: r for r in catalog.recordings_for_call(CALL)}
            assert set(rows) == {"call", "consent"} and rows["call"]["tier"] == "hot"
            call_row = catalog.get_call(CALL)
            assert call_row["status"] == "answered" and call_row["consent_decision"] == "granted"
            assert call_row["cdr"]["sip_call_id"] == "abc@127.0.0.1"
    finally:
        await peer.close()


async def test_restarted_daemon_adopts_the_live_recording(tmp_path: Path) -> None:
    peer = RecordingPeer()
    await peer.start()
    rid = f"{CALL}_call001"
    path = str(tmp_path / "monitor" / "adopted.wav")
    peer.api["show channels as json"] = json.dumps(
        {"row_count": 1, "rows": [{"uuid": A_LEG, "call_uuid": A_LEG, "callstate": "ACTIVE", "cid_num": "1"}]}
    )
    values = {
        "PBXREC_RESULT": "record",
        "PBXREC_RECORDING_ID": rid,
        "PBXREC_RECORDING_PATH": path,
        "PBXREC_CALL_ID": A_LEG,
    }
    peer.api["uuid_getvar"] = lambda line: values.get(line.split()[2], "_undef_")  # type: ignore[assignment]
    try:
        async with daemon_running(write_config(tmp_path, peer.port, free_port())) as daemon:
            await until(lambda: daemon.app.callbook.state(CALL) == "recording", 5)
            assert peer.commands("api uuid_record") == []  # adopted, never started twice
    finally:
        await peer.close()
