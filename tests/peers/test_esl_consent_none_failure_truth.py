"""FreeSWITCH: a ``consent: none`` recording started on the outbound socket, then the session fails
(its time limit passes while the result is being set): ``PBXREC_RESULT`` must match what runs
and what the catalog says.

The defect (adversarial review): the core's ``uuid_setvar_multi`` carrying ``PBXREC_RESULT=record``
did not take, then the session failed; the dialplan took its fail branch ("unrecorded") while
``uuid_record`` ran on and the catalog said recorded (the core was not even told: the session
counted a ``consent: none`` call as resolved before its result was set).  Now the session tells
the dialplan "record" with one ``api uuid_setvar_multi`` (run at once, not behind the stuck
``set``); when that cannot be done either, the core resolves the call ``failed``: the recording
is stopped (over the inbound connection) and discarded, and "unrecorded" is true.

Harness: the real pure core and an (unconnected) ESL client as in
tests/peers/test_esl_consent_failure_resolves.py; the client's inbound commands are collected.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from consent.session_contract import ConsentTicket
from esl.client import EslClient
from esl.normalize import EslNormalizer
from pbx_recorder.core import commands as cmds
from tests.peers import test_esl_consent as harness
from tests.peers.esl_outbound_peer import FakeChannel
from tests.peers.test_esl_consent import Serve
from tests.peers.test_esl_consent_failure_resolves import CoreBackend
from tests.unit.esl_samples import A_LEG

serve = harness.serve  # the outbound server fixture of the consent harness
B = TypeVar("B", bound=CoreBackend)
NONE_RULE = {"PBXREC_DIALED": "101"}  # tests/fixtures/calls/rules.yaml "extensions": consent none


class StuckResult(FakeChannel):
    """The ``set PBXREC_RESULT=...`` application never completes (a stuck channel): the session
    waits for it until its time limit."""

    def _sendmsg(self, h: dict[str, str], writer: asyncio.StreamWriter) -> None:
        if h.get("execute-app-name") == "set" and h.get("execute-app-arg", "").startswith("PBXREC_RESULT="):
            self.apps.append(("set", h["execute-app-arg"]))  # queued, never run: not in vars_set
            return
        super()._sendmsg(h, writer)



def core_with_client(kind: type[B]) -> tuple[B, list[str]]:
    """The core behind ``kind`` with an unconnected ESL client whose inbound lines are collected
    (returned) and answered ``+OK``."""
    client = EslClient(host="127.0.0.1", port=1, password="x", normalizer=EslNormalizer("pbx1"))
    inbound: list[str] = []

    async def run_line(line: str, *, call_id: str = "") -> str:
        inbound.append(line)
        return "+OK"

    client.run_line = run_line  # type: ignore[method-assign]
    return kind(client), inbound


async def stuck_call(serve: Serve, refuse_set: str) -> tuple[FakeChannel, CoreBackend, list[str]]:
    """A ``consent: none`` call whose result set gets stuck; ``uuid_setvar_multi`` batches
    naming ``refuse_set`` are answered ``-ERR``.  Returns the channel, the backend and the lines
    the ESL client sent over its inbound connection."""
    backend, inbound = core_with_client(CoreBackend)
    client = backend.client
    server = serve(backend, timeout_s=0.5, routes=client)
    await asyncio.sleep(0.05)  # the server task binds its asyncio.Server
    channel = StuckResult(server.port, variables=NONE_RULE, refuse_set=refuse_set)
    await channel.run()
    await asyncio.sleep(0.1)  # the server's failure handling ends after the socket closed
    return channel, backend, inbound


def _start(backend: CoreBackend) -> cmds.StartRecording:
    (start,) = [c for c in backend.commands if isinstance(c, cmds.StartRecording)]
    assert not start.dialogue and start.kind == "call"
    return start


async def test_result_lost_then_confirmed_in_one_api_command(serve: Serve) -> None:
    """The core's batch is refused, the ``set`` is stuck; the session's ``uuid_setvar_multi``
    with the result takes: the dialplan hears "record", the recording runs, the catalog agrees."""
    channel, backend, inbound = await stuck_call(serve, refuse_set="PBXREC_RECORDING_ID")
    start = _start(backend)
    firsts = [c.split("\n", 1)[0] for c in channel.commands]
    assert f"api uuid_record {A_LEG} start {start.path}" in firsts
    assert channel.vars_set["PBXREC_RESULT"] == "record"  # the snippet's "decided" branch: recorded
    assert channel.vars_set["PBXREC_CONSENT"] == "not_required"
    assert not any(" stop " in line for line in firsts + inbound)
    assert backend.resolved == []  # nothing failed for the call
    assert backend.book.snapshot(start.call_id)["state"] == "recording"


async def test_result_lost_and_unconfirmable_stops_and_discards(serve: Serve) -> None:
    """The reviewer's case: no ``PBXREC_RESULT`` reaches the channel (the fail branch:
    "unrecorded"): the recording must not run on, and the catalog says not recorded."""
    channel, backend, inbound = await stuck_call(serve, refuse_set="PBXREC_RESULT")
    start = _start(backend)
    assert "PBXREC_RESULT" not in channel.vars_set  # the dialplan takes its fail direction ...
    # ... and the recording is stopped: over the inbound connection (the socket is failing)
    assert any(line.startswith(f"bgapi uuid_record {A_LEG} stop {start.path}") or
               line.startswith(f"api uuid_record {A_LEG} stop {start.path}") for line in inbound), inbound
    (failed,) = backend.resolved
    assert failed.decision == "failed" and "time limit" in failed.evidence["failure"]
    (discard,) = [c for c in backend.commands if isinstance(c, cmds.DiscardRecording)]
    assert discard.recording_id == start.recording_id and discard.reason == "consent_failed"
    settled = backend.book.snapshot(start.call_id)
    assert settled["state"] == "not_recorded" and settled["consent_decision"] == "failed"
    assert channel.vars_set["PBXREC_SOCKET"] == "failed:timeout"


async def test_result_set_by_the_core_then_a_failure_stays_recorded(serve: Serve) -> None:
    """The core's batch set ``PBXREC_RESULT=record`` (FreeSWITCH said +OK), then the session
    failed: the dialplan hears "record" and the call is recorded; nothing is stopped or resolved."""
    channel, backend, inbound = await stuck_call(serve, refuse_set="")
    start = _start(backend)
    multis = [c.split("\n", 1)[0] for c in channel.commands
              if c.startswith("api uuid_setvar_multi ") and "PBXREC_RESULT=" in c]
    assert len(multis) == 1 and "PBXREC_RESULT=record" in multis[0]  # the core's, not sent again
    assert channel.vars_set["PBXREC_RESULT"] == "record"
    assert not any(" stop " in line for line in inbound) and backend.resolved == []
    assert backend.book.snapshot(start.call_id)["state"] == "recording"


# -- the decision before answer (esl/early_start.py) -------------------------------------------

_PBX = (cmds.StartRecording, cmds.StopRecording, cmds.MuteRecording, cmds.SetChannelVar)
EARLY_NONE = {**NONE_RULE, "PBXREC_QUEUE": "sales"}  # a queue given: no rule on a later fact overrides


class EarlyCore(CoreBackend):
    """The core decides before answer; the call's commands go to the session's EarlyStarter."""

    async def decide(self, event: object) -> object:
        return self.book.decision_at_entry(event)  # type: ignore[arg-type]

    async def request(self, event: object, inband: object = None) -> ConsentTicket:  # type: ignore[override]
        out = self.book.handle(event, 1000.0)
        self.commands += out
        for command in out:
            if isinstance(command, _PBX):
                runner = inband if inband is not None and inband.takes(command) else self.client  # type: ignore[attr-defined]
                await runner.execute(command)
        return ConsentTicket(self.book.decision(event.call_id))  # type: ignore[attr-defined]


class RefusedOnce(str):
    """A ``refuse_set`` that refuses the first batch naming it, and none after."""

    used = False

    def __eq__(self, other: object) -> bool:
        if other == str(self) and not RefusedOnce.used:
            RefusedOnce.used = True
            return True
        return False

    __hash__ = str.__hash__


async def early_call(serve: Serve, refuse_set: str) -> tuple[FakeChannel, EarlyCore, list[str]]:
    backend, inbound = core_with_client(EarlyCore)
    client = backend.client
    server = serve(backend, timeout_s=2.0, routes=client)
    await asyncio.sleep(0.05)
    channel = FakeChannel(server.port, variables=EARLY_NONE, answer_state="ringing", refuse_set=refuse_set)
    await channel.run()
    await asyncio.sleep(0.1)
    return channel, backend, inbound


async def test_early_hand_over_refused_is_discarded_by_the_core(serve: Serve) -> None:
    """The hand-over (``uuid_setvar_multi`` with ``execute_on_answer_pbxrec_1`` and the result) is
    refused, and again: the snippet's fail branch (nothing records); the catalog agrees (it used
    to keep a recording it expected at answer, never told of the failure)."""
    channel, backend, inbound = await early_call(serve, refuse_set="PBXREC_RESULT")
    start = _start(backend)
    handovers = [c for c in channel.commands
                 if c.startswith("api uuid_setvar_multi ") and "execute_on_answer_pbxrec_1=" in c]
    assert len(handovers) == 2 and "execute_on_answer_pbxrec_1=record_session" in handovers[1]
    assert "PBXREC_RESULT" not in channel.vars_set and "execute_on_answer_pbxrec_1" not in channel.vars_set
    (failed,) = backend.resolved
    assert failed.decision == "failed"
    (discard,) = [c for c in backend.commands if isinstance(c, cmds.DiscardRecording)]
    assert discard.recording_id == start.recording_id
    settled = backend.book.snapshot(start.call_id)
    assert settled["state"] == "not_recorded" and settled["consent_decision"] == "failed"
    assert not any(c.startswith("api uuid_answer") for c in channel.commands)  # the snippet answers


async def test_early_hand_over_sent_again_once_then_recorded(serve: Serve) -> None:
    """The first hand-over is refused, the same line sent again takes: "record" with the files to
    start at answer; the core keeps the recording it expects."""
    RefusedOnce.used = False
    channel, backend, _ = await early_call(serve, refuse_set=RefusedOnce("PBXREC_RESULT"))
    start = _start(backend)
    assert channel.vars_set["PBXREC_RESULT"] == "record"
    assert channel.vars_set["execute_on_answer_pbxrec_1"].startswith(f"record_session {start.path}")
    assert backend.resolved == [] and backend.book.snapshot(start.call_id)["state"] == "recording"
