"""Self-tests of the real test bed and of the dialplan snippet; no recorder daemon needed.

A scripted FastAGI server (tests/real/fake_agi.py) stands in for the recorder where the
snippet's branches are checked, so these pass before the daemon is integrated.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from call_helpers import (
    call,
    cdr_of,
    files_under,
    linkedid_of,
    new_caller,
    user_event,
    wait_file_closed,
)
from fake_agi import FakeAgi

from pbx_recorder.testbed import PrivateAsterisk, SippCall, audio_stats
from pbx_recorder.testbed.ami_probe import AmiProbe

pytestmark = pytest.mark.real

AGI_LINE = ("AGI(agi://${PBXREC_AGI_HOST}:${PBXREC_AGI_PORT}/consent,direction=${ARG1},dialed=${ARG2},"
            "linkedid=${CHANNEL(linkedid)},queue=${ARG3},region=${ARG4},lang=${CHANNEL(language)},"
            "t0=${STRFTIME(,,%s.%3q)})")


def test_mixmonitor_in_dialplan_records_real_audio(asterisk: PrivateAsterisk, tmp_path: Path) -> None:
    result = call(asterisk, tmp_path, "7001", hangup_after_s=5, test_tag="selftest_mix")
    assert result.ok, result.errors
    stats = audio_stats(wait_file_closed(asterisk.selftest_dir / "selftest_mix.wav"))
    assert stats.rms > 0.01, stats
    assert abs(stats.duration_s - 5.0) < 1.0, stats


def test_caller_audio_continues_after_a_digit(asterisk: PrivateAsterisk, tmp_path: Path) -> None:
    # Asterisk 16 writes only the frames it gets: a gap in the caller's RTP would shorten the file.
    result = call(asterisk, tmp_path, "7001", hangup_after_s=9, test_tag="selftest_gap", dtmf=[(1000, "5")])
    assert result.ok, result.errors
    stats = audio_stats(wait_file_closed(asterisk.selftest_dir / "selftest_gap.wav"))
    assert stats.rms > 0.01 and abs(stats.duration_s - 9.0) < 1.0, stats


def test_rfc2833_digit_reaches_read(asterisk: PrivateAsterisk, ami: AmiProbe, tmp_path: Path) -> None:
    since = len(ami.events)
    result = call(asterisk, tmp_path, "7002", hangup_after_s=5, test_tag="selftest_dtmf",
                  dtmf=[(2000, "7")])
    assert result.ok, result.errors
    assert user_event(ami, "PbxrecSelftest", "selftest_dtmf", since=since)["Digits"] == "7"


def test_snippet_is_loaded_with_the_agi_contract(asterisk: PrivateAsterisk) -> None:
    shown = asterisk.rx("dialplan show pbx-recorder-consent")
    assert AGI_LINE in shown
    assert "Set(CDR(userfield)=pbx-recorder:unavailable)" in shown


def test_recorder_down_call_continues_unrecorded(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                 tmp_path: Path) -> None:
    before = files_under(asterisk.monitor_dir)
    caller, since = new_caller(), len(ami.events)
    result = call(asterisk, tmp_path, "8001", hangup_after_s=4, from_user=caller)
    assert result.ok, result.errors
    assert result.elapsed_s >= 3.5  # the caller hung up, not Asterisk
    cdr = cdr_of(ami, linkedid_of(ami, caller, since))
    assert cdr["UserField"] == "pbx-recorder:unavailable"
    assert cdr["PbxrecDnid"] == "8001" and cdr["Disposition"] == "ANSWERED"
    assert files_under(asterisk.monitor_dir) == before


def test_recorder_down_failmode_hangup_plays_apology_and_hangs_up(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                                   tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    result = call(asterisk, tmp_path, "8005", hangup_after_s=15, from_user=caller)
    assert result.ok, result.errors
    assert result.elapsed_s < 12  # Asterisk hung up after the apology
    cdr = cdr_of(ami, linkedid_of(ami, caller, since))
    assert cdr["UserField"] == "pbx-recorder:unavailable" and cdr["LastApplication"] == "Hangup"


def _answer(result: str, **variables: str):  # noqa: ANN202
    def script(env: dict[str, str], agi):  # noqa: ANN001, ANN202
        agi(f"SET VARIABLE PBXREC_RESULT {result}")
        for name, value in variables.items():
            agi(f'SET VARIABLE {name} "{value}"')
    return script


def test_snippet_record_result_returns_and_passes_the_contract(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                               tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    with FakeAgi(asterisk.agi_port, _answer("record")) as agi:
        result = call(asterisk, tmp_path, "8001", hangup_after_s=4, from_user=caller)
    assert result.ok and result.elapsed_s >= 3.5, result.errors
    linkedid = linkedid_of(ami, caller, since)
    env = agi.sessions[0]["env"]
    assert env["agi_network_script"] == "consent"
    args = [env[f"agi_arg_{n}"] for n in range(1, 7)]
    assert args == ["direction=inbound", "dialed=8001", f"linkedid={linkedid}", "queue=", "region=eu",
                    "lang=en"]
    assert env["agi_callerid"] == caller
    assert cdr_of(ami, linkedid)["UserField"] == ""


def test_snippet_refused_routes_to_unrecorded_destination(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                          tmp_path: Path) -> None:
    since = len(ami.events)
    with FakeAgi(asterisk.agi_port, _answer("refused", PBXREC_ROUTE="pbxrec-unrecorded,s,1")):
        result = call(asterisk, tmp_path, "8002", hangup_after_s=4, test_tag="refused_route")
    assert result.ok, result.errors
    assert user_event(ami, "PbxrecUnrecorded", "refused_route", since=since)


def test_snippet_refused_stops_the_dialogue_recording(asterisk: PrivateAsterisk, tmp_path: Path) -> None:
    # the recorder stops the dialogue's MixMonitor itself; the snippet's refused branch stops it
    # too (StopMixMonitor(${PBXREC_DIALOGUE_MMID})), so a refusing caller routed to the unrecorded
    # path is not recorded there even when the recorder's own stop did not happen
    target = asterisk.monitor_dir / "refused_dialogue.wav"

    def script(env: dict[str, str], agi) -> None:  # noqa: ANN001
        agi(f"EXEC MixMonitor {target},i(PBXREC_DIALOGUE_MMID)")
        agi("SET VARIABLE PBXREC_RESULT refused")
        agi('SET VARIABLE PBXREC_ROUTE "pbxrec-unrecorded,s,1"')

    with FakeAgi(asterisk.agi_port, script) as agi:
        result = call(asterisk, tmp_path, "8002", hangup_after_s=7, test_tag="refused_stop")
    assert result.ok, result.errors
    assert agi.sessions[0]["replies"][0] == "200 result=0"  # the MixMonitor started
    time.sleep(1.0)  # (the call is over: a MixMonitor still running would close at the hang-up)
    audio_bytes = target.stat().st_size - 44  # 8 kHz, 16 bit: 16,000 bytes a second
    assert audio_bytes < 3 * 16_000, audio_bytes  # stopped at the refusal, not at the hang-up 7 s later


def test_snippet_refused_with_goodbye_hangs_up(asterisk: PrivateAsterisk, prompts_dir: Path,
                                               tmp_path: Path) -> None:
    goodbye = prompts_dir / "en" / "refusal-goodbye"
    with FakeAgi(asterisk.agi_port, _answer("refused", PBXREC_GOODBYE=str(goodbye))):
        result = call(asterisk, tmp_path, "8002", hangup_after_s=20)
    assert result.ok, result.errors
    assert 3 < result.elapsed_s < 12  # the goodbye (about 4 s) was played, then Asterisk hung up


def test_snippet_empty_result_counts_as_unavailable(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                    tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    with FakeAgi(asterisk.agi_port, lambda env, agi: None):
        result = call(asterisk, tmp_path, "8001", hangup_after_s=3, from_user=caller)
    assert result.ok and result.elapsed_s >= 2.5, result.errors
    assert cdr_of(ami, linkedid_of(ami, caller, since))["UserField"] == "pbx-recorder:unavailable"


@pytest.mark.parametrize("language,did", [("en", "8002"), ("zh", "8006")])
def test_generated_prompt_plays_and_dtmf_reaches_agi(asterisk: PrivateAsterisk, prompts_dir: Path,
                                                     tmp_path: Path, language: str, did: str) -> None:
    def script(env: dict[str, str], agi) -> None:  # noqa: ANN001
        prompt = prompts_dir / env["agi_language"] / "consent-question"
        reply = agi(f"GET DATA {prompt} 6000 1")
        agi(f"SET VARIABLE PBXREC_RESULT {'record' if 'result=1' in reply else 'norecord'}")

    with FakeAgi(asterisk.agi_port, script) as agi:
        result = call(asterisk, tmp_path, did, hangup_after_s=5,
                      dtmf=[(1500, "1")])
    assert result.ok, result.errors
    session = agi.sessions[0]
    assert session["env"]["agi_language"] == language
    assert session["replies"][0].startswith("200 result=1"), session["replies"]


def test_hostile_from_headers_reach_agi_as_data_only(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                     tmp_path: Path) -> None:
    hostile = [("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),
               ("1234%0d%0aAction%3a%20Originate", "x\\r\\ny"), ("5" * 200, "N" * 10_000),
               ("4930", "Zoë 李 \U0001F600"), ("", "")]
    with FakeAgi(asterisk.agi_port, _answer("norecord")) as agi:
        for user, display in hostile:
            result = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=2, from_user=user,
                              from_display=display).start().wait()
            assert result.ok, (user[:40], result.errors)
    assert len(agi.sessions) == len(hostile)
    for session in agi.sessions:
        env = session["env"]  # the dialed/queue/region args never carry caller data
        assert env["agi_arg_2"] == "dialed=8001" and env["agi_arg_1"] == "direction=inbound"
    assert asterisk.running and "Originate" not in {e.get("Event") for _, e in ami.events}


def test_uas_agent_answers_queue_call(asterisk: PrivateAsterisk, agent_port: int, ami: AmiProbe,
                                      tmp_path: Path) -> None:
    from pbx_recorder.testbed import SippUas

    caller, since = new_caller(), len(ami.events)
    uas = SippUas(tmp_path, agent_port, calls=1, timeout_s=30).start()
    try:
        with FakeAgi(asterisk.agi_port, _answer("record")):
            result = call(asterisk, tmp_path, "8004", hangup_after_s=6, from_user=caller)
    finally:
        agent = uas.wait(timeout=15)
    assert result.ok, result.errors
    assert agent.ok, agent.errors
    ami.wait_event(lambda e: e.get("Event") == "AgentConnect" and e.get("Queue") == "support",
                   timeout=5, since=since)


def test_drop_ami_connections_cuts_other_sessions_only(asterisk: PrivateAsterisk, ami: AmiProbe) -> None:
    victim = AmiProbe("127.0.0.1", asterisk.ami_port, asterisk.daemon_ami_user, asterisk.daemon_ami_secret)
    try:
        asterisk.drop_ami_connections(keep_local_ports=(ami.local_port,))
        with pytest.raises(TimeoutError):  # returns at once: the connection is gone
            victim.wait_event(lambda e: False, timeout=5)
        assert victim.closed
    finally:
        victim.close()
    assert ami.action({"Action": "Ping"})["Response"] == "Success"


@pytest.mark.asterisk("16")  # a measured Asterisk 16 fact
def test_asterisk16_passes_crlf_caller_id_into_ami_events(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                          tmp_path: Path) -> None:
    """A measured PBX fact the AMI adapter must survive: a percent-encoded CRLF in the SIP From
    user becomes raw CRLF in every AMI event's CallerIDNum, so injected headers (here a second
    ``Channel:``) follow it.  The genuine headers come first: parsers must keep the first value."""
    since = len(ami.events)
    with FakeAgi(asterisk.agi_port, _answer("norecord")):
        result = call(asterisk, tmp_path, "8001", hangup_after_s=2,
                      from_user="1%0d%0aChannel%3a%20Local/1%40evil")
    assert result.ok, result.errors
    event = ami.wait_event(lambda e: e.get("Event") == "Newchannel" and e.get("CallerIDNum") == "1",
                           timeout=10, since=since)
    assert event["Channel"].startswith("PJSIP/caller-")  # first occurrence (AmiProbe keeps the first)
