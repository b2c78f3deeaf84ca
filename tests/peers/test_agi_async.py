"""consent.agi_async + consent.async_session over real sockets, with a fake Asterisk speaking FastAGI.

The defects they pin: a ``result=-1`` (or no reply) on a live channel was taken for the caller's
hang-up; a session refused above ``max_sessions`` left no trace of why the call was not recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fake_asterisk_agi import Prompts, consent_server, env_block, sync_reply

from consent.agi_async import AsyncAgiConnection, AsyncAgiServer
from consent.agi_protocol import AgiReply
from consent.async_session import AsyncConsentSession, InbandStarter
from consent.session_contract import ConsentTicket, DialogSettings
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import events as ev
from pbx_recorder.core.rules import RuleDecision

pytestmark = pytest.mark.timeout(30)
ARGS = ["direction=inbound", "dialed=4930123456", "linkedid=1732200000.1"]
EXPLICIT = RuleDecision(record=True, consent="explicit", rule="r", reason="rule")
Responder = Callable[[str], "str | None"]


class Backend:
    def __init__(self) -> None:
        self.requested: list[ev.ConsentRequested] = []
        self.resolved: list[ev.ConsentResolved] = []
        self.refusals: list[tuple[dict[str, str], str]] = []

    async def request(self, event: ev.ConsentRequested, inband: InbandStarter) -> ConsentTicket:
        self.requested.append(event)
        return ConsentTicket(EXPLICIT)

    async def resolve(self, event: ev.ConsentResolved, inband: InbandStarter) -> None:
        self.resolved.append(event)

    async def refused(self, env: dict[str, str], reason: str) -> None:
        self.refusals.append((env, reason))


@pytest.fixture
async def server() -> AsyncIterator[tuple[AsyncAgiServer, Backend]]:
    backend = Backend()
    async with consent_server(backend, DialogSettings(timeout_s=1.0, max_attempts=2), max_sessions=1,
                              session_timeout_s=1.5) as srv:
        yield srv, backend


async def converse(port: int, respond: Responder, gate: asyncio.Event | None = None, *,
                   env: bytes | None = None) -> list[str]:
    """One FastAGI session as Asterisk runs it (``env``: its environment block, by default
    :data:`ARGS`'); returns the commands received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env_block(ARGS, uniqueid="1732200000.1") if env is None else env)
    commands: list[str] = []
    try:
        while line := await reader.readline():
            command = line.decode().rstrip("\n")
            if (synced := sync_reply(command)) is not None:  # Asterisk's own business
                writer.write(synced.encode() + b"\n")
                continue
            commands.append(command)
            if gate is not None and is_question(command):
                await gate.wait()
            reply = respond(command)
            if reply is None:
                break
            writer.write(reply.encode() + b"\n")
    finally:
        writer.close()
    return commands


YES = "200 result=49 endpos=16000"  # '1' pressed 2 s into the question (8 kHz samples)


def is_question(command: str) -> bool:
    """The question is streamed with every digit as an escape digit (barge-in)."""
    return command.startswith("STREAM FILE ") and command.endswith(" 0123456789*#")


def script(question: list[str], status: str = "200 result=6", wait: list[str] | None = None) -> Responder:
    """Replies to the question (``STREAM FILE``) and then ``WAIT FOR DIGIT``, in order."""
    queue, waits = list(question), list(wait or [])

    def respond(command: str) -> str | None:
        if is_question(command):
            return queue.pop(0) if queue else "200 result=0 endpos=40000"
        if command.startswith("WAIT FOR DIGIT "):
            return waits.pop(0) if waits else "200 result=0"
        if command == "CHANNEL STATUS":
            return status
        return "200 result=0"

    return respond


def results(commands: list[str]) -> dict[str, str]:
    return {c.split(" ")[2]: c.split(" ", 3)[3] for c in commands if c.startswith("SET VARIABLE")}


async def test_failed_prompt_on_a_live_channel_is_failed_not_hangup(server: Any) -> None:
    srv, backend = server
    commands = await converse(srv.port, script(["200 result=-1"], status="200 result=6"))
    assert "CHANNEL STATUS" in commands  # asked before blaming the caller
    assert [r.decision for r in backend.resolved] == ["failed"]
    assert "PBXREC_RESULT" not in results(commands)  # the snippet takes its fail direction


async def test_minus_one_on_a_dead_channel_is_the_callers_hangup(server: Any) -> None:
    srv, backend = server
    await converse(srv.port, script(["200 result=-1"], status="511 Command Not Permitted on a dead channel"))
    assert [r.decision for r in backend.resolved] == ["hangup"]


async def test_hangup_line_is_the_callers_hangup(server: Any) -> None:
    srv, backend = server
    await converse(srv.port, script(["HANGUP"]))
    assert [r.decision for r in backend.resolved] == ["hangup"]


async def test_no_reply_in_time_is_failed_not_hangup(server: Any) -> None:
    srv, backend = server
    stuck = asyncio.Event()  # Asterisk never answers the question (its reply is lost)
    task = asyncio.create_task(converse(srv.port, script([YES]), gate=stuck))
    while not backend.resolved:
        await asyncio.sleep(0.05)
    assert [r.decision for r in backend.resolved] == ["failed"]
    stuck.set()
    await task


async def test_slow_digit_within_the_bound_is_consent(server: Any) -> None:
    srv, backend = server
    gate = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, gate.set)  # a slow (loaded) PBX, below the bound
    commands = await converse(srv.port, script([YES]), gate=gate)
    assert [r.decision for r in backend.resolved] == ["granted"]
    assert results(commands)["PBXREC_RESULT"] == "record"


