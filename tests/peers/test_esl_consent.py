"""The consent dialogue over FreeSWITCH's outbound socket (esl/outbound_server.py,
esl/consent_session.py) against a fake channel (tests/peers/esl_outbound_peer.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from consent.session_contract import ConsentTicket, DialogSettings
from esl.client import EslClient
from esl.consent_session import EslConsentSession
from esl.normalize import EslNormalizer
from esl.outbound_channel import OutboundChannel
from esl.outbound_server import OutboundServer
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import events as ev
from pbx_recorder.core.rules import RuleDecision
from pbx_recorder.errors import EslError, PbxDisconnected
from tests.peers.esl_outbound_peer import FakeChannel
from tests.unit.esl_samples import A_LEG

CALL = f"pbx1_{A_LEG}"


class Backend:
    def __init__(self, decision: RuleDecision | None, existing: str = "") -> None:
        self.decision, self.existing = decision, existing
        self.requests: list[ev.ConsentRequested] = []
        self.resolved: list[ev.ConsentResolved] = []

    async def request(self, event: ev.ConsentRequested) -> ConsentTicket:
        self.requests.append(event)
        return ConsentTicket(self.decision)

    async def resolve(self, event: ev.ConsentResolved) -> None:
        self.resolved.append(event)

    def existing_result(self, call_id: str) -> str:
        return self.existing


class Prompts:
    def __init__(self, root: Path) -> None:
        self.root = root
        for lang in ("en", "zh"):
            for pid in ("recording-notice", "consent-question", "consent-retry", "refusal-goodbye"):
                (root / lang).mkdir(parents=True, exist_ok=True)
                (root / lang / f"{pid}.wav").write_bytes(b"RIFF")

    def path(self, prompt_id: str, language: str) -> tuple[str, str]:
        return str(self.root / language / prompt_id), f"{prompt_id}-v1"


Serve = Callable[..., Any]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    servers: list[OutboundServer] = []
    prompts = Prompts(tmp_path / "prompts")

    def start(
        backend: Backend, max_sessions: int = 4, timeout_s: float = 10.0, routes: Any = None,
        reply_timeout: float | None = None,
    ) -> OutboundServer:
        def session(channel: OutboundChannel) -> EslConsentSession:
            if reply_timeout is not None:
                channel.reply_timeout = reply_timeout
            return EslConsentSession(
                channel,
                normalizer=EslNormalizer("pbx1"),
                backend=backend,
                prompts=prompts,
                vip=None,
                settings=DialogSettings(timeout_s=2.0, max_attempts=2),
                routes=routes,
            )

        server = OutboundServer(
            "127.0.0.1", 0, session=session, max_sessions=max_sessions, session_timeout_s=timeout_s
        )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.aclose()


async def call(server: OutboundServer, **kw: Any) -> FakeChannel:
    await asyncio.sleep(0.05)  # the server task binds its asyncio.Server
    channel = FakeChannel(server.port, **kw)
    await channel.run()
    await asyncio.sleep(0.05)  # the session's last lines are logged after the socket closed
    return channel


def apps(channel: FakeChannel) -> list[str]:
    return [a for a, _ in channel.apps if a != "set"]


async def test_explicit_yes_records_with_evidence(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=True, rule="bank", consent="explicit"))
    channel = await call(serve(backend), digits=["1"])
    assert channel.vars_set == {
        "PBXREC_SOCKET": "connected",
        "PBXREC_CONSENT": "granted",
        "PBXREC_RESULT": "record",
    }
    assert apps(channel) == ["play_and_get_digits"]
    sets = [arg for app, arg in channel.apps if app == "set"]
    # playback stops on "*" unless told otherwise: none during the dialogue, then put back (unset)
    assert sets.index("playback_terminators=none") < [a for a, _ in channel.apps].index("play_and_get_digits")
    assert "playback_terminators=" in sets
    arg = [a for n, a in channel.apps if n == "play_and_get_digits"][0].split(" ")
    assert arg[:5] == ["1", "1", "1", "2000", "#"] and arg[5].endswith("/en/consent-question.wav")
    assert channel.commands[:3] == ["connect", "myevents", "resume"]
    request = backend.requests[0]
    assert (request.call_id, request.channel, request.direction, request.dialed) == (
        CALL,
        A_LEG,
        "inbound",
        "4930123456",
    )
    (resolved,) = backend.resolved
    assert resolved.decision == "granted"
    assert resolved.evidence["prompt_version"] == "consent-question-v1" and resolved.evidence["digits"] == [
        "1"
    ]


async def test_a_digit_pressed_before_the_question_is_not_an_answer(serve: Serve) -> None:
    """The "1" that waited in the channel's queue is read by the question at once: FreeSWITCH
    stamps its DTMF event when the digit leaves the queue, 0.1 s into the question (inside the
    early-digit rule's first 0.5 s): logged and not counted; the question is asked again and the
    answer given 1.5 s into it counts."""
    backend = Backend(RuleDecision(record=True, consent="explicit"))
    channel = await call(serve(backend), digits=[("1", 0.1), ("2", 1.5)])
    assert [a for a in apps(channel)] == ["play_and_get_digits", "play_and_get_digits"]
    (resolved,) = backend.resolved
    assert resolved.decision == "refused" and channel.vars_set["PBXREC_CONSENT"] == "refused"
    log = resolved.evidence["digit_log"]
    assert [(e["digit"], e["counted"]) for e in log] == [("1", False), ("2", True)], log
    assert log[0]["prompt_offset_s"] == 0.1 and log[1]["prompt_offset_s"] == 1.5


async def test_a_digit_the_park_took_before_the_question_is_not_matched_with_the_answer(serve: Serve) -> None:
    """A "1" pressed before the first question is taken off the queue by the park between two
    applications (its DTMF event stamped before the question): the answer "1" given 1.5 s into the
    question is matched with its own event, not with that one (which made it "before the
    question", and every later "1" with the one before it)."""
    backend = Backend(RuleDecision(record=True, consent="explicit"))
    channel = await call(serve(backend), digits=["1"], parked_digits=["1"])
    (resolved,) = backend.resolved
    assert resolved.decision == "granted" and channel.vars_set["PBXREC_CONSENT"] == "granted"
    log = resolved.evidence["digit_log"]
    assert [(e["digit"], e["counted"], e["prompt_offset_s"]) for e in log] == [("1", True, 1.5)], log


async def test_a_digit_pressed_during_the_retry_prompt_is_not_taken_for_the_next_answer(serve: Serve) -> None:
    """The first question times out, the caller presses "1" during the retry prompt (playback
    takes that digit itself; only its DTMF event is seen), then "1" 1.5 s into the question asked
    again: that "1" counts.  Before, the retry prompt's DTMF event was matched with it (offset
    about -8 s: "before the question"), and every later "1" with the one before it."""
    backend = Backend(RuleDecision(record=True, consent="explicit"))
    channel = await call(serve(backend), digits=["", "1"], during_playback=["1"])
    assert apps(channel) == ["play_and_get_digits", "playback", "play_and_get_digits"]
    (resolved,) = backend.resolved
    assert resolved.decision == "granted" and channel.vars_set["PBXREC_RESULT"] == "record"
    log = resolved.evidence["digit_log"]
    assert [(e["digit"], e["counted"], e["prompt_offset_s"]) for e in log][-1] == ("1", True, 1.5), log


async def test_a_refused_put_back_of_the_terminators_keeps_the_decision(serve: Serve) -> None:
    """The caller said yes; FreeSWITCH refuses the ``set`` that puts playback_terminators back: the
    core has the "granted" with its evidence and the call is recorded (the put-back ran before the
    outcome was resolved: its failure failed the session and lost the decision)."""
    backend = Backend(RuleDecision(record=True, consent="explicit"))
    channel = await call(serve(backend), digits=["1"], refuse_set_app="playback_terminators")
    assert [r.decision for r in backend.resolved] == ["granted"]
    assert channel.vars_set["PBXREC_RESULT"] == "record"


async def test_yes_whose_recording_cannot_start_takes_the_fail_direction(serve: Serve) -> None:
    class NoStart(Backend):
        async def resolve(self, event: ev.ConsentResolved) -> bool:
            self.resolved.append(event)
            return False  # the daemon could not start the call recording after the "yes"

    backend = NoStart(RuleDecision(record=True, consent="explicit"))
    server = serve(backend)
    channel = await call(server, digits=["1"])
    assert backend.resolved[0].decision == "granted"
    assert "PBXREC_RESULT" not in channel.vars_set and "PBXREC_CONSENT" not in channel.vars_set
    assert channel.vars_set["PBXREC_SOCKET"] == "failed:error" and server.failed == 1


async def test_notify_plays_the_notice(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=True, consent="notify", language="zh"))
    channel = await call(serve(backend))
    assert apps(channel) == ["playback"]
    assert [a for n, a in channel.apps if n == "playback"][0].endswith("/zh/recording-notice.wav")
    order = [a if n == "set" else n for n, a in channel.apps]  # "*" cannot cut the notice short
    assert order.index("playback_terminators=none") < order.index("playback")
    assert channel.vars_set["PBXREC_RESULT"] == "record" and channel.vars_set["PBXREC_CONSENT"] == "notified"


async def test_explicit_timeouts_fail_closed(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=True, consent="explicit"))
    channel = await call(serve(backend), digits=["", ""])
    assert apps(channel) == ["play_and_get_digits", "playback", "play_and_get_digits"]  # retry prompt between
    assert channel.vars_set["PBXREC_CONSENT"] == "timeout"
    assert channel.vars_set["PBXREC_RESULT"] == "norecord"  # refusal route "continue": goes on unrecorded
    assert backend.resolved[0].decision == "timeout"
    variables = [a.split(" ")[7] for n, a in channel.apps if n == "play_and_get_digits"]
    assert variables == ["pbxrec_digit_1", "pbxrec_digit_2"]  # a fresh variable per attempt


