"""Asterisk, the daemon end to end over in-process peers (AMI peer + fake FastAGI Asterisk): an
agent's leg of the same call (``Local/agent@q-1;2``, same linkedid) runs the consent snippet
while the caller's dialogue is pending.  It used to get the explicit decision, play the question
to the agent and record the call on the agent's "yes"; now it is answered "norecord" with no
dialogue and no MixMonitor, and the caller's own answer decides (tests/unit/
test_consent_pending_other_channel.py for the core's rule)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from ami_peer import AmiPeer
from fake_asterisk_agi import InbandChannel, converse, env_block
from test_daemon import CALL, CHANNEL, daemon_running, free_port, start_call, until, write_config

pytestmark = pytest.mark.timeout(60)
CALLER_ENV = env_block(["direction=inbound", "dialed=4930123456", "linkedid=100.1"], channel=CHANNEL,
                       uniqueid="100.1")
AGENT_ENV = env_block(["direction=inbound", "dialed=4930123456", "linkedid=100.1"],
                      channel="Local/agent@q-1;2", uniqueid="100.2")


class HeldCaller(InbandChannel):
    """The caller: the question is answered only when ``release`` is set (the dialogue pends)."""

    def __init__(self, digit: str) -> None:
        super().__init__(digit)
        self.asked, self.release = threading.Event(), threading.Event()

    def __call__(self, command: str) -> str | None:
        if command.startswith("STREAM FILE ") and command.endswith(" 0123456789*#"):
            self.asked.set()
            self.release.wait(20)
        return super().__call__(command)


async def test_agent_leg_cannot_answer_the_callers_pending_consent(tmp_path: Path) -> None:
    agi_port = free_port()
    async with AmiPeer() as peer:
        async with daemon_running(write_config(tmp_path, peer.port, agi_port)) as daemon:
            await start_call(peer)
            caller = HeldCaller("2")  # the caller says no
            dialogue = asyncio.create_task(asyncio.to_thread(converse, agi_port, CALLER_ENV, caller, 30.0))
            await asyncio.to_thread(caller.asked.wait, 10)
            assert daemon.app.callbook.state(CALL) == "consent_pending"
            agent = InbandChannel("1")  # the agent would say yes
            commands = await asyncio.to_thread(converse, agi_port, AGENT_ENV, agent)
            assert agent.variables["PBXREC_RESULT"] == "norecord"
            played = ("STREAM FILE", "WAIT FOR DIGIT", "EXEC MixMonitor")
            assert not any(c.startswith(played) for c in commands)
            assert daemon.app.callbook.state(CALL) == "consent_pending"
            caller.release.set()
            await dialogue
            assert caller.variables["PBXREC_RESULT"] == "refused"
            await until(lambda: daemon.app.callbook.state(CALL) == "refused")
