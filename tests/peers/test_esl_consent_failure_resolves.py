"""A FreeSWITCH consent dialogue that fails after the core started its recording is resolved as
``failed``, as on Asterisk (esl/consent_session.py ``EslConsentSession.fail``): the core stops
the dialogue's recording (``uuid_record <leg> stop <file>``) and discards it with evidence
``failed``, instead of letting it record the whole call and blaming the caller's ``hangup``.

The backend here is the real pure core (a :class:`CallBook` over the transcript rules) whose
PBX commands go out through an (unconnected) :class:`EslClient` routed on the session's socket,
as the daemon does; the channel is the fake FreeSWITCH channel of tests/peers/esl_outbound_peer.py.
"""

from __future__ import annotations

import asyncio
import xml.dom.minidom
from pathlib import Path

from consent.session_contract import ConsentTicket
from esl.client import EslClient
from esl.consent_session import DIALOGUE_PATH_VARS
from esl.normalize import EslNormalizer
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import events as ev
from pbx_recorder.core.rules import RuleDecision
from tests.peers import test_esl_consent as harness
from tests.peers.esl_outbound_peer import FakeChannel
from tests.peers.test_esl_consent import Backend, Serve, call
from tests.unit.calls_transcript import new_book
from tests.unit.esl_samples import A_LEG

serve = harness.serve  # the outbound server fixture of the consent harness
REPO = Path(__file__).resolve().parents[2]
SUPPORT = {"PBXREC_DIALED": "800200"}  # rules.yaml support-explicit: explicit consent, prompt consent-support
_PBX = (cmds.StartRecording, cmds.StopRecording, cmds.MuteRecording, cmds.SetChannelVar)


class CoreBackend:
    """The daemon's part, in process: the core decides, PBX commands go out through the ESL client
    (on the session's own socket while it is routed), the rest is kept to look at."""

    def __init__(self, client: EslClient) -> None:
        self.book, self.client = new_book(), client
        self.resolved: list[ev.ConsentResolved] = []
        self.commands: list[cmds.Command] = []

    async def _run(self, event: object) -> bool:
        out = self.book.handle(event, 1000.0)
        self.commands += out
        for command in out:
            if isinstance(command, _PBX):
                await self.client.execute(command)
        return True

    async def request(self, event: ev.ConsentRequested) -> ConsentTicket:
        ok = await self._run(event)
        return ConsentTicket(self.book.decision(event.call_id), recording_ok=ok)

    async def resolve(self, event: ev.ConsentResolved) -> bool:
        self.resolved.append(event)
        return await self._run(event)

    def existing_result(self, call_id: str) -> str:
        return ""


def _client() -> EslClient:
    return EslClient(host="127.0.0.1", port=1, password="x", normalizer=EslNormalizer("pbx1"))


def _prompts(tmp_path: Path, drop: str) -> None:
    """The harness's prompts plus the support rule's question; ``drop`` is deleted."""
    for lang in (tmp_path / "prompts").iterdir():
        (lang / "consent-support.wav").write_bytes(b"RIFF")
        (lang / f"{drop}.wav").unlink()


async def test_missing_prompt_midway_resolves_failed_and_stops_the_dialogue_recording(
    serve: Serve, tmp_path: Path
) -> None:
    """The reviewer's case: the caller presses an invalid digit, the retry prompt is missing."""
    client = _client()
    backend = CoreBackend(client)
    server = serve(backend, routes=client)
    _prompts(tmp_path, "consent-retry")
    channel = await call(server, digits=["7"], variables=SUPPORT)

    (start,) = [c for c in backend.commands if isinstance(c, cmds.StartRecording)]
    assert start.dialogue and start.kind == "consent"
    (failed,) = backend.resolved
    assert failed.decision == "failed" and "consent-retry" in failed.evidence["failure"]
    firsts = [c.split("\n", 1)[0] for c in channel.commands]
    assert f"api uuid_record {A_LEG} start {start.path}" in firsts
    assert f"api uuid_record {A_LEG} stop {start.path}" in firsts  # on the call's own socket, at once
    (discard,) = [c for c in backend.commands if isinstance(c, cmds.DiscardRecording)]
    assert discard.recording_id == start.recording_id and discard.reason == "consent_failed"
    settled = backend.book.snapshot(failed.call_id)
    assert settled["consent_decision"] == "failed" and settled["consent_evidence"]["decision"] == "failed"
    assert channel.vars_set["PBXREC_SOCKET"] == "failed:error" and "PBXREC_RESULT" not in channel.vars_set
    assert channel.vars_set[DIALOGUE_PATH_VARS[0]] == start.path  # the snippet's fail direction stops it too
    assert server.failed == 1


