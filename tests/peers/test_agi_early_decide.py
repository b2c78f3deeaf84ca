"""consent/early_decide.py over a real socket with a fake Asterisk: the snippet's quick decision
before answer hands the call recording to the dialplan, or leaves the call to the consent session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fake_asterisk_agi import consent_server, env_block, open_agi

from consent.agi_async import AsyncAgiServer
from consent.async_session import InbandStarter
from consent.session_contract import ConsentTicket, DialogSettings
from pbx_recorder.core import events as ev
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.rules import RuleDecision, rules_from_dicts

pytestmark = pytest.mark.timeout(30)
RULES = rules_from_dicts([
    {"name": "none-dual", "match": {"dialed": ["8003"]},
     "action": {"record": "yes", "consent": "none", "mode": "dual"}},
    {"name": "notify", "match": {"dialed": ["8001"]},
     "action": {"record": "yes", "consent": "notify", "prompt": "recording-notice"}},
])


class CoreBackend:
    """The daemon's backend reduced to the core: commands for the session's channel go in band."""

    def __init__(self) -> None:
        self.book = CallBook("pbx1", "/mon", RULES)
        self.requested: list[ev.ConsentRequested] = []
        self.refusals: list[str] = []

    async def decide(self, event: ev.ConsentRequested) -> RuleDecision | None:
        return self.book.decision_at_entry(event)

    async def request(self, event: ev.ConsentRequested, inband: InbandStarter) -> ConsentTicket:
        self.requested.append(event)
        for command in self.book.handle(event, event.at):
            if inband.takes(command):
                await inband.execute(command)
        return ConsentTicket(self.book.decision(event.call_id))

    async def resolve(self, event: ev.ConsentResolved, inband: InbandStarter) -> None:
        raise AssertionError("no dialogue in a quick decision")

    async def refused(self, env: dict[str, str], reason: str) -> None:
        self.refusals.append(reason)


@pytest.fixture
async def server() -> AsyncIterator[tuple[AsyncAgiServer, CoreBackend]]:
    backend = CoreBackend()
    async with consent_server(backend, DialogSettings(), max_sessions=4) as srv:
        yield srv, backend


async def decide(port: int, dialed: str) -> dict[str, str]:
    """One ``.../decide`` session as Asterisk runs it on a ringing channel; the variables set."""
    reader, writer = await open_agi(port, env_block(["direction=inbound", f"dialed={dialed}",
                                                     "linkedid=1732200000.1"],
                                                    channel="PJSIP/trunk-00000001", script="decide"))
    variables: dict[str, str] = {}
    try:
        while line := await reader.readline():
            command = line.decode().rstrip("\n")
            assert command.startswith("SET VARIABLE "), command  # nothing is played or started here
            _, _, name, value = command.split(" ", 3)
            variables[name] = value.strip('"')
            writer.write(b"200 result=1\n")
    finally:
        writer.close()
    return variables


async def test_consent_none_hands_the_recording_to_the_dialplan(server: Any) -> None:
    srv, backend = server
    variables = await decide(srv.port, "8003")
    (event,) = backend.requested
    assert event.early and variables["PBXREC_RESULT"] == "record"
    assert variables["PBXREC_CONSENT"] == "not_required"
    call = backend.book.find(event.call_id)
    assert call is not None
    (rec,) = call.recordings
    assert rec.early and rec.pbx_started_at is None  # started by the snippet, adopted on its report
    path, options, command = variables["PBXREC_EARLY_ARGS"].split(",")  # MixMonitor(${PBXREC_EARLY_ARGS})
    assert path == rec.path and command.startswith("touch ")
    assert options.startswith("i(PBXREC_EARLY_MMID)") and all(f"({p})" in options for p in rec.leg_paths)
    assert variables["PBXREC_RECORDING_ID"] == rec.recording_id  # resync and the snippet's UserEvent


async def test_every_variable_is_set_once(server: Any) -> None:
    """Each SET VARIABLE is a round trip while the call rings: none is sent twice."""
    srv, _ = server
    reader, writer = await open_agi(srv.port, env_block(["direction=inbound", "dialed=8003",
                                                         "linkedid=1732200000.2"],
                                                        channel="PJSIP/trunk-00000002",
                                                        uniqueid="1732200000.2", script="decide"))
    names: list[str] = []
    try:
        while line := await reader.readline():
            names.append(line.decode().split(" ")[2])
            writer.write(b"200 result=1\n")
    finally:
        writer.close()
    assert len(names) == len(set(names)) == 6, names


async def test_a_decision_needing_consent_tells_the_core_nothing(server: Any) -> None:
    srv, backend = server
    assert await decide(srv.port, "8001") == {}
    assert backend.requested == [] and backend.book.find("pbx1_1732200000.1") is None


async def test_a_refused_quick_decision_is_not_catalogued_as_capacity() -> None:
    """Above max_sessions the quick decision is refused and the snippet goes on to the consent
    session (which is catalogued as ``capacity`` if refused in turn): the daemon says nothing."""
    from pbx_recorder.daemon import LoopConsentBackend

    class NoDaemon:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the daemon was told ({name})")

    env = {"agi_network_script": "decide", "agi_uniqueid": "1732200000.1", "agi_arg_1": "dialed=8003"}
    await LoopConsentBackend(NoDaemon()).refused(env, "capacity")  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="daemon was told"):
        await LoopConsentBackend(NoDaemon()).refused({**env, "agi_network_script": "consent"}, "capacity")  # type: ignore[arg-type]
