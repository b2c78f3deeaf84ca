"""FreeSWITCH: two leftovers of the ``consent: none`` failure fix.

* **Killed mid-start.**  A ``consent: none`` call recording started on the consent socket did
  not go into ``PBXREC_DIALOGUE_PATH_<n>`` (only a dialogue's recording did, and only after the
  core answered): a recorder killed between ``uuid_record start`` and the result left the
  dialplan's fail branch ("unrecorded") nothing to stop, and the file recorded the whole call.
  Now the variable is set by an ``api uuid_setvar_multi`` written on the socket just before the
  start (FreeSWITCH runs them in order: the variable exists whenever the recording does).
* **Stop exactly that recording.**  A stop whose files the client did not know went out as
  ``uuid_record <uuid> stop all`` (every recording of the channel, an admin's own too); the stop
  of a recording handed to the dialplan and never started got ``-ERR Cannot stop record
  session!``, logged as an error.  Now: the core's files, never ``all``; that answer for a start
  never confirmed is expected (INFO); for a started one it is still an error.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from consent.session_contract import ConsentTicket
from esl.client import EslClient
from esl.consent_session import DIALOGUE_PATH_VARS
from esl.normalize import EslNormalizer
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import events as ev
from pbx_recorder.errors import EslError
from tests.peers import test_esl_consent as harness
from tests.peers.esl_outbound_peer import FakeChannel
from tests.peers.test_esl_consent import Serve
from tests.peers.test_esl_consent_failure_resolves import CoreBackend
from tests.peers.test_esl_consent_none_failure_truth import EARLY_NONE, NONE_RULE, EarlyCore, _start
from tests.unit.esl_samples import A_LEG

serve = harness.serve  # the outbound server fixture of the consent harness
CALL = "pbx1_" + A_LEG
NOT_RECORDING = "uuid_record refused by FreeSWITCH: -ERR Cannot stop record session!"


def _client(lines: list[str], refuse_stop: str = "") -> EslClient:
    """An unconnected ESL client whose inbound lines are collected; a ``stop`` answers
    ``refuse_stop`` as an ``-ERR`` (as ``run_line`` raises it) when given."""
    client = EslClient(host="127.0.0.1", port=1, password="x", normalizer=EslNormalizer("pbx1"))

    async def run_line(line: str, *, call_id: str = "") -> str:
        lines.append(line)
        if refuse_stop and " stop " in line:
            raise EslError(refuse_stop, call_id=call_id)
        return "+OK"

    client.run_line = run_line  # type: ignore[method-assign]
    return client


class KilledAfterStart(CoreBackend):
    """The core starts the ``consent: none`` call recording (on the session's socket), then the
    recorder is gone: nothing else reaches the channel."""

    async def request(self, event: ev.ConsentRequested) -> ConsentTicket:
        await self._run(event)
        raise asyncio.CancelledError  # the recorder's loop dies here: no result, no stop


async def test_consent_none_start_is_guarded_before_it_runs(serve: Serve) -> None:
    client = _client([])
    backend = KilledAfterStart(client)
    server = serve(backend, timeout_s=2.0, routes=client)
    await asyncio.sleep(0.05)
    channel = FakeChannel(server.port, variables=NONE_RULE)
    await channel.run()
    start = _start(backend)
    firsts = [c.split("\n", 1)[0] for c in channel.commands]
    guard = f"api uuid_setvar_multi {A_LEG} {DIALOGUE_PATH_VARS[0]}={start.path}"
    started = f"api uuid_record {A_LEG} start {start.path}"
    assert guard in firsts and started in firsts
    assert firsts.index(guard) < firsts.index(started)  # FreeSWITCH runs it first, on this socket
    assert "PBXREC_RESULT" not in channel.vars_set  # the fail branch runs ...
    assert channel.vars_set[DIALOGUE_PATH_VARS[0]] == start.path  # ... and stops this very file


async def test_withdrawn_early_recording_never_started_is_not_an_error(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The hand-over is refused twice: the core withdraws the recording FreeSWITCH was to start at
    answer; the stop names its file and FreeSWITCH's ``-ERR Cannot stop record session!`` is the
    expected answer (nothing was recording), not an error."""
    lines: list[str] = []
    client = _client(lines, refuse_stop=NOT_RECORDING)
    backend = EarlyCore(client)
    server = serve(backend, timeout_s=2.0, routes=client)
    await asyncio.sleep(0.05)
    channel = FakeChannel(server.port, variables=EARLY_NONE, answer_state="ringing",
                          refuse_set="PBXREC_RESULT")
    with caplog.at_level(logging.INFO):
        await channel.run()
        await asyncio.sleep(0.1)
    start = _start(backend)
    assert [line for line in lines if " stop " in line] == [f"api uuid_record {A_LEG} stop {start.path}"]
    assert backend.book.snapshot(start.call_id)["consent_decision"] == "failed"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("esl.")
              and "outbound consent session" not in r.getMessage()]
    assert errors == []
    assert any("nothing to stop" in r.getMessage() for r in caplog.records)


async def test_stop_of_a_started_recording_refused_is_still_an_error() -> None:
    client = _client([], refuse_stop=NOT_RECORDING)
    stop = cmds.StopRecording(CALL, f"{CALL}_call001", A_LEG, paths=("/m/a.wav",))
    with pytest.raises(EslError):
        await client.execute(stop)


async def test_stop_unknown_to_the_client_uses_the_core_files_never_all() -> None:
    """The client forgot the recording (its table, a restart): the core's files, each by path."""
    lines: list[str] = []
    client = _client(lines)
    dual = ("/m/a.wav", "/m/a-in.wav", "/m/a-out.wav")
    await client.execute(cmds.StopRecording(CALL, f"{CALL}_call001", A_LEG, paths=dual))
    assert lines == [f"api uuid_record {A_LEG} stop {p}" for p in dual]


async def test_stop_with_no_file_known_sends_nothing(caplog: pytest.LogCaptureFixture) -> None:
    lines: list[str] = []
    client = _client(lines)
    with caplog.at_level(logging.WARNING):
        await client.execute(cmds.StopRecording(CALL, f"{CALL}_call001", A_LEG))
    assert lines == []  # not "stop all": it would stop every recording of the channel
    assert any("not sent" in r.getMessage() for r in caplog.records)


async def test_one_file_s_refused_stop_does_not_leave_the_other_files_recording() -> None:
    """A dual-leg recording whose first file's stop FreeSWITCH refuses: every file is still asked to
    stop, and the refusal is raised once at the end (found by review: the loop stopped at the first)."""
    lines: list[str] = []
    client = EslClient(host="127.0.0.1", port=1, password="x", normalizer=EslNormalizer("pbx1"))

    async def run_line(line: str, *, call_id: str = "") -> str:
        lines.append(line)
        if line.endswith("/m/a.wav"):
            raise EslError("uuid_record refused by FreeSWITCH: -ERR file busy", call_id=call_id)
        return "+OK"

    client.run_line = run_line  # type: ignore[method-assign]
    dual = ("/m/a.wav", "/m/a-in.wav", "/m/a-out.wav")
    with pytest.raises(EslError, match="file busy"):
        await client.execute(cmds.StopRecording(CALL, f"{CALL}_call001", A_LEG, paths=dual,
                                                pbx_started=True))
    assert lines == [f"api uuid_record {A_LEG} stop {p}" for p in dual]