async def test_time_limit_after_the_request_resolves_failed(serve: Serve) -> None:
    """``wait_for`` cancels the session: the server tells the core (the session cannot)."""

    class Stuck(Backend):
        async def request(self, event: ev.ConsentRequested) -> ConsentTicket:
            self.requests.append(event)  # the core started the dialogue's recording, then ...
            await asyncio.sleep(30)
            raise AssertionError("not reached")

    backend = Stuck(None)
    server = serve(backend, timeout_s=0.3)
    channel = await call(server)
    (failed,) = backend.resolved
    assert failed.decision == "failed" and "time limit" in failed.evidence["failure"]
    assert failed.call_id == backend.requests[0].call_id and failed.channel == A_LEG
    assert channel.vars_set["PBXREC_SOCKET"] == "failed:timeout"


async def test_outcome_given_then_failure_is_not_resolved_twice(serve: Serve) -> None:
    """A "yes" whose call recording cannot start: resolved ``granted`` once, no ``failed`` after."""

    class NoStart(Backend):
        async def resolve(self, event: ev.ConsentResolved) -> bool:
            self.resolved.append(event)
            return False

    backend = NoStart(RuleDecision(record=True, consent="explicit"))
    channel = await call(serve(backend), digits=["1"])
    assert [r.decision for r in backend.resolved] == ["granted"]
    assert channel.vars_set["PBXREC_SOCKET"] == "failed:error"


async def test_caller_hangup_is_not_a_failure(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=True, consent="explicit"))
    await call(serve(backend), hangup_at=1)
    assert [r.decision for r in backend.resolved] == ["hangup"]


async def test_nothing_is_resolved_when_the_core_was_never_asked(serve: Serve) -> None:
    backend = Backend(RuleDecision(record=True, consent="explicit"))
    server = serve(backend)
    await asyncio.sleep(0.05)
    fake = FakeChannel(server.port, uuid="bad uuid!")  # refused before the request
    await fake.run()
    await asyncio.sleep(0.05)
    assert backend.requests == [] and backend.resolved == [] and server.failed == 1


def test_dialplan_fail_direction_stops_the_dialogue_recording() -> None:
    """The snippet unsets the variables at the hand-off and, when no decision came back, stops
    every file named in them before its fail extensions (Asterisk: StopMixMonitor)."""
    doc = xml.dom.minidom.parse(str(REPO / "dialplan" / "freeswitch" / "pbx-recorder.xml"))
    extensions = doc.getElementsByTagName("extension")
    names = [e.getAttribute("name") for e in extensions]
    handoff = extensions[names.index("pbx-recorder")]
    unset = [a.getAttribute("data") for a in handoff.getElementsByTagName("action")
             if a.getAttribute("application") == "unset"]
    assert set(DIALOGUE_PATH_VARS) <= set(unset)
    stop = extensions[names.index("pbx-recorder-stop-dialogue")]
    assert stop.getAttribute("continue") == "true"
    actions = [(a.getAttribute("application"), a.getAttribute("data"))
               for a in stop.getElementsByTagName("action")]
    assert actions == [("stop_record_session", f"${{{v}}}") for v in DIALOGUE_PATH_VARS]
    assert names.index("pbx-recorder-decided") < names.index("pbx-recorder-stop-dialogue") \
        < names.index("pbx-recorder-unavailable-hangup") < names.index("pbx-recorder-unavailable")
