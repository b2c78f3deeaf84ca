"""The recording FreeSWITCH starts itself at answer (esl/early_start.py) against a fake channel that
is handed over while it rings, and the ESL client's adoption of its RECORD_START."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consent.session_contract import ConsentTicket
from esl.client import EslClient
from esl.early_start import hand_over
from esl.frames import EslParser
from esl.normalize import EslNormalizer
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import events as ev
from pbx_recorder.core.rules import RuleDecision
from pbx_recorder.errors import EslError
from tests.peers.esl_outbound_peer import FakeChannel
from tests.peers.test_esl_consent import CALL, Backend, Serve, apps, call, serve  # noqa: F401
from tests.unit.esl_samples import A_LEG, T0, wire
from tests.unit.esl_samples import ev as esl_event

NONE = RuleDecision(record=True, rule="none", consent="none")


class EarlyBackend(Backend):
    """Like the daemon: ``decide`` says whether the decision is final before answer; ``request``
    runs the core's commands for this channel through ``inband`` (the session's EarlyStarter)."""

    def __init__(self, decision: RuleDecision | None, final: bool = True, mode: str = "mixed") -> None:
        super().__init__(decision)
        self.final, self.mode = final, mode
        self.inband: list[Any] = []

    async def decide(self, event: ev.ConsentRequested) -> RuleDecision | None:
        return self.decision if self.final else None

    async def request(self, event: ev.ConsentRequested, inband: Any = None) -> ConsentTicket:
        self.requests.append(event)
        self.inband.append(inband)
        if inband is None or self.decision is None or not self.decision.record:
            return ConsentTicket(self.decision)
        legs = ("/m/a-in.wav", "/m/a-out.wav") if self.mode == "dual" else ()
        start = cmds.StartRecording(event.call_id, f"{event.call_id}_call001", event.channel, "/m/a.wav",
                                    self.mode, leg_paths=legs)
        commands = [start,
                    cmds.SetChannelVar(event.call_id, event.channel, "PBXREC_RECORDING_ID",
                                       start.recording_id),
                    cmds.SetChannelVar(event.call_id, event.channel, "PBXREC_RESULT", "record")]
        for command in commands:
            assert inband.takes(command)
            await inband.execute(command)
        return ConsentTicket(self.decision)


def _client() -> EslClient:
    return EslClient(host="127.0.0.1", port=1, password="x", normalizer=EslNormalizer("pbx1"))


def _set_names(channel: FakeChannel) -> list[str]:
    return [arg.partition("=")[0] for app, arg in channel.apps if app == "set"]


async def test_decided_while_ringing_the_recording_is_handed_to_the_answer(serve: Serve) -> None:  # noqa: F811
    client = _client()
    backend = EarlyBackend(NONE)
    channel = await call(serve(backend, routes=client), answer_state="ringing")
    assert channel.vars_set["execute_on_answer_pbxrec_1"] == "record_session /m/a.wav"
    assert channel.vars_set["PBXREC_RECORDING_ID"] == f"{CALL}_call001"
    assert (channel.vars_set["PBXREC_CONSENT"], channel.vars_set["PBXREC_RESULT"]) == \
        ("not_required", "record")
    (hand_over,) = [c for c in channel.commands if c.startswith("api ")]  # one command, no uuid_record
    assert hand_over.startswith(f"api uuid_setvar_multi {A_LEG} execute_on_answer_pbxrec_1=record_session ")
    assert hand_over.endswith(";PBXREC_RESULT=record")  # last: set with the others or not at all
    assert _set_names(channel) == ["PBXREC_SOCKET"]  # no queued set: the parked channel's loop is slow
    assert "answer" not in apps(channel)  # the dialplan answers: FreeSWITCH starts the file then
    assert backend.requests[0].early and client._expected["/m/a.wav"].recording_id == f"{CALL}_call001"
    assert client._rec_paths[f"{CALL}_call001"] == ("/m/a.wav",)  # stop and PCI mask know the file


async def test_stereo_and_dual_hand_over_the_same_files_and_options(serve: Serve) -> None:  # noqa: F811
    channel = await call(serve(EarlyBackend(NONE, mode="stereo"), routes=_client()), answer_state="ringing")
    assert channel.vars_set["execute_on_answer_pbxrec_1"] == \
        "record_session /m/a.wav {RECORD_STEREO=true,record_sample_rate=8000}"
    channel = await call(serve(EarlyBackend(NONE, mode="dual"), routes=_client()), answer_state="ringing")
    assert [channel.vars_set[f"execute_on_answer_pbxrec_{n}"] for n in (1, 2, 3)] == [
        "record_session /m/a.wav", "record_session /m/a-in.wav {RECORD_READ_ONLY=true}",
        "record_session /m/a-out.wav {RECORD_WRITE_ONLY=true}"]


async def test_not_final_opted_out_or_answered_keeps_the_in_band_path(serve: Serve) -> None:  # noqa: F811
    notify = RuleDecision(record=True, rule="n", consent="notify", prompt="recording-notice")
    backend = EarlyBackend(notify, final=False)
    channel = await call(serve(backend), answer_state="ringing")
    answer = f"api uuid_answer {A_LEG}"
    assert answer in channel.commands and backend.inband == [None]  # answered, then asked
    assert channel.commands.index(answer) < [c.split("\n")[0] for c in channel.commands].index("sendmsg", 4)
    assert apps(channel) == ["playback"]
    backend = EarlyBackend(NONE)
    channel = await call(serve(backend), answer_state="ringing", variables={"PBXREC_EARLY_START": "no"})
    assert answer in channel.commands and backend.inband == [None]
    assert "execute_on_answer_pbxrec_1" not in channel.vars_set
    channel = await call(serve(EarlyBackend(NONE)))  # answered before the hand-off (older snippet)
    assert apps(channel) == [] and "execute_on_answer_pbxrec_1" not in channel.vars_set
    assert answer not in channel.commands


async def test_no_record_decided_while_ringing(serve: Serve) -> None:  # noqa: F811
    channel = await call(serve(EarlyBackend(RuleDecision(record=False))), answer_state="ringing")
    assert channel.vars_set["PBXREC_RESULT"] == "norecord" and apps(channel) == []
    assert f"api uuid_answer {A_LEG}" not in channel.commands  # the snippet answers


async def test_a_refused_variable_fails_closed_without_a_result(serve: Serve) -> None:  # noqa: F811
    server = serve(EarlyBackend(NONE), routes=_client())
    channel = await call(server, answer_state="ringing", refuse_set="execute_on_answer_pbxrec_1")
    assert "PBXREC_RESULT" not in channel.vars_set and server.failed == 1
    assert channel.vars_set["PBXREC_SOCKET"].startswith("failed:")  # the snippet unsets and answers


def test_client_adopts_the_record_start_of_a_handed_over_file_only() -> None:
    client = _client()
    start = cmds.StartRecording(CALL, f"{CALL}_call001", A_LEG, "/m/a.wav")
    client.expect_start(start)
    frames = EslParser().feed(wire([
        esl_event("RECORD_START", A_LEG, T0 + 1, {"Record-File-Path": "/m/other.wav"}),
        esl_event("RECORD_START", "c0ffee00-0000-4000-8000-0000000000ff", T0 + 1,
                  {"Record-File-Path": "/m/a.wav"}),  # another channel: not ours
        esl_event("RECORD_START", A_LEG, T0 + 2, {"Record-File-Path": "/m/a.wav"}),
        esl_event("RECORD_START", A_LEG, T0 + 3, {"Record-File-Path": "/m/a.wav"}),  # once
    ]))
    for frame in frames:
        client._dispatch(frame)
    started = [client._queue.get_nowait() for _ in range(client._queue.qsize())]
    started = [e for e in started if isinstance(e, ev.RecordingStarted)]
    assert len(started) == 1
    assert (started[0].recording_id, started[0].pbx_ref) == (f"{CALL}_call001", "/m/a.wav")
    assert started[0].at == T0 + 2  # FreeSWITCH's time of the start, the recorded span's beginning


def test_hand_over_refuses_what_freeswitch_would_split_or_strip() -> None:
    line = hand_over(A_LEG, {"execute_on_answer_pbxrec_1": "record_session /m/a.wav {RECORD_STEREO=true}",
                             "CDR(recordingfile)": "a.wav", "PBXREC_RESULT": "record"}, CALL)
    assert line == (f"api uuid_setvar_multi {A_LEG} execute_on_answer_pbxrec_1=record_session /m/a.wav "
                    "{RECORD_STEREO=true};PBXREC_RECORDING_FILE=a.wav;PBXREC_RESULT=record")
    for bad in ("a;PBXREC_RESULT=record", "it's", "back\\slash", " lead", "two  spaces", "x\ny", ""):
        with pytest.raises(EslError):
            hand_over(A_LEG, {"PBXREC_RECORDING_ID": bad}, CALL)


async def test_a_restarted_recorder_adopts_the_start_of_a_call_still_ringing() -> None:
    client = EslClient(host="127.0.0.1", port=1, password="x", normalizer=EslNormalizer("pbx1"),
                       monitor_dir="/m")
    ringing, answered = A_LEG, "c0ffee00-0000-4000-8000-0000000000ee"
    rows = {"rows": [{"uuid": ringing, "callstate": "RINGING", "call_uuid": ringing},
                     {"uuid": answered, "callstate": "ACTIVE", "call_uuid": answered}]}
    values = {"PBXREC_RECORDING_ID": f"{CALL}_call001", "PBXREC_RECORDING_PATH": "/m/a.wav"}

    async def api(line: str, **_: Any) -> str:
        return json.dumps(rows)

    async def bgapi(command: str, *args: str, **_: Any) -> str:
        leg, name = args
        return values[name].replace("a.wav", "b.wav" if leg == answered else "a.wav") if name in values \
            else "_undef_"

    client.api, client.bgapi = api, bgapi  # type: ignore[method-assign]
    await client._resync()
    assert set(client._expected) == {"/m/a.wav"}  # the answered one is recording already (resync adopts it)
    start = esl_event("RECORD_START", ringing, T0 + 5, {"Record-File-Path": "/m/a.wav"})
    for frame in EslParser().feed(wire([start])):
        client._dispatch(frame)
    started = [e for e in (client._queue.get_nowait() for _ in range(client._queue.qsize()))
               if isinstance(e, ev.RecordingStarted)]
    assert [(e.recording_id, e.at) for e in started] == [(f"{CALL}_call001", T0 + 5)]


@pytest.mark.parametrize("refusals, recorded", [(1, True), (2, True), (3, False)])
async def test_a_refused_answer_is_tried_again_then_fails_closed(serve: Serve, refusals: int,  # noqa: F811
                                                                 recorded: bool) -> None:
    """FreeSWITCH answered one ``uuid_answer`` of a 20-call burst with a bare ``-ERROR``: the
    answer is tried again (twice); a third refusal still fails the session closed (no result)."""
    answers: list[str] = []

    def api(line: str) -> str:
        if line.startswith("uuid_answer "):
            answers.append(line)
            return "-ERROR\n" if len(answers) <= refusals else "+OK\n"
        return "+OK\n"

    backend = EarlyBackend(NONE)
    channel = await call(serve(backend), answer_state="ringing", api=api,
                         variables={"PBXREC_EARLY_START": "no"})
    assert answers == [f"uuid_answer {A_LEG}"] * min(refusals + 1, 3)
    if recorded:
        assert channel.vars_set.get("PBXREC_RESULT") == "record" and backend.inband == [None]
    else:
        assert "PBXREC_RESULT" not in channel.vars_set and backend.inband == []
