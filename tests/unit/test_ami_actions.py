"""ami.actions: commands -> AMI action dicts; hostile values refused (header injection)."""

from __future__ import annotations

import pytest

from ami import actions
from pbx_recorder.core import commands as cmds
from pbx_recorder.core.naming import make_call_id, make_recording_id, recording_paths
from pbx_recorder.errors import AmiActionError

CALL = make_call_id("pbx1", "1732200000.1")
REC = make_recording_id(CALL, "call", 1)
MIXED = recording_paths("/var/spool/asterisk/monitor", CALL, REC, 1732200000.0, "mixed")
DUAL = recording_paths("/var/spool/asterisk/monitor", CALL, REC, 1732200000.0, "dual")


def test_start_recording_mixed() -> None:
    action = actions.to_action(
        cmds.StartRecording(call_id=CALL, recording_id=REC, channel="PJSIP/a-1", path=MIXED[0])
    )
    var = actions.mmid_variable(REC)
    assert var.startswith("PBXREC_MMID_") and all(c.isalnum() or c == "_" for c in var)
    assert action == {
        "Action": "MixMonitor",
        "Channel": "PJSIP/a-1",
        "File": MIXED[0],
        "Options": f"i({var})",
        "Command": f"touch {MIXED[0]}.closed",
    }


def test_start_recording_dual_uses_leg_files() -> None:
    base = DUAL[0].removesuffix("-rx.wav") + ".wav"
    action = actions.to_action(
        cmds.StartRecording(
            call_id=CALL, recording_id=REC, channel="PJSIP/a-1", path=base, mode="dual", leg_paths=DUAL
        )
    )
    assert action["Options"] == f"i({actions.mmid_variable(REC)})r({DUAL[0]})t({DUAL[1]})"
    assert action["File"] == base
    assert action["Command"] == f"touch {base}.closed {DUAL[0]}.closed {DUAL[1]}.closed"


def test_cdr_function_variable_is_allowed() -> None:
    action = actions.to_action(
        cmds.SetChannelVar(call_id=CALL, channel="PJSIP/a-1", name="CDR(recordingfile)", value="x.wav")
    )
    assert action["Variable"] == "CDR(recordingfile)"


def test_stop_mute_setvar() -> None:
    assert actions.to_action(
        cmds.StopRecording(call_id=CALL, recording_id=REC, channel="PJSIP/a-1", pbx_ref="0x1")
    ) == {"Action": "StopMixMonitor", "Channel": "PJSIP/a-1", "MixMonitorID": "0x1"}
    with pytest.raises(AmiActionError, match="MixMonitorID"):  # it would stop any MixMonitor of the channel
        actions.to_action(cmds.StopRecording(call_id=CALL, recording_id=REC, channel="PJSIP/a-1"))
    assert actions.to_action(cmds.MuteRecording(call_id=CALL, channel="PJSIP/a-1", muted=True)) == {
        "Action": "MixMonitorMute",
        "Channel": "PJSIP/a-1",
        "Direction": "both",
        "State": "1",
    }
    assert (
        actions.to_action(cmds.MuteRecording(call_id=CALL, channel="PJSIP/a-1", muted=False))["State"] == "0"
    )
    assert actions.to_action(
        cmds.SetChannelVar(call_id=CALL, channel="PJSIP/a-1", name="PBXREC_RESULT", value="record")
    ) == {"Action": "Setvar", "Channel": "PJSIP/a-1", "Variable": "PBXREC_RESULT", "Value": "record"}


