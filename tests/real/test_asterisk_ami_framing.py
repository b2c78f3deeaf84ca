"""A blank line in the SIP From user reaches AMI raw on Asterisk 16.28 and forges whole events.

Measured here (raw bytes of our own AMI connection, before any parser): PJSIP percent-decodes
the From *user* (cut to 79 bytes) and Asterisk copies it into every event carrying the caller
ID, so ``%0d%0a%0d%0a`` ends the event and the rest is read as a new event.  The display name
is not decoded (it arrives as the literal ``%0d%0a`` text).  The recorder must not let such a
forged ``Hangup`` end the recording of another, live call.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from call_helpers import new_caller
from recorder_checks import Recorder, assert_audio, wait_shipped

from pbx_recorder.testbed import PrivateAsterisk, SippCall
from pbx_recorder.testbed.ami_probe import AmiProbe

# Asterisk 16 behaviour: the measured CRLF pass-through; 22 is covered by the hostile caller ID tests.
pytestmark = [pytest.mark.real, pytest.mark.asterisk("16")]

PAYLOAD = ("1%0d%0a%0d%0aEvent%3a%20Hangup%0d%0aChannel%3a%20PJSIP/victim-00000001%0d%0aUniqueid%3a%20999.1"
           "%0d%0aLinkedid%3a%20999.1%0d%0a%0d%0a")
FORGED = (b"CallerIDNum: 1\r\n\r\nEvent: Hangup\r\nChannel: PJSIP/victim-00000001\r\nUniqueid: 999.1\r\n"
          b"Linkedid: \r\n")


async def _raw_ami_during(pbx: PrivateAsterisk, call: SippCall, linger_s: float = 1.5) -> bytes:
    """Every byte of a fresh AMI session while ``call`` runs (and ``linger_s`` after)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", pbx.ami_port), 5)
    try:
        writer.write(f"Action: Login\r\nUsername: {pbx.ami_user}\r\nSecret: {pbx.ami_secret}\r\n"
                     "Events: on\r\n\r\n".encode())
        await writer.drain()
        data = bytearray(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
        assert b"Response: Success" in data, data
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(None, lambda: call.start().wait())
        end: float | None = None
        while end is None or loop.time() < end:
            if end is None and done.done():
                end = loop.time() + linger_s
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.3)
            except TimeoutError:
                continue
            if not chunk:
                break
            data += chunk
        result = await done
        assert result.ok, result.errors
        return bytes(data)
    finally:
        writer.close()
        await writer.wait_closed()


def test_asterisk16_passes_a_blank_line_from_the_from_user(asterisk: PrivateAsterisk, tmp_path: Path) -> None:
    call = SippCall(tmp_path, asterisk.sip_port, "7001", hangup_after_s=2, from_user=PAYLOAD,
                    test_tag="framing_user")
    raw = asyncio.run(_raw_ami_during(asterisk, call))
    # the event ends at the injected blank line and a "Hangup" of the caller's making follows
    assert raw.count(b"\r\nEvent: Newchannel\r\n") >= 1
    assert raw.count(FORGED) >= 10, raw[:3000]
    # 79 decoded bytes survive: the Linkedid value and the closing blank line are cut off, so
    # the genuine remainder (CallerIDName .. Linkedid) merges into the forged block
    assert b"Linkedid: \r\nCallerIDName: <unknown>\r\n" in raw
    # the Cdr carries it twice (Source and CallerID)
    assert b"Source: 1\r\n\r\nEvent: Hangup\r\n" in raw and b'CallerID: "" <1\r\n\r\nEvent: Hangup\r\n' in raw


def test_asterisk16_keeps_the_display_name_encoded(asterisk: PrivateAsterisk, tmp_path: Path) -> None:
    call = SippCall(tmp_path, asterisk.sip_port, "7001", hangup_after_s=2, from_user="5551",
                    from_display=PAYLOAD, test_tag="framing_display")
    raw = asyncio.run(_raw_ami_during(asterisk, call))
    assert (b"CallerIDName: 1%0d%0a%0d%0aEvent%3a%20Hangup%0d%0aChannel%3a%20PJSIP/victim-00000001"
            b"%0d%0aUni\r\n") in raw  # literal, and cut to 79 bytes too
    assert b"PJSIP/victim" not in raw.replace(b"%3a%20PJSIP/victim", b"")
    assert b"\r\n\r\nEvent: Hangup\r\nChannel: PJSIP/victim" not in raw


def test_forged_hangup_does_not_end_a_live_recording(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                     recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    victim = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=16, from_user=caller).start()
    try:
        chan = ami.wait_event(lambda e: e.get("Event") == "Newchannel" and e.get("CallerIDNum") == caller,
                              timeout=10, since=since)
        ami.wait_event(lambda e: e.get("Event") == "MixMonitorStart" and e.get("Channel") == chan["Channel"],
                       timeout=15, since=since)
        # the victim's real Uniqueid; Channel and Linkedid do not fit the caller's 79 bytes
        forged = "1\r\n\r\nEvent: Hangup\r\nUniqueid: " + chan["Uniqueid"] + "\r\n\r\n"
        assert len(forged) <= 79, forged
        mark, started = len(ami.events), time.monotonic()
        attacker = SippCall(tmp_path, asterisk.sip_port, "7001", hangup_after_s=2,
                            from_user=quote(forged, safe=""), test_tag="framing_attack").start().wait()
        assert attacker.ok, attacker.errors
        # the forgery reached AMI: a block-by-block reader sees a Hangup of the live victim
        ami.wait_event(lambda e: e.get("Event") == "Hangup" and e.get("Uniqueid") == chan["Uniqueid"]
                       and "Channel" not in e, timeout=5, since=mark)
        assert victim.running and time.monotonic() - started < 8
    finally:
        result = victim.wait(timeout=40)
    assert result.ok and result.elapsed_s > 15, result.errors
    _, recs = wait_shipped(recorder, chan["Linkedid"])
    calls = [r for r in recs if r["kind"] == "call"]
    assert len(calls) == 1
    # not ended at the forged Hangup (under 3 s into the recording): the recorded span runs to the
    # victim's own hang-up.  The audio is only checked to outlast the forgery: on a starved CI host
    # sipp hung up 4 s late and Asterisk 16's MixMonitor wrote 8.4 s of the 15.8 s span (flagged
    # duration_mismatch by the recorder), which is not this test's subject.
    manifest = json.loads(calls[0]["manifest"])
    span = manifest["recorded_to"] - manifest["recorded_from"]
    assert span > 10, manifest  # 11.5 s: 16 s of call less the 4.5 s notice
    assert_audio(recorder, calls[0], expect_s=11, tolerance_s=5)
    log = recorder.process.log_path.read_text(errors="replace")
    assert "AMI framing injection" in log
    assert recorder.process.running
