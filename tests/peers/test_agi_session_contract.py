"""The Asterisk snippet's contract (consent/agi_dialplan.py) over the asyncio FastAGI server, with a
fake Asterisk on a real socket: what the session plays and asks, the variables it sets, what it
tells the core, and hostile peers (arguments, over-long lines, bytes that are not UTF-8, a peer
that says nothing).  These ran against the thread-per-session server until it was removed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from fake_asterisk_agi import SYNC, env_block, open_agi
from test_agi_async import converse, results

from consent.agi_async import AsyncAgiConnection, AsyncAgiServer
from consent.agi_protocol import MAX_ENV_LINES, MAX_LINE
from consent.async_session import AsyncConsentSession, InbandStarter
from consent.session_contract import ConsentTicket, DialogSettings
from pbx_recorder.core import events as ev
from pbx_recorder.core.naming import make_call_id
from pbx_recorder.core.rules import RuleDecision
from pbx_recorder.vip import VipDirectory

pytestmark = pytest.mark.timeout(30)
ARGS = ["direction=inbound", "dialed=4930123456", "linkedid=1732200000.1", "queue=support", "region=eu",
        "lang=de"]
ENV = env_block(ARGS)
CALL = make_call_id("pbx1", "1732200000.1")
QUESTION = "STREAM FILE /prompts/de/consent-question 0123456789*#"
EXPLICIT = RuleDecision(record=True, rule="eu-inbound", verdict="yes", reason="rule", consent="explicit",
                        refusal_route="hangup")


class Backend:
    def __init__(self, decision: RuleDecision | None, recording_ok: bool = True) -> None:
        self.decision, self.recording_ok = decision, recording_ok
        self.requested: list[ev.ConsentRequested] = []
        self.resolved: list[ev.ConsentResolved] = []
        self.refusals: list[str] = []
        self.started: bool | None = None  # what resolve() answers (False: the recording failed)

    async def request(self, event: ev.ConsentRequested, inband: InbandStarter) -> ConsentTicket:
        self.requested.append(event)
        return ConsentTicket(self.decision, self.recording_ok)

    async def resolve(self, event: ev.ConsentResolved, inband: InbandStarter) -> bool | None:
        self.resolved.append(event)
        return self.started

    async def refused(self, env: dict[str, str], reason: str) -> None:
        self.refusals.append(reason)


class Prompts:
    def path(self, prompt_id: str, language: str) -> tuple[str, str]:
        return f"/prompts/{language}/{prompt_id}", "v7"


Serve = Callable[..., Awaitable[AsyncAgiServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[AsyncAgiServer] = []

    async def start(backend: Backend, *, vip: VipDirectory | None = None, env_timeout_s: float = 5.0,
                    max_sessions: int = 4) -> AsyncAgiServer:
        async def session(conn: AsyncAgiConnection) -> None:
            await AsyncConsentSession(conn, node="pbx1", backend=backend, prompts=Prompts(), vip=vip,
                                      settings=DialogSettings(timeout_s=2.0, max_attempts=2)).run()

        server = AsyncAgiServer("127.0.0.1", 0, session=session, refused=backend.refused,
                                max_sessions=max_sessions, session_timeout_s=5.0, env_timeout_s=env_timeout_s)
        await server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.close()


def answers(digits: list[str]) -> Callable[[str], str | None]:
    """Reply 200 to everything; the question (STREAM FILE with escape digits, 2 s in) or the
    WAIT FOR DIGIT after it consumes the scripted digits ('' = timeout, 'H' = hangup)."""
    queue = list(digits)

    def respond(command: str) -> str | None:
        if command.startswith("STREAM FILE ") and command.endswith(" 0123456789*#"):
            d = queue[0] if queue else ""
            if d == "H":
                return "HANGUP"
            if d:
                queue.pop(0)
                return f"200 result={ord(d)} endpos=16000"
            return "200 result=0 endpos=40000"
        if command.startswith("WAIT FOR DIGIT"):
            d = queue.pop(0)
            return "HANGUP" if d == "H" else f"200 result={ord(d) if d else 0}"
        return "200 result=0"

    return respond


async def talk(server: AsyncAgiServer, respond: Callable[[str], str | None], env: bytes = ENV) -> list[str]:
    """One session as Asterisk runs it; returns once the server has finished it."""
    commands = await converse(server.port, respond, env=env)
    assert await server.wait_idle(5)
    return commands


async def test_explicit_yes_records(serve: Serve) -> None:
    backend = Backend(EXPLICIT)
    commands = await talk(await serve(backend), answers(["1"]))
    assert commands[0] == QUESTION
    assert results(commands) == {"PBXREC_CONSENT": "granted", "PBXREC_RESULT": "record"}
    req = backend.requested[0]
    assert (req.call_id, req.channel, req.channel_id, req.direction, req.dialed, req.queue, req.region,
            req.language, req.caller_num, req.caller_name, req.vip) == (
        CALL, "PJSIP/alice-00000001", "1732200000.1", "inbound", "4930123456", "support", "eu", "de",
        "4915112345678", "Alice", False)
    (resolved,) = backend.resolved
    assert resolved.decision == "granted" and resolved.call_id == CALL
    assert resolved.evidence["prompt_version"] == "v7" and resolved.evidence["digits"] == ["1"]


async def test_explicit_no_refuses_with_goodbye(serve: Serve) -> None:
    backend = Backend(EXPLICIT)
    commands = await talk(await serve(backend), answers(["2"]))
    assert results(commands) == {"PBXREC_CONSENT": "refused", "PBXREC_GOODBYE": "/prompts/de/refusal-goodbye",
                                 "PBXREC_RESULT": "refused"}
    assert backend.resolved[0].decision == "refused"


async def test_refusal_routed_to_a_context(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=True, consent="explicit", refusal_route="unrecorded,s,1"))
    commands = await talk(await serve(backend), answers(["2"]))
    assert results(commands) == {"PBXREC_CONSENT": "refused", "PBXREC_ROUTE": "unrecorded,s,1",
                                 "PBXREC_RESULT": "refused"}


async def test_timeouts_then_retry_prompt_fail_closed(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=True, consent="explicit"))  # refusal route "continue"
    commands = await talk(await serve(backend), answers(["", ""]))
    retry = 'STREAM FILE /prompts/de/consent-retry ""'
    assert commands[:4] == [QUESTION, "WAIT FOR DIGIT 2000", retry, QUESTION]
    assert results(commands) == {"PBXREC_CONSENT": "timeout", "PBXREC_RESULT": "norecord"}
    assert backend.resolved[0].decision == "timeout"


async def test_hangup_mid_dialogue_is_not_consent(serve: Serve) -> None:
    backend = Backend(EXPLICIT)
    commands = await talk(await serve(backend), answers(["H"]))
    assert results(commands) == {}
    assert backend.resolved[0].decision == "hangup"


@pytest.mark.parametrize("reply", ["200 result=-1", "511 Command Not Permitted on a dead channel", None])
async def test_dead_channel_replies_are_hangups(serve: Serve, reply: str | None) -> None:
    """``200 result=-1`` counts only when CHANNEL STATUS fails too (here it gets the same reply);
    None: Asterisk closes the socket."""
    backend = Backend(EXPLICIT)
    commands = await talk(await serve(backend), lambda command: reply)
    assert results(commands) == {}
    assert backend.resolved[0].decision == "hangup"


async def test_notify_plays_notice_and_records(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=True, consent="notify", language="fr"))
    commands = await talk(await serve(backend), answers([]))
    assert commands[0] == 'STREAM FILE /prompts/fr/recording-notice ""'
    assert results(commands) == {"PBXREC_CONSENT": "notified", "PBXREC_RESULT": "record"}


async def test_no_record_decision_and_consent_none(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=False))
    server = await serve(backend)
    assert results(await talk(server, answers([]))) == {"PBXREC_RESULT": "norecord"}
    backend.decision = RuleDecision(record=True, consent="none")
    assert results(await talk(server, answers([]))) == {"PBXREC_CONSENT": "not_required",
                                                        "PBXREC_RESULT": "record"}
    assert backend.resolved == []


async def test_backend_failure_leaves_result_unset(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Backend):
        async def request(self, event: ev.ConsentRequested, inband: InbandStarter) -> ConsentTicket:
            raise TimeoutError("daemon did not answer")

    server = await serve(Broken(EXPLICIT))
    assert await talk(server, answers(["1"])) == []
    assert f"consent session failed call={CALL}" in caplog.text and server.failed == 1
    backend = Backend(EXPLICIT, recording_ok=False)  # the dialogue's recording could not start
    server2 = await serve(backend)
    assert await talk(server2, answers(["1"])) == []
    assert server2.failed == 1 and [r.decision for r in backend.resolved] == ["failed"]


async def test_recording_that_fails_after_the_notice_takes_the_fail_direction(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=True, consent="notify", language="fr"))
    backend.started = False  # e.g. the AMI link is down: MixMonitor could not start
    commands = await talk(await serve(backend), answers([]))
    assert backend.resolved[0].decision == "notified"
    assert results(commands) == {"PBXREC_RESULT": '""'}  # no "record": the snippet says unavailable


async def test_vip_flag_from_file(serve: Serve, tmp_path: Path) -> None:
    vip_file = tmp_path / "vip.txt"
    vip_file.write_text("# board\n+49 151 1234-5678\n")
    backend = Backend(RuleDecision(record=False))
    server = await serve(backend, vip=VipDirectory(file=vip_file))
    await talk(server, answers([]), env_block(ARGS, callerid="+4915112345678"))
    await talk(server, answers([]), env_block(ARGS, callerid="4930999"))
    assert [r.vip for r in backend.requested] == [True, False]


async def test_hostile_arguments_and_unknown_script(serve: Serve) -> None:
    backend = Backend(EXPLICIT)
    server = await serve(backend)
    assert await talk(server, answers([]), env_block(ARGS, script="other")) == []
    hostile = ["direction=sideways", "dialed=1;2", "linkedid=../../x", "lang=de\\x"]
    commands = await talk(server, answers(["1"]), env_block(hostile, name='Evil"; SET VARIABLE X'))
    req = backend.requested[0]
    assert req.direction == "" and req.language == "" and "/" not in req.call_id.split("_", 1)[1]
    assert req.caller_name == 'Evil"; SET VARIABLE X'  # data for the core, never a command
    assert results(commands)["PBXREC_RESULT"] == "record"


async def test_stopping_server_refuses_with_the_reason(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=False))
    server = await serve(backend)
    server.stop_accepting()
    assert await talk(server, answers([])) == ["SET VARIABLE PBXREC_UNAVAILABLE stopping"]
    assert backend.refusals == ["stopping"] and backend.requested == []


# -- hostile peers: the connection is closed, nothing is decided, the server goes on ----------------


@pytest.mark.parametrize("env", [
    b"agi_network: yes\nagi_calleridname: " + b"A" * (MAX_LINE + 1) + b"\n\n",  # one line too long
    b"agi_x: y\n" * (MAX_ENV_LINES + 1) + b"\n",  # too many lines
], ids=["long-line", "long-environment"])
async def test_oversized_environment_is_refused_and_the_server_goes_on(serve: Serve, env: bytes) -> None:
    backend = Backend(RuleDecision(record=False))
    server = await serve(backend)
    assert await talk(server, answers([]), env) == []
    assert server.failed == 1 and backend.requested == []
    assert results(await talk(server, answers([]))) == {"PBXREC_RESULT": "norecord"}


@pytest.mark.parametrize("reply", [
    "200 result=49 endpos=" + "9" * (MAX_LINE + 1),  # over-long reply line
    "\udcff\udcfe",  # bytes that are no reply at all (see talk_bytes)
], ids=["long-reply", "garbage-reply"])
async def test_broken_reply_to_the_question_fails_the_dialogue(serve: Serve, reply: str) -> None:
    backend = Backend(EXPLICIT)
    server = await serve(backend)

    def respond(command: str) -> str | None:
        return reply if command == QUESTION else "200 result=0"

    commands = await talk_bytes(server, respond)
    assert [r.decision for r in backend.resolved] == ["failed"]  # ours, not the caller's hang-up
    assert "PBXREC_RESULT" not in results(commands) and server.failed == 1


async def talk_bytes(server: AsyncAgiServer, respond: Callable[[str], str | None]) -> list[str]:
    """:func:`talk`, but replies may carry any bytes (``surrogateescape``: "\\udcff" is 0xff)."""
    reader, writer = await open_agi(server.port, ENV)
    commands: list[str] = []
    try:
        while line := await reader.readline():
            commands.append(line.decode().rstrip("\n"))
            reply = respond(commands[-1])
            if reply is None:
                break
            writer.write(reply.encode("utf-8", "surrogateescape") + b"\n")
    finally:
        writer.close()
    assert await server.wait_idle(5)
    return commands


async def test_bytes_that_are_not_utf8_in_the_environment_are_replaced(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=False))
    env = ENV.replace(b"agi_calleridname: Alice", b"agi_calleridname: \xff\xfeAl\xc3ice\x1b[2J")
    commands = await talk(await serve(backend), answers([]), env)
    assert results(commands) == {"PBXREC_RESULT": "norecord"}
    assert backend.requested[0].caller_name == "\ufffd\ufffdAl\ufffdice[2J"  # escape dropped too


async def test_peer_silent_before_its_environment_is_closed(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=False))
    server = await serve(backend, env_timeout_s=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\n")  # and then nothing: no end of the environment
    sent = await asyncio.wait_for(reader.read(), 5)  # closed by the server, nothing asked
    assert sent.startswith(SYNC.encode()) and sent.count(b"\n") == 1  # but the resync command
    writer.close()
    assert server.failed == 1 and backend.requested == [] and backend.refusals == []
