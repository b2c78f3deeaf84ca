"""consent/agi_async.py under load (issue 10, 500 calls on 2 cores), over real sockets with a fake
Asterisk: quick decisions do not take consent-session slots; a refusal always says why, in band
and to the core even when the environment comes late; a starved PBX's dialogue is refused as
``capacity`` before its question instead of keeping the caller waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fake_asterisk_agi import answer_sync, env_block, open_agi
from test_agi_async import YES, Prompts, converse, is_question, results, script
from test_agi_early_decide import CoreBackend, decide

from consent.agi_async import AsyncAgiConnection, AsyncAgiServer
from consent.async_session import AsyncConsentSession, InbandStarter
from consent.session_contract import ConsentTicket, DialogSettings
from pbx_recorder.core import events as ev
from pbx_recorder.core.rules import RuleDecision

pytestmark = pytest.mark.timeout(30)
EXPLICIT = RuleDecision(record=True, consent="explicit", rule="r", reason="rule")


class Backend(CoreBackend):
    """Quick decisions through the core; consent sessions with an explicit rule."""

    def __init__(self) -> None:
        super().__init__()
        self.resolved: list[ev.ConsentResolved] = []
        self.asked: list[ev.ConsentAsked] = []
        self.envs: list[dict[str, str]] = []

    async def request(self, event: ev.ConsentRequested, inband: InbandStarter) -> ConsentTicket:
        if event.early:
            return await super().request(event, inband)
        self.requested.append(event)
        return ConsentTicket(EXPLICIT)

    async def resolve(self, event: ev.ConsentResolved, inband: InbandStarter) -> None:
        self.resolved.append(event)

    async def on_asked(self, event: ev.ConsentAsked) -> None:
        self.asked.append(event)

    async def refused(self, env: dict[str, str], reason: str) -> None:
        self.envs.append(env)
        await super().refused(env, reason)


def make_server(backend: Backend, *, max_sessions: int = 1, max_decisions: int = 4,
                delay_bound: float | None = None) -> AsyncAgiServer:
    async def session(conn: AsyncAgiConnection) -> None:
        await AsyncConsentSession(conn, node="pbx1", backend=backend, prompts=Prompts(), vip=None,
                                  settings=DialogSettings(timeout_s=1.0, max_attempts=2),
                                  max_question_delay_s=delay_bound, on_asked=backend.on_asked).run()

    return AsyncAgiServer("127.0.0.1", 0, session=session, refused=backend.refused, max_sessions=max_sessions,
                          session_timeout_s=2.0, max_decisions=max_decisions, decision_timeout_s=1.0)


@pytest.fixture
async def busy() -> AsyncIterator[tuple[AsyncAgiServer, Backend, asyncio.Event, asyncio.Task[list[str]]]]:
    """max_sessions 1, and that one slot held by a consent dialogue waiting at its question."""
    backend = Backend()
    srv = make_server(backend)
    await srv.start()
    hold = asyncio.Event()
    first = asyncio.create_task(converse(srv.port, script([YES]), gate=hold))
    while not backend.requested:
        await asyncio.sleep(0.02)
    try:
        yield srv, backend, hold, first
    finally:
        hold.set()
        await first
        await srv.close()


async def test_quick_decision_is_served_while_consent_sessions_are_full(busy: Any) -> None:
    srv, backend, _, _ = busy
    variables = await decide(srv.port, "8003")  # consent none: the dialplan starts the recording
    assert variables["PBXREC_RESULT"] == "record" and variables["PBXREC_EARLY_ARGS"]
    assert srv.active == 1 and srv.refused_count == 0 and backend.refusals == []


async def test_quick_decisions_have_their_own_bound_and_take_no_slot() -> None:
    backend = Backend()
    srv = make_server(backend, max_sessions=5, max_decisions=1)
    await srv.start()
    try:
        reader, writer = await open_agi(srv.port, env_block(  # a decision left hanging
            ["direction=inbound", "dialed=8003", "linkedid=1732200000.7"], uniqueid="1732200000.7",
            script="decide"))
        assert (await reader.readline()).startswith(b"SET VARIABLE")
        assert srv.decisions_active == 1 and srv.active == 0
        assert await decide(srv.port, "8003") == {}  # above the bound: nothing set, the snippet goes on
        assert srv.decisions_skipped == 1 and backend.refusals == []
        await asyncio.sleep(1.3)  # its reply bound (decision_timeout_s) ran out: the slot is free again
        assert srv.decisions_active == 0
        writer.close()
    finally:
        await srv.close()


async def test_refusal_says_capacity_in_band_for_the_dialplan(busy: Any) -> None:
    srv, backend, _, _ = busy
    second = await converse(srv.port, script([YES]))
    assert second == ["SET VARIABLE PBXREC_UNAVAILABLE capacity"]  # and no PBXREC_RESULT: fail direction
    assert backend.refusals == ["capacity"]


async def test_refusal_whose_environment_comes_late_still_tells_the_core(busy: Any) -> None:
    """Before: the refusal read the environment for 1 s only, then closed: the core never knew."""
    srv, backend, _, _ = busy
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    await asyncio.sleep(1.5)  # a starved PBX: the environment arrives after the old 1 s bound
    writer.write(env_block(["direction=inbound", "dialed=8002", "linkedid=1732200000.9"],
                           uniqueid="1732200000.9"))
    await answer_sync(reader, writer)
    line = await asyncio.wait_for(reader.readline(), 5)
    writer.write(b"200 result=1\n")
    await asyncio.wait_for(reader.read(), 5)  # closed
    writer.close()
    assert line.decode().strip() == "SET VARIABLE PBXREC_UNAVAILABLE capacity"
    assert backend.refusals == ["capacity"] and backend.envs[0]["agi_uniqueid"] == "1732200000.9"


def _with_t0(t0: float):  # noqa: ANN202
    import test_agi_async

    return [*test_agi_async.ARGS, f"t0={t0:.3f}"]


async def _session_with_t0(srv: AsyncAgiServer, t0: float,
                           reply: Callable[[list[str]], Awaitable[str]] | None = None) -> list[str]:
    """One session entered at ``t0``; ``reply`` answers the commands so far (default: "yes")."""
    respond = script([YES])

    async def say_yes(commands: list[str]) -> str:
        return respond(commands[-1]) or "200 result=0"

    reader, writer = await open_agi(srv.port, env_block(_with_t0(t0), uniqueid="1732200000.1"))
    commands: list[str] = []
    try:
        while line := await asyncio.wait_for(reader.readline(), 10):
            commands.append(line.decode().rstrip("\n"))
            writer.write((await (reply or say_yes)(commands) + "\n").encode())
    finally:
        writer.close()
    return commands


async def test_starved_pbx_refuses_the_dialogue_as_capacity_before_the_question() -> None:
    backend = Backend()
    srv = make_server(backend, max_sessions=5, delay_bound=3.0)
    await srv.start()
    try:
        commands = await _session_with_t0(srv, time.time() - 12.5)  # the AGI call ran 12.5 s ago
    finally:
        await srv.close()
    assert not any(is_question(c) for c in commands)  # the caller is not kept waiting for it
    assert "PBXREC_RESULT" not in results(commands)  # the snippet's fail direction
    assert results(commands)["PBXREC_UNAVAILABLE"] == "capacity"
    (resolved,) = backend.resolved
    assert resolved.decision == "capacity" and resolved.evidence["question_delay_s"] >= 12.0
    assert resolved.evidence["max_question_delay_s"] == 3.0 and backend.asked == []


async def test_prompt_pbx_asks_and_tells_the_core_when_the_question_starts() -> None:
    backend = Backend()
    srv = make_server(backend, max_sessions=5, delay_bound=3.0)
    await srv.start()
    try:
        commands = await _session_with_t0(srv, time.time() - 0.2)
    finally:
        await srv.close()
    assert any(is_question(c) for c in commands) and results(commands)["PBXREC_RESULT"] == "record"
    assert [r.decision for r in backend.resolved] == ["granted"] and len(backend.asked) == 1


async def test_caller_who_pressed_before_a_late_question_is_refused_as_capacity() -> None:
    """The 6 wrong of the 500-call run after admission: admitted in time, but the question's
    ``STREAM FILE`` began ~18 s later on the starved PBX; the caller's queued digit stopped it at
    once (not an answer), the question was asked again, and the caller hung up: ``hangup``."""
    backend = Backend()
    srv = make_server(backend, max_sessions=5, delay_bound=1.0)

    async def reply(commands: list[str]) -> str:
        if is_question(commands[-1]):
            await asyncio.sleep(1.6)  # the PBX starts the question late ...
            return "200 result=49 endpos=160"  # ... and a digit queued before it stops it at 20 ms
        return "200 result=1"

    await srv.start()
    try:
        commands = await _session_with_t0(srv, time.time(), reply)
    finally:
        await srv.close()
    assert sum(is_question(c) for c in commands) == 1  # not asked again
    assert "PBXREC_RESULT" not in results(commands) and results(commands)["PBXREC_UNAVAILABLE"] == "capacity"
    (resolved,) = backend.resolved
    assert resolved.decision == "capacity" and resolved.evidence["question_delay_s"] > 1.0
    assert resolved.evidence["digit_log"][0]["why"] == "before_question"


async def test_early_digit_in_a_later_attempt_is_not_taken_for_a_starved_pbx() -> None:
    """A retry's question starts long after ``t0`` by design (question, wait, retry prompt)."""
    backend = Backend()
    srv = make_server(backend, max_sessions=5, delay_bound=1.0)
    questions = ["200 result=0 endpos=40000", "200 result=49 endpos=160", YES]

    async def reply(commands: list[str]) -> str:
        if is_question(commands[-1]):
            return questions.pop(0)
        if commands[-1].startswith("WAIT FOR DIGIT"):
            await asyncio.sleep(1.2)  # no answer: the retry comes after the bound
            return "200 result=0"
        return "200 result=1"

    await srv.start()
    try:
        commands = await _session_with_t0(srv, time.time(), reply)
    finally:
        await srv.close()
    assert [r.decision for r in backend.resolved] == ["granted"]
    assert results(commands)["PBXREC_RESULT"] == "record"
