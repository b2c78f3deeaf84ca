"""FreeSWITCH: a command whose reply never came still runs after the session gave up on it; a
failed session must not leave the dialplan a ``PBXREC_RESULT`` the core no longer stands by.

The review of the outbound socket for late replies: replies are matched in order and a reply
that timed out keeps its place (esl/outbound_channel.py), so no late reply answers a later
command.  But the command itself still runs: FreeSWITCH runs this socket's ``api`` commands in
order in the socket's thread, and the channel's queued applications in order once the channel
moves again.  A ``set PBXREC_RESULT=record`` stuck in the queue (or a hand-over ``api`` stuck in
the socket's thread) ran after the core had been told ``failed`` and had stopped and discarded
the recording: the dialplan said "record" (or answered and started ``record_session``) for a
call the catalog says is not recorded.  Now the failed session empties ``PBXREC_RESULT`` behind
every command it wrote, both ways (esl/consent_session.py ``_withdraw_result``).

The fake FreeSWITCH below gets stuck as the real one would and, once the recorder has closed the
socket, runs what waited, in FreeSWITCH's order (``unstick``).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from esl.frames import parse_head, render_frame
from pbx_recorder.core import commands as cmds
from tests.peers import test_esl_consent as harness
from tests.peers.esl_outbound_peer import FakeChannel
from tests.peers.test_esl_consent import Serve
from tests.peers.test_esl_consent_failure_resolves import CoreBackend
from tests.peers.test_esl_consent_none_failure_truth import (
    EARLY_NONE,
    NONE_RULE,
    EarlyCore,
    _start,
    core_with_client,
)

serve = harness.serve


class LateChannel(FakeChannel):
    """``stuck="app"``: the first ``set PBXREC_RESULT=record`` application never completes while
    the recorder waits, and every application queued after it waits behind it (``sendmsg`` is
    still answered ``+OK``; ``api`` commands run at once).  ``stuck="socket"``: the first
    ``api uuid_setvar_multi`` naming ``PBXREC_RESULT=record`` blocks the socket's thread: no
    reply to it or to anything after it.  ``refuse_record``: an ``api`` setting
    ``PBXREC_RESULT=record`` is refused (the session's one more try cannot confirm it)."""

    def __init__(self, *args: object, stuck: str, refuse_record: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stuck, self.refuse_record = stuck, refuse_record
        self.held_apps: list[tuple[str, str]] = []  # the application queue, stuck
        self.backlog: list[str] = []  # the socket's commands, not read by a stuck thread
        self._stalled = False

    def _answer(self, block: str, writer: asyncio.StreamWriter) -> None:
        first = block.split("\n", 1)[0]
        sets_record = first.startswith("api uuid_setvar_multi ") and "PBXREC_RESULT=record" in first
        if self._stalled or (self.stuck == "socket" and sets_record):
            self._stalled = True
            self.backlog.append(block)
            return
        if sets_record and self.refuse_record:
            writer.write(_api_reply("-ERR refused\n"))
            return
        super()._answer(block, writer)

    def _sendmsg(self, h: dict[str, str], writer: asyncio.StreamWriter) -> None:
        app, arg = h.get("execute-app-name", ""), h.get("execute-app-arg", "")
        if self.held_apps or (self.stuck == "app" and app == "set" and arg == "PBXREC_RESULT=record"):
            self.apps.append((app, arg))
            self.held_apps.append((app, arg))  # +OK was written: queued, not run
            return
        super()._sendmsg(h, writer)

    def unstick(self) -> dict[str, str]:
        """The channel variables once FreeSWITCH ran what waited: the socket's commands in order
        (an ``api`` at once, a ``sendmsg``'s application queued), then the application queue."""
        queue = list(self.held_apps)
        for block in self.backlog:
            first = block.split("\n", 1)[0]
            if first.startswith("api uuid_setvar_multi "):
                for pair in first.split(" ", 3)[3].split(";"):
                    self.set_variable(*pair.partition("=")[::2])
            elif first == "sendmsg":
                h = parse_head(block)
                queue.append((h.get("execute-app-name", ""), h.get("execute-app-arg", "")))
        self.backlog, self.held_apps = [], []
        for app, arg in queue:
            if app == "set":
                self.set_variable(*arg.partition("=")[::2])
        return self.vars_set


def _api_reply(body: str) -> bytes:
    return render_frame([("Content-Type", "api/response")], body.encode())


async def _run(serve: Serve, backend: CoreBackend, channel_args: dict[str, object],
               reply_timeout: float = 0.3) -> LateChannel:
    server = serve(backend, timeout_s=1.0, routes=backend.client, reply_timeout=reply_timeout)
    await asyncio.sleep(0.05)  # the server task binds its asyncio.Server
    channel = LateChannel(server.port, **channel_args)  # type: ignore[arg-type]
    await channel.run()
    await asyncio.sleep(0.1)  # the server's failure handling ends after the socket closed
    return channel


def _discarded(backend: CoreBackend) -> cmds.StartRecording:
    start = _start(backend)
    (failed,) = backend.resolved
    assert failed.decision == "failed"
    (discard,) = [c for c in backend.commands if isinstance(c, cmds.DiscardRecording)]
    assert discard.recording_id == start.recording_id
    assert backend.book.snapshot(start.call_id)["state"] == "not_recorded"
    return start


async def test_a_stuck_result_set_that_runs_late_is_emptied_behind_it(serve: Serve) -> None:
    """``consent: none``: the core's batch is refused, the session's ``set PBXREC_RESULT=record``
    is stuck in the channel's queue, the time limit passes, the one more try is refused: the core
    stops and discards.  When the channel moves again the stuck ``set`` runs, and the empty one
    written behind it runs after: the snippet's fail direction, as the catalog says."""
    backend, inbound = core_with_client(CoreBackend)
    channel = await _run(serve, backend, {"variables": NONE_RULE, "stuck": "app", "refuse_record": True})
    start = _discarded(backend)
    assert any(f"uuid_record {channel.uuid} stop {start.path}" in line for line in inbound), inbound
    assert ("set", "PBXREC_RESULT=record") in channel.held_apps  # it did not run while the session lived
    late = channel.unstick()
    assert "PBXREC_RESULT" not in late and late["PBXREC_SOCKET"] == "failed:timeout"


async def test_a_hand_over_stuck_in_the_socket_is_emptied_behind_it(serve: Serve) -> None:
    """Before answer: the hand-over (``execute_on_answer_pbxrec_1`` and ``PBXREC_RESULT=record`` in
    one ``api``) blocks the socket's thread; the session gives up and the core discards the
    recording it expected at answer.  The hand-over runs late, then the session's empty result:
    the snippet takes its fail branch (which unsets ``execute_on_answer_pbxrec_*``), nothing
    records."""
    backend, _ = core_with_client(EarlyCore)
    channel = await _run(serve, backend, {"variables": EARLY_NONE, "answer_state": "ringing",
                                          "stuck": "socket"})
    start = _discarded(backend)
    late = channel.unstick()
    assert late["execute_on_answer_pbxrec_1"].startswith(f"record_session {start.path}")  # it did run
    assert "PBXREC_RESULT" not in late


async def test_a_stuck_socket_holds_the_failing_session_one_reply_timeout_not_one_per_command(
        serve: Serve) -> None:
    """README "Still open" (session 36): a session failing at its time limit on a socket whose
    thread is stuck waited a reply timeout for each of its last commands (the one more try, the
    two lines withdrawing the result, ``PBXREC_SOCKET``): four here, 4 s with a 1 s reply timeout,
    while the call sat in the snippet.  Now they share one (``OutboundChannel.wind_down``); every
    line is still written, in order, and runs when the socket moves again."""
    backend, _ = core_with_client(EarlyCore)
    loop = asyncio.get_running_loop()
    began = loop.time()
    channel = await _run(serve, backend, {"variables": EARLY_NONE, "answer_state": "ringing",
                                          "stuck": "socket"}, reply_timeout=1.0)
    took = loop.time() - began
    # the time limit (1 s), then at most one reply timeout (1 s), against 4 s before
    assert took < 3.2, took
    _discarded(backend)
    firsts = [block.split("\n", 1)[0] for block in channel.backlog]
    assert any(f.startswith("api uuid_setvar_multi ") and f.endswith("PBXREC_RESULT=")
               for f in firsts), firsts
    sets = [parse_head(b).get("execute-app-arg", "") for b in channel.backlog if b.startswith("sendmsg")]
    assert sets[-2:] == ["PBXREC_RESULT=", "PBXREC_SOCKET=failed:timeout"], sets
    assert "PBXREC_RESULT" not in channel.unstick()


async def test_a_confirmed_consent_none_result_is_not_withdrawn(serve: Serve) -> None:
    """The core's "record" reached the channel, then the session's own ``set`` got stuck and the
    time limit passed: the call is lawfully recorded and stays so (nothing is emptied)."""
    backend, inbound = core_with_client(CoreBackend)
    channel = await _run(serve, backend, {"variables": NONE_RULE, "stuck": "app"})
    start = _start(backend)
    assert backend.resolved == [] and backend.book.snapshot(start.call_id)["state"] == "recording"
    assert not any(" stop " in line for line in inbound)
    assert channel.unstick()["PBXREC_RESULT"] == "record"
    assert not any(c.endswith("PBXREC_RESULT=") or "PBXREC_RESULT=\n" in c for c in channel.commands)


class SlowCore(CoreBackend):
    """The core's answer fails just before the session's time limit, and telling it ``failed``
    takes longer than what is left of the limit."""

    async def request(self, event: object) -> object:  # type: ignore[override]
        await asyncio.sleep(0.7)
        raise RuntimeError("the core did not answer")

    async def resolve(self, event: object) -> bool:  # type: ignore[override]
        await asyncio.sleep(0.6)
        return await super().resolve(event)  # type: ignore[arg-type]


async def test_a_failure_at_the_time_limit_still_tells_the_core_and_withdraws(
        serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    """The time limit cancelled the session while it was telling the core: the server's own call
    used to find it resolved and return at once (the core never told, nothing withdrawn).  The
    core took longer than a reply timeout: the socket answers, so its replies are still waited
    for (winding down cuts the waits only once one has timed out)."""
    backend, _ = core_with_client(SlowCore)
    with caplog.at_level(logging.WARNING):
        channel = await _run(serve, backend, {"variables": NONE_RULE, "stuck": ""})
    (failed,) = backend.resolved
    assert failed.decision == "failed"
    assert any("PBXREC_RESULT=" in c and "PBXREC_RESULT=record" not in c for c in channel.commands)
    assert "not confirmed" not in caplog.text
