"""Capture real ESL bytes from a private FreeSWITCH into ``tests/fixtures/esl/``.

    .venv/bin/python -m pbx_recorder.testbed.freeswitch_capture tests/fixtures/esl

Each ``*.esl`` file is exactly the bytes FreeSWITCH sent on one connection (inbound ESL
subscribed to the events of ``esl/CONTRACT.md``, or one outbound-socket session); the
``*.sent`` file beside it lists what the client sent, one command per block.  The scenarios
are real sipp calls (continuous A-law audio, RFC 2833 digits); see the fixtures' README.
Volatile values (uuids, timestamps, ports) are left as they came: the peer tests replay bytes.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_fake_socket import FakeOutboundSocket, OutboundSession
from pbx_recorder.testbed.freeswitch_probe import FsProbe
from pbx_recorder.testbed.freeswitch_sipp import FsSippCall, FsSippUas
from pbx_recorder.testbed.ports import free_udp_port

CONTRACT_EVENTS = ("CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_HANGUP_COMPLETE "
                   "RECORD_START RECORD_STOP PLAYBACK_START PLAYBACK_STOP DTMF BACKGROUND_JOB HEARTBEAT "
                   "CUSTOM callcenter::info")


class Tap(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


class Capture:
    """One inbound ESL connection whose received bytes and sent commands are kept."""

    def __init__(self, fs: PrivateFreeSWITCH, events: str = CONTRACT_EVENTS) -> None:
        self.tap = Tap()
        self.sent: list[str] = ["auth <password>"] + ([f"event plain {events}"] if events else [])
        self.probe = FsProbe("127.0.0.1", fs.esl_port, fs.esl_password, events=events, tap=self.tap)  # type: ignore[arg-type]

    def api(self, line: str) -> str:
        self.sent.append(f"api {line}")
        return self.probe.api(line)

    def command(self, line: str) -> None:
        self.sent.append(line)
        self.probe.command(line)

    def save(self, out: Path, name: str, close: bool = True) -> None:
        if close:
            self.sent.append("exit")
            self.probe.close()
            time.sleep(0.3)
        (out / f"{name}.esl").write_bytes(bytes(self.tap.data))
        (out / f"{name}.sent").write_text("\n\n".join(self.sent) + "\n")
        print(f"  {name}.esl: {len(self.tap.data)} bytes, {len(self.probe.events)} events")


def _uuid_of(cap: Capture, caller: str, since: int = 0, timeout: float = 15.0) -> str:
    event = cap.probe.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_ANSWER"
                                 and e.get("Caller-Caller-ID-Number") == caller, timeout, since)
    return event["Unique-ID"]


def capture_recorded_call(fs: PrivateFreeSWITCH, out: Path, work: Path) -> None:
    """8001 with the recorder down (the snippet's fail path), then uuid_record start, mask,
    unmask, stop in stereo, bgapi, show channels as json; the caller hangs up."""
    cap = Capture(fs)
    sipp = FsSippCall(work, fs.sip_port, "8001", hangup_after_s=9, from_user="4930111001",
                      from_display="Jane Doe").start()
    uid = _uuid_of(cap, "4930111001")
    path = f"{fs.recordings_dir}/capture-{uid}.wav"
    cap.api(f"uuid_setvar {uid} RECORD_STEREO true")
    cap.api(f"uuid_record {uid} start {path}")
    cap.api("show channels as json")
    time.sleep(1.5)
    cap.api(f"uuid_record {uid} mask {path}")
    time.sleep(1.0)
    cap.api(f"uuid_record {uid} unmask {path}")
    cap.command("bgapi status")
    cap.api(f"uuid_getvar {uid} PBXREC_UNAVAILABLE")
    cap.api(f"uuid_record {uid} stop {path}")
    cap.api("uuid_record 00000000-0000-0000-0000-000000000000 start /tmp/x.wav")  # -ERR
    sipp.wait()
    cap.probe.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                         and e.get("Unique-ID") == uid, 10)
    cap.save(out, "call_recorded_masked_stereo")


def capture_queue_bridge_and_transfer(fs: PrivateFreeSWITCH, out: Path, work: Path) -> None:
    """8004 into callcenter support@default, the agent (sipp UAS) answers; the agent leg then
    blind-transfers the caller to 9002 (uuid_transfer -bleg, what a REFER from the agent does)."""
    cap = Capture(fs)
    agent = FsSippUas(work, fs.agent_ports[0], calls=1, timeout_s=40).start()
    sipp = FsSippCall(work, fs.sip_port, "8004", hangup_after_s=14, from_user="4930111004").start()
    member = _uuid_of(cap, "4930111004")
    bridged = cap.probe.wait_event(lambda e: e.get("Event-Name") == "CUSTOM"
                                   and e.get("CC-Action") == "bridge-agent-start"
                                   and e.get("CC-Member-Session-UUID") == member, 20)
    time.sleep(3)
    cap.api(f"uuid_transfer {bridged['CC-Agent-UUID']} -bleg 9002 XML pbxrec-transfer")
    sipp.wait()
    agent.wait(timeout=10)
    cap.probe.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                         and e.get("Unique-ID") == member, 10)
    cap.save(out, "queue_bridge_blind_transfer")


def capture_attended_transfer(fs: PrivateFreeSWITCH, out: Path, work: Path) -> None:
    """8004 into the queue, agent1 (a sipp UAS answering twice) answers and is recorded on the
    caller's leg; the agent runs ``att_xfer`` to a colleague (agent1 again): ``uuid_broadcast
    <agent> att_xfer::<colleague> aleg``, what the agent's ``bind_meta_app`` key does; the
    caller is held, the agent talks to the colleague; the agent hangs up, which completes the
    transfer (FreeSWITCH ``uuid_bridge``s the caller with the colleague); the caller hangs up."""
    cap = Capture(fs)
    agent = FsSippUas(work, fs.agent_ports[0], calls=2, timeout_s=60).start()
    sipp = FsSippCall(work, fs.sip_port, "8004", hangup_after_s=22, from_user="4930111005").start()
    member = _uuid_of(cap, "4930111005")
    bridged = cap.probe.wait_event(lambda e: e.get("Event-Name") == "CUSTOM"
                                   and e.get("CC-Action") == "bridge-agent-start"
                                   and e.get("CC-Member-Session-UUID") == member, 20)
    agent_leg = bridged["CC-Agent-UUID"]
    path = f"{fs.recordings_dir}/capture-att-{member}.wav"
    cap.api(f"uuid_record {member} start {path}")
    time.sleep(3)
    since = cap.probe.mark()
    colleague = f"{{leg_timeout=20}}sofia/internal/agent1@127.0.0.1:{fs.agent_ports[0]}"
    cap.api(f"uuid_broadcast {agent_leg} att_xfer::{colleague} aleg")
    consult = cap.probe.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_BRIDGE"
                                   and e.get("Unique-ID") == agent_leg, 20, since)
    time.sleep(3)
    cap.api(f"uuid_kill {agent_leg}")
    cap.probe.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_BRIDGE"
                         and member in (e.get("Unique-ID"), e.get("Other-Leg-Unique-ID")), 20, since)
    print(f"  consult bridge {consult.get('Other-Leg-Unique-ID')}")
    sipp.wait()
    agent.wait(timeout=20)
    cap.probe.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                         and e.get("Unique-ID") == member, 10)
    time.sleep(1)
    cap.save(out, "queue_attended_transfer")


def capture_hostile_caller(fs: PrivateFreeSWITCH, out: Path, work: Path) -> None:
    """Caller IDs an attacker controls: percent-encoded CR/LF, 2,000 characters, Chinese."""
    cap = Capture(fs)
    for user, display in (("1%0d%0aEvent-Name:%20CUSTOM", "a\\r\\nContent-Length: 0"),
                          ("6" * 300, "Z" * 2000), ("4930%E6%9D%8E", "Zoë 李 \U0001F600")):
        FsSippCall(work, fs.sip_port, "8003", hangup_after_s=2, from_user=user,
                   from_display=display).start().wait()
    time.sleep(1)
    cap.save(out, "hostile_caller_ids")


def capture_outbound_consent(fs: PrivateFreeSWITCH, out: Path, work: Path) -> None:
    """One outbound-socket session the way CONTRACT.md section 3 describes an explicit consent:
    connect, myevents, resume, set PBXREC_SOCKET, play_and_get_digits (the caller presses 1),
    set PBXREC_RESULT=record, exit (FreeSWITCH sends text/disconnect-notice)."""
    def script(session: OutboundSession) -> None:
        session.command("myevents")
        session.command("resume")
        session.execute("set", "PBXREC_SOCKET=connected")
        session.execute("answer")  # the snippet hands the call over before answering it
        session.execute("play_and_get_digits",
                        "1 1 1 6000 # tone_stream://%(1500,0,600) silence_stream://250 "
                        "pbxrec_digit_1 [0-9*#]")
        session.execute("set", "PBXREC_CONSENT=granted")
        session.execute("set", "PBXREC_RESULT=record")

    with FakeOutboundSocket(fs.socket_port, script) as server:
        FsSippCall(work, fs.sip_port, "8002", hangup_after_s=6, from_user="4930111002",
                   dtmf=[(1200, "1")]).start().wait()
        time.sleep(0.5)
    session = server.sessions[0]
    (out / "outbound_consent_session.esl").write_bytes(bytes(session.raw))
    (out / "outbound_consent_session.sent").write_text(
        "connect\n\nmyevents\n\nresume\n\nsendmsg (execute set PBXREC_SOCKET=connected)\n\n"
        "sendmsg (execute play_and_get_digits ...)\n\nsendmsg (execute set PBXREC_CONSENT=granted)\n\n"
        "sendmsg (execute set PBXREC_RESULT=record)\n\nexit\n")
    print(f"  outbound_consent_session.esl: {len(session.raw)} bytes, {len(session.events)} events, "
          f"error={session.error!r}")


def capture_shutdown_notice(fs: PrivateFreeSWITCH, out: Path) -> None:
    """An idle subscribed connection while FreeSWITCH shuts down (SIGTERM)."""
    cap = Capture(fs)
    time.sleep(0.5)
    fs.stop()
    deadline = time.monotonic() + 10
    while not cap.probe.closed and time.monotonic() < deadline:
        time.sleep(0.1)
    cap.save(out, "shutdown_disconnect_notice", close=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", default="", help="capture only the scenarios whose name contains this")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pbxrec-fscap-"))
    fs = PrivateFreeSWITCH(work / "fs", agent_ports=(free_udp_port(),))
    steps: dict[str, Callable[[], None]] = {
        "recorded_call": lambda: capture_recorded_call(fs, args.out, work),
        "queue_bridge_and_transfer": lambda: capture_queue_bridge_and_transfer(fs, args.out, work),
        "attended_transfer": lambda: capture_attended_transfer(fs, args.out, work),
        "hostile_caller": lambda: capture_hostile_caller(fs, args.out, work),
        "outbound_consent": lambda: capture_outbound_consent(fs, args.out, work),
        "shutdown_notice": lambda: capture_shutdown_notice(fs, args.out),
    }
    try:
        fs.start()
        print(f"FreeSWITCH up (work {work}); capturing into {args.out}")
        for name, step in steps.items():
            if args.only in name:
                step()
    finally:
        fs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
