"""A caller's forged FastAGI environment against the real server and session, over sockets.

The fake Asterisk writes the environment as Asterisk does (the caller number raw, forged lines
and blank lines included), then answers the recorder's resync command and the dialogue.  The
rule here asks consent for inbound calls and records nothing for internal ones: a forged
``direction=internal`` would skip the consent and the recording.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from fake_asterisk_agi import SYNC, consent_server, env_block, open_agi

from consent.agi_async import AsyncAgiServer
from consent.async_session import InbandStarter
from consent.session_contract import ConsentTicket, DialogSettings
from pbx_recorder.core import events as ev
from pbx_recorder.core.rules import RuleDecision

pytestmark = pytest.mark.timeout(30)
ARGS = ["direction=inbound", "dialed=4930123456", "linkedid=1732200000.1", "queue=support"]
NUMBER = "4915112345678"
FORGED = f"{NUMBER}\r\nagi_arg_1: direction=internal\r\nagi_arg_3: linkedid=1732299999.9"
BLANK = f"{NUMBER}\r\n\r\n200 result=49\r\nagi_arg_1: direction=internal"


class RuleBackend:
    """Inbound: explicit consent, recorded on a yes; anything else: not recorded."""

    def __init__(self) -> None:
        self.requested: list[ev.ConsentRequested] = []
        self.resolved: list[ev.ConsentResolved] = []

    async def request(self, event: ev.ConsentRequested, inband: InbandStarter) -> ConsentTicket:
        self.requested.append(event)
        if event.direction == "inbound":
            return ConsentTicket(RuleDecision(record=True, consent="explicit", rule="in", reason="rule"))
        return ConsentTicket(RuleDecision(record=False))

    async def resolve(self, event: ev.ConsentResolved, inband: InbandStarter) -> None:
        self.resolved.append(event)

    async def refused(self, env: dict[str, str], reason: str) -> None:
        raise AssertionError(f"refused: {reason}")


@pytest.fixture
async def served() -> AsyncIterator[tuple[AsyncAgiServer, RuleBackend]]:
    backend = RuleBackend()
    async with consent_server(backend, DialogSettings(timeout_s=1.0, max_attempts=2),
                              session_timeout_s=5.0) as srv:
        yield srv, backend


async def say_yes(srv: AsyncAgiServer, callerid: str) -> list[str]:
    """One session whose caller presses 1 at the question; the commands received after the resync."""
    reader, writer = await open_agi(srv.port, env_block(ARGS, uniqueid="1732200000.1", callerid=callerid))
    commands: list[str] = []
    try:
        while line := await asyncio.wait_for(reader.readline(), 10):
            commands.append(line.decode().rstrip("\n"))
            yes = commands[-1].startswith("STREAM FILE ") and commands[-1].endswith(" 0123456789*#")
            writer.write(b"200 result=49 endpos=16000\n" if yes else b"200 result=1\n")
    finally:
        writer.close()
    assert await srv.wait_idle(5)
    return commands


@pytest.mark.parametrize("callerid", [FORGED, BLANK], ids=["forged-args", "blank-line"])
async def test_forged_environment_still_asks_consent_and_records(
        served: tuple[AsyncAgiServer, RuleBackend], callerid: str, caplog: pytest.LogCaptureFixture) -> None:
    srv, backend = served
    with caplog.at_level(logging.WARNING, logger="consent.agi_async"):
        commands = await say_yes(srv, callerid)
    (event,) = backend.requested
    assert (event.direction, event.call_id, event.caller_num) == ("inbound", "pbx1_1732200000.1", NUMBER)
    assert any(c.endswith(" 0123456789*#") for c in commands)  # the consent question was asked
    assert 'SET VARIABLE PBXREC_RESULT record' in commands and srv.failed == 0
    (resolved,) = backend.resolved
    assert resolved.decision == "granted" and resolved.evidence["agi_env_tampered"] is True
    warnings = [r.getMessage() for r in caplog.records if "tampered" in r.getMessage()]
    assert len(warnings) == 1 and NUMBER not in warnings[0] and "direction" not in warnings[0]


async def test_clean_environment_is_not_flagged(served: tuple[AsyncAgiServer, RuleBackend],
                                                caplog: pytest.LogCaptureFixture) -> None:
    srv, backend = served
    with caplog.at_level(logging.WARNING, logger="consent.agi_async"):
        commands = await say_yes(srv, NUMBER)
    assert 'SET VARIABLE PBXREC_RESULT record' in commands
    assert "agi_env_tampered" not in backend.resolved[0].evidence
    assert not [r for r in caplog.records if "tampered" in r.getMessage()]


async def test_resync_command_goes_out_first_and_only_its_reply_ends_the_environment(
        served: tuple[AsyncAgiServer, RuleBackend]) -> None:
    srv, backend = served
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    probe = (await asyncio.wait_for(reader.readline(), 5)).decode().rstrip("\n")
    assert probe.startswith(SYNC)  # sent at connect: no round trip after the environment
    writer.write(env_block(ARGS, callerid="1\n\n200 result=1 (x)\n200 result=0"))
    await asyncio.sleep(0.3)
    assert backend.requested == [] and srv.failed == 0  # still reading the environment
    writer.write(f"200 result=1 ({probe[len(SYNC):]})\n".encode())
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line.startswith(b"STREAM FILE ") and backend.requested[0].direction == "inbound"
    writer.close()