async def test_refusal_goto_becomes_a_transfer(serve: Serve) -> None:
    decision = RuleDecision(record=True, consent="explicit", refusal_route="pbxrec-unrecorded,s,1")
    channel = await call(serve(Backend(decision)), digits=["2"])
    assert (
        channel.vars_set["PBXREC_RESULT"] == "refused"
        and channel.vars_set["PBXREC_ROUTE"] == "pbxrec-unrecorded,s,1"
    )
    assert channel.apps[-1] == ("transfer", "s XML pbxrec-unrecorded")


async def test_refusal_hangup_plays_goodbye_then_hangs_up(serve: Serve) -> None:
    decision = RuleDecision(record=True, consent="explicit", refusal_route="hangup")
    channel = await call(serve(Backend(decision)), digits=["2"])
    assert apps(channel)[-1] == "playback" and channel.apps[-1][1].endswith("/en/refusal-goodbye.wav")
    assert channel.hung_up and "call-command: hangup" in channel.commands[-1]


@pytest.mark.parametrize("at", [1, 2])  # while playback_terminators is set; while play_and_get_digits runs
async def test_hangup_during_the_prompt_is_not_consent(serve: Serve, at: int) -> None:
    backend = Backend(RuleDecision(record=True, consent="explicit"))
    channel = await call(serve(backend), hangup_at=at)
    assert [a for a, _ in channel.apps][at] == ("set", "play_and_get_digits")[at - 1]
    assert [r.decision for r in backend.resolved] == ["hangup"]
    assert "PBXREC_RESULT" not in channel.vars_set


