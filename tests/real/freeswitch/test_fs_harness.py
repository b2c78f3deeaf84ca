"""Self-tests of the FreeSWITCH test bed and of the shipped FreeSWITCH files (dialplan hand-off,
event socket example with ACL and password file, cdr_csv template); no recorder daemon needed.

A scripted outbound-socket server (``FakeOutboundSocket``) stands in for the recorder where the
hand-off's branches are checked, so these pass before the ESL adapter is integrated.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from call_helpers import wait_file_closed
from fs_helpers import call, custom_event, hangup_complete, new_caller, uuid_of

from pbx_recorder.testbed import audio_stats
from pbx_recorder.testbed.freeswitch import REPO_ROOT, PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_fake_socket import FakeOutboundSocket, OutboundSession, answer_with
from pbx_recorder.testbed.freeswitch_probe import FsProbe
from pbx_recorder.testbed.freeswitch_sipp import FsSippCall

pytestmark = [pytest.mark.real, pytest.mark.timeout(120)]


def test_record_session_hears_continuous_caller_audio(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                      tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    result = call(freeswitch, tmp_path, "7001", hangup_after_s=8, test_tag="fs_selftest_rec",
                  dtmf=[(2000, "5")], from_user=caller)
    assert result.ok, result.errors
    uuid = uuid_of(esl, caller, since)
    stats = audio_stats(wait_file_closed(freeswitch.selftest_dir / f"fs_selftest_rec-{uuid}.wav"))
    # a 30 ms ptime offer and one continuous stream: the file lasts as long as the call
    assert stats.rms > 0.01 and abs(stats.duration_s - 8.0) < 1.0, stats


def test_rfc2833_digit_inside_the_audio_reaches_play_and_get_digits(freeswitch: PrivateFreeSWITCH,
                                                                    esl: FsProbe, tmp_path: Path) -> None:
    since = esl.mark()
    result = call(freeswitch, tmp_path, "7002", hangup_after_s=4, test_tag="fs_selftest_dtmf",
                  dtmf=[(1500, "7")])
    assert result.ok, result.errors
    assert custom_event(esl, "pbxrec::selftest", "fs_selftest_dtmf", since)["Digits"] == "7"
    digit = esl.wait_event(lambda e: e.get("Event-Name") == "DTMF", timeout=5, since=since)
    assert digit["DTMF-Digit"] == "7" and digit["DTMF-Source"] == "RTP", digit


def test_event_socket_example_password_file_and_acl(freeswitch: PrivateFreeSWITCH) -> None:
    # the password is the file's content (the probe fixture logged in with it); any other fails
    with pytest.raises(ConnectionError, match="-ERR invalid"):
        FsProbe("127.0.0.1", freeswitch.esl_port, "ClueCon", events="")
    # the ACL pbxrec_esl allows 127.0.0.1/32 only: a loopback client from 127.0.0.2 is refused
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", freeswitch.esl_port))
        greeting = sock.recv(4096)
    assert b"auth/request" not in greeting and b"rude-rejection" in greeting, greeting


def test_event_socket_example_without_password_file_uses_an_unknown_password() -> None:
    """The exec-set fallback: a missing file yields a random password, never an empty one."""
    text = (REPO_ROOT / "etc" / "freeswitch" / "event_socket.conf.xml").read_text()
    command = re.search(r'cmd="exec-set" data="pbxrec_esl_password=([^"]+)"', text)
    assert command, "exec-set line missing"
    shell = command.group(1).replace("&gt;", ">").replace("/etc/freeswitch/pbx-recorder-esl.password",
                                                         "/nonexistent/esl.password")
    outs = {subprocess.run(["sh", "-c", shell], capture_output=True, text=True, timeout=10,
                           check=True).stdout.strip() for _ in range(2)}
    assert len(outs) == 2 and all(re.fullmatch(r"[0-9a-f]{48}", o) for o in outs), outs


def test_recorder_down_call_continues_unrecorded_with_reason(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                             tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    before = set(freeswitch.recordings_dir.rglob("*"))
    result = call(freeswitch, tmp_path, "8001", hangup_after_s=4, from_user=caller)
    assert result.ok and result.elapsed_s >= 3.5, result.errors  # the caller hung up, not FreeSWITCH
    uuid = uuid_of(esl, caller, since)
    done = hangup_complete(esl, uuid)
    assert done["variable_PBXREC_UNAVAILABLE"] == "unreachable", done.get("variable_PBXREC_UNAVAILABLE")
    assert done["variable_PBXREC_CALL_ID"] == uuid and done["Hangup-Cause"] == "NORMAL_CLEARING"
    assert "variable_PBXREC_RESULT" not in done
    assert set(freeswitch.recordings_dir.rglob("*")) == before
    # the cdr_csv template of etc/freeswitch carries the reason (and the empty recording columns)
    row = _csv_row(freeswitch, uuid)
    assert row[-1] == '"unreachable"' and row[15] == f'"{uuid}"', row


def _csv_row(freeswitch: PrivateFreeSWITCH, uuid: str, timeout: float = 5.0) -> list[str]:
    path = freeswitch.log_dir / "cdr-csv" / "Master.csv"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                fields = line.split('","')
                if len(fields) > 15 and fields[10] == uuid:
                    return ['"' + f.strip('"') + '"' for f in fields]
        time.sleep(0.2)
    raise AssertionError(f"no CDR row for {uuid} in {path}")


def test_recorder_down_failmode_hangup_plays_apology_and_hangs_up(freeswitch: PrivateFreeSWITCH,
                                                                   esl: FsProbe, tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    result = call(freeswitch, tmp_path, "8005", hangup_after_s=15, from_user=caller)
    assert result.ok and result.elapsed_s < 10, (result.errors, result.elapsed_s)  # FreeSWITCH hung up
    done = hangup_complete(esl, uuid_of(esl, caller, since))
    assert done["variable_PBXREC_UNAVAILABLE"] == "unreachable"
    assert done["Hangup-Cause"] == "SERVICE_UNAVAILABLE", done["Hangup-Cause"]
    assert esl.find(lambda e: e.get("Event-Name") == "PLAYBACK_START"
                    and e.get("Unique-ID") == done["Unique-ID"])


def test_hand_off_record_result_continues_and_passes_the_contract(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                                  tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    with FakeOutboundSocket(freeswitch.socket_port, answer_with("record")) as server:
        result = call(freeswitch, tmp_path, "8004", hangup_after_s=4, from_user=caller,
                      from_display="Jane Doe")
    # 8004 goes on into the queue after the hand-off (no agent logged in: the caller waits)
    assert result.ok and result.elapsed_s >= 3.5, result.errors
    uuid = uuid_of(esl, caller, since)
    channel = server.sessions[0].channel
    assert server.sessions[0].error == "", server.sessions[0].error
    assert channel["Unique-ID"] == uuid and channel["Caller-Caller-ID-Number"] == caller
    assert channel["Caller-Caller-ID-Name"] == "Jane Doe"
    assert (channel["variable_PBXREC_DIRECTION"], channel["variable_PBXREC_DIALED"],
            channel["variable_PBXREC_QUEUE"], channel["variable_PBXREC_CALL_ID"],
            channel["variable_PBXREC_SOCKET"]) == ("inbound", "8004", "support", uuid, "unreachable"), channel
    done = hangup_complete(esl, uuid)
    assert done["variable_PBXREC_RESULT"] == "record" and done["variable_PBXREC_SOCKET"] == "connected"
    assert "variable_PBXREC_UNAVAILABLE" not in done
    # the dialplan resumed after the socket: the caller reached the queue
    assert esl.find(lambda e: e.get("Event-Subclass") == "callcenter::info"
                    and e.get("CC-Action") == "member-queue-start"
                    and e.get("CC-Member-Session-UUID") == uuid)


def test_hand_off_session_dying_midway_counts_as_unavailable(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                             tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    with FakeOutboundSocket(freeswitch.socket_port, answer_with("")):  # connected, then gone, no decision
        result = call(freeswitch, tmp_path, "8001", hangup_after_s=4, from_user=caller)
    assert result.ok and result.elapsed_s >= 3.5, result.errors
    done = hangup_complete(esl, uuid_of(esl, caller, since))
    assert done["variable_PBXREC_UNAVAILABLE"] == "connected", done.get("variable_PBXREC_UNAVAILABLE")


def test_hand_off_refused_and_routed_by_the_recorder(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                     tmp_path: Path) -> None:
    def refuse_and_route(session: OutboundSession) -> None:
        answer_with("refused", PBXREC_ROUTE="pbxrec-unrecorded,s,1")(session)
        session.command("sendmsg", {"call-command": "execute", "execute-app-name": "transfer",
                                    "execute-app-arg": "s XML pbxrec-unrecorded"})

    since = esl.mark()
    with FakeOutboundSocket(freeswitch.socket_port, refuse_and_route):
        result = call(freeswitch, tmp_path, "8002", hangup_after_s=4, test_tag="fs_refused_route")
    assert result.ok and result.elapsed_s >= 3.5, result.errors
    assert custom_event(esl, "pbxrec::unrecorded", "fs_refused_route", since)


def test_hand_off_refused_without_route_hangs_up(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                 tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    with FakeOutboundSocket(freeswitch.socket_port, answer_with("refused")):
        result = call(freeswitch, tmp_path, "8002", hangup_after_s=10, from_user=caller)
    assert result.ok and result.elapsed_s < 6, (result.errors, result.elapsed_s)
    done = hangup_complete(esl, uuid_of(esl, caller, since))
    assert done["variable_PBXREC_RESULT"] == "refused" and done["Hangup-Cause"] == "NORMAL_CLEARING"


def test_hostile_caller_ids_reach_the_socket_as_data_only(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                          tmp_path: Path) -> None:
    hostile = [("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),
               ("1%0d%0aEvent-Name%3a%20CUSTOM", "x\\r\\nContent-Length: 0"), ("5" * 300, "N" * 2000),
               ("4930%E6%9D%8E", "Zoë 李 \U0001F600"), ("", "")]
    since = esl.mark()
    with FakeOutboundSocket(freeswitch.socket_port, answer_with("norecord")) as server:
        for user, display in hostile:
            result = FsSippCall(tmp_path, freeswitch.sip_port, "8001", hangup_after_s=2, from_user=user,
                                from_display=display).start().wait()
            assert result.ok, (user[:40], result.errors)
    assert len(server.sessions) == len(hostile)
    for session in server.sessions:
        assert session.channel["variable_PBXREC_DIALED"] == "8001"  # inputs never carry caller data
        assert session.channel["variable_PBXREC_DIRECTION"] == "inbound"
    numbers = [s.channel.get("Caller-Caller-ID-Number", "") for s in server.sessions]
    assert "1\r\nEvent-Name: CUSTOM" in numbers, numbers  # decoded only inside its own header value
    assert not esl.find(lambda e: e.get("Event-Name") == "CUSTOM" and e.get("Event-Subclass", "") == "")
    assert freeswitch.running and len([e for _, e in esl.events[since:]
                                       if e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"]) >= len(hostile)


def test_stereo_channel_map_caller_left_freeswitch_right(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                         tmp_path: Path) -> None:
    """What the product documents: with RECORD_STEREO, channel 1 = the caller, channel 2 = what
    FreeSWITCH sent (here the 1 kHz tone of DID 8007)."""
    caller, since = new_caller(), esl.mark()
    path = freeswitch.recordings_dir / f"stereo-{caller}.wav"
    with FakeOutboundSocket(freeswitch.socket_port, answer_with("record")):
        sipp = FsSippCall(tmp_path, freeswitch.sip_port, "8007", hangup_after_s=9, from_user=caller).start()
        uuid = uuid_of(esl, caller, since)
        esl.wait_event(lambda e: e.get("Event-Name") == "PLAYBACK_START" and e.get("Unique-ID") == uuid, 10)
        assert esl.api(f"uuid_setvar {uuid} RECORD_STEREO true") == "+OK"
        assert esl.api(f"uuid_record {uuid} start {path}") == "+OK Success"
        time.sleep(4)
        assert esl.api(f"uuid_record {uuid} stop {path}") == "+OK Success"
        assert sipp.wait().ok
    left, right = (_channel_stats(path, ch) for ch in (1, 2))
    assert left["rms"] > 0.01 and right["rms"] > 0.01, (left, right)
    assert abs(right["freq"] - 1000) < 60, right  # the tone FreeSWITCH played
    assert abs(left["freq"] - 1000) > 150, left  # speech from the caller
    assert 3.0 < audio_stats(path).duration_s < 4.6


def _channel_stats(path: Path, channel: int) -> dict[str, float]:
    done = subprocess.run(["sox", str(path), "-n", "remix", str(channel), "stat"], capture_output=True,
                          text=True, timeout=30, check=True)
    lines = (line.partition(":") for line in done.stderr.splitlines())
    values = {" ".join(k.split()): v for k, _, v in lines}
    return {"rms": float(values["RMS amplitude"]), "freq": float(values["Rough frequency"])}


def test_uuid_record_mask_keeps_the_timeline_and_silences_the_stretch(freeswitch: PrivateFreeSWITCH,
                                                                      esl: FsProbe, tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    path = freeswitch.recordings_dir / f"mask-{caller}.wav"
    with FakeOutboundSocket(freeswitch.socket_port, answer_with("record")):
        sipp = FsSippCall(tmp_path, freeswitch.sip_port, "8001", hangup_after_s=12, from_user=caller).start()
        uuid = uuid_of(esl, caller, since)
        esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_EXECUTE" and e.get("Unique-ID") == uuid
                       and e.get("Application") == "echo", 10)
        assert esl.api(f"uuid_record {uuid} start {path}") == "+OK Success"
        t0 = time.monotonic()
        time.sleep(2)
        assert esl.api(f"uuid_record {uuid} mask {path}").startswith("+OK")
        t_mask = time.monotonic() - t0
        time.sleep(3)
        assert esl.api(f"uuid_record {uuid} unmask {path}").startswith("+OK")
        t_unmask = time.monotonic() - t0
        time.sleep(2)
        assert esl.api(f"uuid_record {uuid} stop {path}") == "+OK Success"
        t_stop = time.monotonic() - t0
        assert sipp.wait().ok
    whole = audio_stats(path)
    assert abs(whole.duration_s - t_stop) < 1.0, (whole, t_stop)  # the timeline is kept
    masked = _segment(path, t_mask + 0.4, t_unmask - 0.4, tmp_path)
    assert masked.max_amplitude == 0.0, masked
    assert _segment(path, 0.3, t_mask - 0.4, tmp_path).rms > 0.01
    assert _segment(path, t_unmask + 0.4, whole.duration_s - 0.2, tmp_path).rms > 0.01


def _segment(path: Path, start: float, end: float, workdir: Path):  # noqa: ANN202
    out = workdir / f"seg-{start:.2f}.wav"
    subprocess.run(["sox", str(path), str(out), "trim", f"{start:.3f}", f"={end:.3f}"], check=True,
                   capture_output=True, timeout=30)
    return audio_stats(out)


def test_start_up_check_names_a_module_that_did_not_load(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """A FreeSWITCH that runs but lacks a module the product needs is refused at start-up, bounded,
    and the process is stopped (a second, short-lived instance on its own ports)."""
    from pbx_recorder.testbed import freeswitch_conf
    from pbx_recorder.testbed.asterisk import SandboxError

    monkeypatch.setattr(freeswitch_conf, "MODULES", (*freeswitch_conf.MODULES, "mod_pbxrec_absent"))
    pbx = PrivateFreeSWITCH(tmp_path / "fs", boot_timeout=60)
    try:
        with pytest.raises(SandboxError, match="modules not loaded: mod_pbxrec_absent"):
            pbx.start()
        assert not pbx.running
    finally:
        pbx.close()


def _execute(session: OutboundSession, app: str, arg: str) -> None:
    """``sendmsg`` an application without waiting for it to run (queued on the channel)."""
    session.command("sendmsg", {"call-command": "execute", "execute-app-name": app, "execute-app-arg": arg})


def test_hand_off_dying_after_a_guarded_start_stops_that_recording(freeswitch: PrivateFreeSWITCH,
                                                                   esl: FsProbe, tmp_path: Path) -> None:
    """The recorder names its file in ``PBXREC_DIALOGUE_PATH_1`` before the ``uuid_record start``
    (as esl/consent_session.py does for a dialogue's or a consent-none recording), then dies
    without a result: the snippet's ``pbx-recorder-stop-dialogue`` stops that recording at once,
    and the call goes on unrecorded."""
    caller, since = new_caller(), esl.mark()
    path = freeswitch.selftest_dir / f"guarded-{caller}.wav"

    def start_then_die(session: OutboundSession) -> None:
        answer_with("")(session)
        uuid = session.channel["Unique-ID"]
        session.command(f"api uuid_setvar_multi {uuid} PBXREC_DIALOGUE_PATH_1={path}")
        session.command(f"api uuid_record {uuid} start {path}")

    with FakeOutboundSocket(freeswitch.socket_port, start_then_die) as server:
        result = call(freeswitch, tmp_path, "8001", hangup_after_s=6, from_user=caller)
    assert result.ok and result.elapsed_s >= 5.5, result.errors
    assert server.sessions[0].error == "", server.sessions[0].error
    uuid = uuid_of(esl, caller, since)
    done = hangup_complete(esl, uuid)
    assert done["variable_PBXREC_UNAVAILABLE"] == "connected"

    def stamp(name: str) -> float:
        event = esl.wait_event(lambda e: e.get("Event-Name") == name and e.get("Unique-ID") == uuid
                               and e.get("Record-File-Path", str(path)) == str(path), timeout=5, since=since)
        return int(event["Event-Date-Timestamp"]) / 1e6

    started, stopped = stamp("RECORD_START"), stamp("RECORD_STOP")
    # stopped by the snippet right after the socket closed, not by the hang-up 6 s into the call
    assert stopped - started < 2.0 and stamp("CHANNEL_HANGUP_COMPLETE") - stopped > 3.0
    assert wait_file_closed(path).stat().st_size > 44


@pytest.mark.parametrize("queued_reset", [True, False], ids=["reset queued too", "reset by api only"])
def test_a_result_set_late_in_the_queue_is_emptied_behind_it(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                            tmp_path: Path, queued_reset: bool) -> None:
    """FreeSWITCH's order, which esl/consent_session.py ``_withdraw_result`` relies on: a
    ``set PBXREC_RESULT=record`` queued behind a playing prompt (the session gave up waiting for it),
    then ``api uuid_setvar_multi <uuid> PBXREC_RESULT=`` (run at once: an empty value unsets) and
    a queued ``set PBXREC_RESULT=`` behind it, then the socket closes.  The queued ``set`` still
    runs after the socket closed, before the snippet looks at the result: only the reset queued
    behind it takes the call to the unavailable branch."""
    caller, since = new_caller(), esl.mark()

    def give_up(session: OutboundSession) -> None:
        answer_with("")(session)
        uuid = session.channel["Unique-ID"]
        # (long enough that the api reset below surely runs while the prompt plays, however
        # busy the host: at 1.5 s the queued set ran first once, on 4 test workers)
        _execute(session, "playback", "silence_stream://4000")
        _execute(session, "set", "PBXREC_RESULT=record")  # waits behind the prompt
        reply = session.command(f"api uuid_setvar_multi {uuid} PBXREC_RESULT=")
        assert reply.get("Content-Type") == "api/response"
        if queued_reset:
            _execute(session, "set", "PBXREC_RESULT=")
        _execute(session, "set", "PBXREC_SOCKET=failed:timeout")

    with FakeOutboundSocket(freeswitch.socket_port, give_up) as server:
        result = call(freeswitch, tmp_path, "8001", hangup_after_s=9, from_user=caller)
    assert result.ok, result.errors
    assert server.sessions[0].error == "", server.sessions[0].error
    done = hangup_complete(esl, uuid_of(esl, caller, since))
    if queued_reset:
        assert "variable_PBXREC_RESULT" not in done, done.get("variable_PBXREC_RESULT")
        assert done["variable_PBXREC_UNAVAILABLE"] == "failed:timeout"
    else:  # the late "record" won: the reason the reset is queued as well
        assert done.get("variable_PBXREC_RESULT") == "record", done.get("variable_PBXREC_UNAVAILABLE")
