"""consent.agi_async + consent.async_session over real sockets, with a fake Asterisk speaking FastAGI.

The defects they pin: a ``result=-1`` (or no reply) on a live channel was taken for the caller's
hang-up; a session refused above ``max_sessions`` left no trace of why the call was not recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fake_asterisk_agi import env_block

from consent.agi_async import AsyncAgiConnection, AsyncAgiServer
from consent.agi_server import ConsentTicket, DialogSettings
from consent.async_session import AsyncConsentSession, InbandStarter
from pbx_recorder import events as ev
from pbx_recorder.rules import RuleDecision

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


class Prompts:
    def path(self, prompt_id: str, language: str) -> tuple[str, str]:
        return f"/prompts/{language}/{prompt_id}", "v1"


@pytest.fixture
async def server() -> AsyncIterator[tuple[AsyncAgiServer, Backend]]:
    backend = Backend()

    async def session(conn: AsyncAgiConnection) -> None:
        await AsyncConsentSession(conn, node="pbx1", backend=backend, prompts=Prompts(), vip=None,
                                  settings=DialogSettings(timeout_s=1.0, max_attempts=2)).run()

    srv = AsyncAgiServer("127.0.0.1", 0, session=session, refused=backend.refused, max_sessions=1,
                         session_timeout_s=1.5)
    await srv.start()
    try:
        yield srv, backend
    finally:
        await srv.close()


async def converse(port: int, respond: Responder, gate: asyncio.Event | None = None) -> list[str]:
    """One FastAGI session as Asterisk runs it; returns the commands received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env_block(ARGS, uniqueid="1732200000.1"))
    commands: list[str] = []
    try:
        while line := await reader.readline():
            command = line.decode().rstrip("\n")
            commands.append(command)
            if gate is not None and command.startswith("GET DATA"):
                await gate.wait()
            reply = respond(command)
            if reply is None:
                break
            writer.write(reply.encode() + b"\n")
    finally:
        writer.close()
    return commands


def script(get_data: list[str], status: str = "200 result=6") -> Responder:
    queue = list(get_data)

    def respond(command: str) -> str | None:
        if command.startswith("GET DATA"):
            return queue.pop(0) if queue else "200 result= (timeout)"
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
    stuck = asyncio.Event()  # Asterisk never answers GET DATA (its reply is lost)
    task = asyncio.create_task(converse(srv.port, script(["200 result=1"]), gate=stuck))
    while not backend.resolved:
        await asyncio.sleep(0.05)
    assert [r.decision for r in backend.resolved] == ["failed"]
    stuck.set()
    await task


async def test_slow_digit_within_the_bound_is_consent(server: Any) -> None:
    srv, backend = server
    gate = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, gate.set)  # a slow (loaded) PBX, below the bound
    commands = await converse(srv.port, script(["200 result=1"]), gate=gate)
    assert [r.decision for r in backend.resolved] == ["granted"]
    assert results(commands)["PBXREC_RESULT"] == "record"


async def test_above_max_sessions_refused_cleanly_and_reported(server: Any) -> None:
    srv, backend = server
    hold = asyncio.Event()
    first = asyncio.create_task(converse(srv.port, script(["200 result=1"]), gate=hold))
    while not backend.requested:
        await asyncio.sleep(0.02)
    second = await converse(srv.port, script(["200 result=1"]))
    assert second == []  # closed without a command: PBXREC_RESULT unset, the snippet's fail direction
    (env, reason), = backend.refusals
    assert reason == "capacity" and env["agi_uniqueid"] == "1732200000.1"
    hold.set()
    assert results(await first)["PBXREC_RESULT"] == "record"
    assert srv.refused_count == 1 and srv.active == 0