async def test_no_rule_and_consent_none(serve: Serve) -> None:
    channel = await call(serve(Backend(RuleDecision(record=False))))
    assert channel.vars_set["PBXREC_RESULT"] == "norecord" and apps(channel) == []
    channel = await call(serve(Backend(RuleDecision(record=True, consent="none"))))
    assert (
        channel.vars_set["PBXREC_RESULT"] == "record" and channel.vars_set["PBXREC_CONSENT"] == "not_required"
    )


async def test_already_handled_call_is_not_asked_twice(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=True, consent="explicit"), existing="record")
    channel = await call(serve(backend))
    assert channel.vars_set["PBXREC_RESULT"] == "record" and backend.requests == [] and apps(channel) == []


async def test_backend_failure_fails_closed_and_says_why(serve: Serve) -> None:
    class Broken(Backend):
        async def request(self, event: ev.ConsentRequested) -> ConsentTicket:
            raise RuntimeError("core down")

    server = serve(Broken(None))
    channel = await call(server)
    assert "PBXREC_RESULT" not in channel.vars_set
    assert channel.vars_set["PBXREC_SOCKET"] == "failed:error" and server.failed == 1


async def test_hostile_caller_data_and_dialplan_inputs(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=False))
    name = "Eve\r\nEvent-Name: CHANNEL_HANGUP\r\n" + "张" * 2000
    await call(
        serve(backend),
        caller_name=name,
        caller_num="555%0A1234",
        variables={"PBXREC_DIALED": "1000\napi uuid_kill x", "PBXREC_QUEUE": "support"},
    )
    request = backend.requests[0]
    assert "\n" not in request.caller_name and len(request.caller_name) <= 80
    assert request.dialed == "" and request.queue == "support"