async def test_above_max_sessions_refused_cleanly_and_reported(server: Any) -> None:
    srv, backend = server
    hold = asyncio.Event()
    first = asyncio.create_task(converse(srv.port, script([YES]), gate=hold))
    while not backend.requested:
        await asyncio.sleep(0.02)
    second = await converse(srv.port, script([YES]))
    # only the reason, for the snippet's UserEvent; PBXREC_RESULT unset: the snippet's fail direction
    assert second == ["SET VARIABLE PBXREC_UNAVAILABLE capacity"]
    (env, reason), = backend.refusals
    assert reason == "capacity" and env["agi_uniqueid"] == "1732200000.1"
    hold.set()
    assert results(await first)["PBXREC_RESULT"] == "record"
    assert srv.refused_count == 1 and srv.active == 0


# -- issue 10 call-path rules in the asyncio session ------------------------------------------


async def test_digit_before_the_question_does_not_count_and_is_logged(server: Any) -> None:
    srv, backend = server
    early = "200 result=49 endpos=800"  # '1' stopped the question 0.1 s in: pressed before it began
    commands = await converse(srv.port, script([early, YES]))
    (resolved,) = backend.resolved
    assert resolved.decision == "granted"  # by the second, timed answer only
    log = resolved.evidence["digit_log"]
    assert [(e["digit"], e["counted"]) for e in log] == [("1", False), ("1", True)]
    assert log[0]["prompt_offset_s"] == 0.1 and log[1]["prompt_offset_s"] == 2.0
    assert sum(is_question(c) for c in commands) == 2 and not any(c.startswith("GET DATA") for c in commands)


async def test_digit_after_the_question_is_timed_from_its_end(server: Any) -> None:
    srv, backend = server
    await converse(srv.port, script([], wait=["200 result=50"]))  # '2' during WAIT FOR DIGIT
    (resolved,) = backend.resolved
    assert resolved.decision == "refused"
    (entry,) = resolved.evidence["digit_log"]
    assert entry["counted"] is True and entry["after_prompt_s"] >= 0.0 and "prompt_offset_s" not in entry


class StartFails(Backend):
    async def resolve(self, event: ev.ConsentResolved, inband: InbandStarter) -> bool:
        self.resolved.append(event)
        await inband.execute(cmds.SetChannelVar(event.call_id, event.channel, "PBXREC_RESULT", "record"))
        return False  # the call recording the "yes" started could not start


async def test_yes_whose_recording_cannot_start_takes_the_fail_direction() -> None:
    backend = StartFails()

    async def session(conn: AsyncAgiConnection) -> None:
        await AsyncConsentSession(conn, node="pbx1", backend=backend, prompts=Prompts(), vip=None,
                                  settings=DialogSettings(timeout_s=1.0, max_attempts=2),
                                  call_id_of=lambda linkedid: f"pbx1_20261201150000-{linkedid}").run()

    srv = AsyncAgiServer("127.0.0.1", 0, session=session, refused=backend.refused, max_sessions=1)
    await srv.start()
    try:
        commands = await converse(srv.port, script([YES]))
    finally:
        await srv.close()
    assert backend.requested[0].call_id == "pbx1_20261201150000-1732200000.1"  # the AMI side's id
    assert results(commands)["PBXREC_RESULT"] == '""'  # "record" set in band, then cleared
    assert "PBXREC_CONSENT" not in results(commands)


async def test_dialogue_recording_keeps_its_id_where_the_snippet_stops_it() -> None:
    sent: list[str] = []

    class Conn:
        hung_up = False

        async def execute(self, command: str, *args: object) -> AgiReply:
            sent.append(" ".join([command, *map(str, args)]))
            if command == "GET VARIABLE" and args == ("PBXREC_DIALOGUE_MMID",):
                return AgiReply(200, result="1", data="0x7f01")
            return AgiReply(200, result="0")

    start = cmds.StartRecording("c1", "c1_consent001", "PJSIP/a-1", "/mon/c1_consent001.wav", dialogue=True)
    inband = InbandStarter(Conn(), "PJSIP/a-1", "1.1")  # type: ignore[arg-type]
    (started,) = await inband.execute(start)
    assert "i(PBXREC_DIALOGUE_MMID)" in sent[0] and sent[1] == "GET VARIABLE PBXREC_DIALOGUE_MMID"
    assert started.pbx_ref == "0x7f01"  # stoppable in band by its id, and by the snippet's fail branch