HOSTILE = [
    "x\r\nAction: Originate",
    "x\nEvent: Fake",
    "x\rFoo: bar",
    "a\x00b",
    "a\x1bb",
    "a\u2028b",
    "a\x7fb",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_control_characters_are_refused_with_the_call_id(value: str) -> None:
    candidates = [
        cmds.SetChannelVar(call_id=CALL, channel="PJSIP/a-1", name="PBXREC_X", value=value),
        cmds.SetChannelVar(call_id=CALL, channel=value, name="PBXREC_X", value="ok"),
        cmds.MuteRecording(call_id=CALL, channel=value, muted=True),
        cmds.StopRecording(call_id=CALL, recording_id=REC, channel="PJSIP/a-1", pbx_ref=value),
        cmds.StartRecording(call_id=CALL, recording_id=REC, channel=value, path=MIXED[0]),
    ]
    for command in candidates:
        with pytest.raises(AmiActionError) as info:
            actions.to_action(command)
        assert info.value.call_id == CALL
        assert CALL in str(info.value)


@pytest.mark.parametrize(
    "path",
    [
        "relative.wav",
        "/tmp/a b.wav",
        "/tmp/${SHELL}.wav",
        "/tmp/a;rm -rf /.wav",
        "/tmp/a,b.wav",
        "/tmp/../etc/x.wav",
        "/tmp/a^{X}.wav",
        "/tmp/$(id).wav",
        "/tmp/a|b.wav",
        "/tmp/a`id`.wav",
        "/tmp/a\nb.wav",
    ],
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(AmiActionError, match="MixMonitor"):
        actions.to_action(cmds.StartRecording(call_id=CALL, recording_id=REC, channel="PJSIP/a-1", path=path))
    with pytest.raises(AmiActionError):
        actions.to_action(
            cmds.StartRecording(
                call_id=CALL,
                recording_id=REC,
                channel="PJSIP/a-1",
                path=MIXED[0],
                mode="dual",
                leg_paths=(path, DUAL[1]),
            )
        )


@pytest.mark.parametrize("name", ["", "A B", "X(a b)", "X(Y(z))", "a=b", "x" * 100, "PBX-REC"])
def test_unsafe_variable_names_are_refused(name: str) -> None:
    with pytest.raises(AmiActionError):
        actions.to_action(cmds.SetChannelVar(call_id=CALL, channel="PJSIP/a-1", name=name, value="v"))


def test_non_pbx_commands_and_bad_modes_are_refused() -> None:
    with pytest.raises(AmiActionError):
        actions.to_action(cmds.UpsertCall(call_id=CALL))
    with pytest.raises(AmiActionError, match="mode"):
        actions.to_action(
            cmds.StartRecording(
                call_id=CALL, recording_id=REC, channel="PJSIP/a-1", path=MIXED[0], mode="quad"
            )
        )
    with pytest.raises(AmiActionError, match="two leg paths"):
        actions.to_action(
            cmds.StartRecording(
                call_id=CALL, recording_id=REC, channel="PJSIP/a-1", path=MIXED[0], mode="dual"
            )
        )
    assert actions.is_pbx_command(cmds.MuteRecording(call_id=CALL, channel="c", muted=True))
    assert not actions.is_pbx_command(cmds.UpsertCall(call_id=CALL))


def test_event_filter_lets_through_exactly_what_the_normalizer_handles():
    import re

    from ami import actions
    from ami.normalize import HANDLERS

    replies_only = {"CoreShowChannel", "CoreShowChannelsComplete"}  # list items of an action's reply
    # VarSet: ours only; UserEvent: only the snippet's PbxrecEarlyStart, through its own filter
    assert set(actions.HANDLED_EVENTS) | {"VarSet", "UserEvent"} == set(HANDLERS) - replies_only
    # Asterisk matches POSIX extended regexes over the event text ("." matches a newline there)
    whitelist = [re.compile(f.replace("[[:space:]]", r"\s"), re.S) for f in actions.EVENT_FILTERS]

    def passes(text: str) -> bool:
        return any(f.search(text) for f in whitelist)

    assert passes("Event: Hangup\r\nChannel: PJSIP/a\r\n")
    assert not passes("Event: HangupRequest\r\nChannel: PJSIP/a\r\n")
    from pbx_recorder.core import calls, events
    varset = "Event: VarSet\r\nChannel: PJSIP/a\r\nVariable: PBXREC_RESULT\r\nValue: record\r\n"
    assert passes(varset) == (events.VariableSet in calls._HANDLERS)  # requested only once the core uses it
    assert re.compile(actions.VARSET_FILTER.replace("[[:space:]]", r"\s"), re.S).search(varset)
    assert not passes("Event: VarSet\r\nChannel: PJSIP/a\r\nVariable: TEST_TAG\r\nValue: x\r\n")
    assert not passes("Event: Newexten\r\nApplication: Set\r\n")
    assert passes("Event: UserEvent\r\nChannel: PJSIP/a\r\nUserEvent: PbxrecEarlyStart\r\nPbxrecRec: r\r\n")
    assert passes("Event: UserEvent\r\nChannel: PJSIP/a\r\nUserEvent: PbxrecUnavailable\r\nPbxrecWhy: x\r\n")
    assert not passes("Event: UserEvent\r\nChannel: PJSIP/a\r\nUserEvent: PbxrecSelftest\r\n")
    assert actions.event_filter(actions.EVENT_FILTERS[0])["Operation"] == "Add"