async def test_sessions_are_bounded_and_stop_refuses(serve: Serve) -> None:
    gate = asyncio.Event()

    class Slow(Backend):
        async def request(self, event: ev.ConsentRequested) -> ConsentTicket:
            await gate.wait()
            return ConsentTicket(RuleDecision(record=False))

    server = serve(Slow(None), max_sessions=1)
    first = asyncio.ensure_future(call(server))
    await asyncio.sleep(0.3)
    second = await call(server)
    assert second.vars_set == {"PBXREC_SOCKET": "failed:busy"}
    gate.set()
    assert (await first).vars_set["PBXREC_RESULT"] == "norecord"
    server.stop_accepting()
    third = await call(server)
    assert third.vars_set == {"PBXREC_SOCKET": "failed:stopping"}
    assert await asyncio.to_thread(server.wait_idle, 1.0)


class RecordingBackend(Backend):
    """Like the daemon: the decision's StartRecording goes through the (unconnected) ESL client."""

    def __init__(self, decision: RuleDecision, client: EslClient, fail: bool = False) -> None:
        super().__init__(decision)
        self.client = client
        self.fail = fail

    async def request(self, event: ev.ConsentRequested) -> ConsentTicket:
        self.requests.append(event)
        start = cmds.StartRecording(event.call_id, f"{event.call_id}_call001", event.channel, "/m/a.wav")
        try:
            await self.client.execute(start)
        except (EslError, PbxDisconnected):
            return ConsentTicket(self.decision, recording_ok=False)
        return ConsentTicket(self.decision)


def _client() -> EslClient:
    return EslClient(host="127.0.0.1", port=1, password="x", normalizer=EslNormalizer("pbx1"))


async def test_uuid_record_goes_out_on_the_calls_own_socket_without_waiting(serve: Serve) -> None:
    """The hand-off: connect, then myevents/resume/set and the rule's uuid_record written back to
    back on the session's socket (no inbound-ESL round trip; the inbound client is not even
    connected here), and the route is dropped when the session ends."""
    client = _client()
    backend = RecordingBackend(RuleDecision(record=True, consent="none"), client)
    channel = await call(serve(backend, routes=client))
    firsts = [c.split("\n", 1)[0] for c in channel.commands]
    assert firsts[:4] == ["connect", "myevents", "resume", "sendmsg"]
    # the start's file goes into PBXREC_DIALOGUE_PATH_1 first (the fail branch stops it, recorder dead)
    assert firsts[4:6] == [f"api uuid_setvar_multi {A_LEG} PBXREC_DIALOGUE_PATH_1=/m/a.wav",
                           f"api uuid_record {A_LEG} start /m/a.wav"]
    assert channel.vars_set == {"PBXREC_SOCKET": "connected", "PBXREC_DIALOGUE_PATH_1": "/m/a.wav",
                                "PBXREC_CONSENT": "not_required", "PBXREC_RESULT": "record",
                                "PBXREC_CALL_ID": A_LEG}  # and the client's batch
    assert client._direct == {}  # after the session, this call's commands use the inbound connection
    with pytest.raises(PbxDisconnected):
        await client.execute(cmds.StopRecording(CALL, f"{CALL}_call001", A_LEG))


async def test_uuid_record_refused_on_the_socket_fails_closed(serve: Serve) -> None:
    client = _client()
    backend = RecordingBackend(RuleDecision(record=True, consent="none"), client)
    server = serve(backend, routes=client)
    await asyncio.sleep(0.05)
    channel = FakeChannel(server.port)
    channel.api_body = "-ERR Cannot locate session!\n"
    await channel.run()
    await asyncio.sleep(0.05)
    assert "PBXREC_RESULT" not in channel.vars_set and server.failed == 1
    assert channel.vars_set["PBXREC_SOCKET"].startswith("failed:")
