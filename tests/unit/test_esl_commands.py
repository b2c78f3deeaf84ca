"""ESL command lines (esl/commands.py): the only way bytes leave for FreeSWITCH."""

from __future__ import annotations

import pytest

from esl import commands as esc
from pbx_recorder.core import commands as cmds
from pbx_recorder.errors import EslError
from tests.unit.esl_samples import A_LEG

PATH = "/var/spool/pbx-recorder/monitor/pbx1_x_call001-20251201T152000Z.wav"
CID = "pbx1_x"


def start(mode: str = "mixed", **kw: object) -> cmds.StartRecording:
    legs = ("/m/a-rx.wav", "/m/a-tx.wav") if mode == "dual" else ()
    return cmds.StartRecording(CID, "pbx1_x_call001", A_LEG, PATH, mode, "call", legs, **kw)  # type: ignore[arg-type]


def test_mixed_start_is_one_uuid_record() -> None:
    assert esc.api_lines(start()) == [f"api uuid_record {A_LEG} start {PATH}"]


def test_stereo_sets_record_stereo_and_8k_for_the_raw_file() -> None:
    (line,) = esc.api_lines(start("stereo"))
    assert line == f"api uuid_record {A_LEG} start {PATH} 0 {{RECORD_STEREO=true,record_sample_rate=8000}}"


def test_dual_is_mixed_plus_read_only_and_write_only() -> None:
    lines = esc.api_lines(start("dual"))
    assert lines == [
        f"api uuid_record {A_LEG} start {PATH}",
        f"api uuid_record {A_LEG} start /m/a-rx.wav 0 {{RECORD_READ_ONLY=true}}",
        f"api uuid_record {A_LEG} start /m/a-tx.wav 0 {{RECORD_WRITE_ONLY=true}}",
    ]


def test_stop_and_mask_address_the_files() -> None:
    stop = cmds.StopRecording(CID, "pbx1_x_call001", A_LEG)
    assert esc.api_lines(stop, (PATH,)) == [f"api uuid_record {A_LEG} stop {PATH}"]
    with pytest.raises(EslError, match="without the recording's file paths"):  # never `stop all`
        esc.api_lines(stop)
    mute = cmds.MuteRecording(CID, A_LEG, True)
    assert esc.api_lines(mute, (PATH,)) == [f"api uuid_record {A_LEG} mask {PATH}"]
    unmute = cmds.MuteRecording(CID, A_LEG, False)
    assert esc.api_lines(unmute, (PATH,)) == [f"api uuid_record {A_LEG} unmask {PATH}"]


def test_cdr_recordingfile_is_spelled_for_freeswitch() -> None:
    line = esc.api_lines(cmds.SetChannelVar(CID, A_LEG, "CDR(recordingfile)", "x.wav"))[0]
    assert line == f"api uuid_setvar {A_LEG} PBXREC_RECORDING_FILE x.wav"


@pytest.mark.parametrize("channel", ["abc def", "abc\nhangup", "", "x" * 65, "../../etc", "uuid;rm"])
def test_bad_uuid_refused(channel: str) -> None:
    with pytest.raises(EslError):
        esc.api_lines(cmds.StartRecording(CID, "r", channel, PATH))


@pytest.mark.parametrize(
    "path",
    [
        "relative.wav",
        "/a/../etc/passwd",
        "/a b.wav",
        "/a\n.wav",
        "/a/${x}.wav",
        "/a//b.wav",
        "/a/./b.wav",
        "/" + "a" * 1200,
    ],
)
def test_bad_path_refused(path: str) -> None:
    with pytest.raises(EslError):
        esc.api_lines(cmds.StartRecording(CID, "r", A_LEG, path))


@pytest.mark.parametrize("value", ["a\r\nb", "a\nbgapi uuid_kill x", "x\x00", "two words", "é" * 1100])
def test_setvar_values_cannot_inject(value: str) -> None:
    with pytest.raises(EslError) as err:
        esc.uuid_setvar(A_LEG, "PBXREC_RESULT", value, call_id=CID)
    assert err.value.call_id == CID


def test_setvar_name_must_be_plain() -> None:
    with pytest.raises(EslError):
        esc.uuid_setvar(A_LEG, "A B", "x")
    with pytest.raises(EslError):
        esc.uuid_setvar(A_LEG, "${evil}", "x")


def test_sendmsg_refuses_newlines_in_arguments() -> None:
    with pytest.raises(EslError):
        esc.sendmsg_execute("playback", "/p.wav\ncall-command: hangup")
    with pytest.raises(EslError):
        esc.sendmsg_execute("play back", "/p.wav")
    with pytest.raises(EslError):
        esc.sendmsg_hangup("NORMAL\nX")
    line = esc.sendmsg_execute("playback", "/p.wav", event_uuid="e1-2")
    assert line.split("\n") == [
        "sendmsg",
        "call-command: execute",
        "execute-app-name: playback",
        "execute-app-arg: /p.wav",
        "Event-UUID: e1-2",
        "event-lock: true",
    ]


def test_auth_and_event_lines() -> None:
    assert esc.auth("ClueCon") == "auth ClueCon"
    with pytest.raises(EslError):
        esc.auth("pw\nevent plain ALL")
    line = esc.event_plain()
    assert line.startswith("event plain CHANNEL_CREATE ") and line.endswith(
        "CUSTOM callcenter::info pbxrec::mask"
    )
    with pytest.raises(EslError):
        esc.event_plain(["ALL\nexit"])


def test_bgapi_carries_our_job_uuid() -> None:
    assert (
        esc.bgapi("uuid_getvar", A_LEG, "X", job_uuid="j-1") == f"bgapi uuid_getvar {A_LEG} X\nJob-UUID: j-1"
    )


def test_wire_ends_with_the_blank_line() -> None:
    assert esc.wire("api status") == b"api status\n\n"
