"""FreeSWITCH: another leg of a call whose caller's consent dialogue is pending runs the consent
socket (the same core rule as on Asterisk, tests/peers/test_consent_pending_other_channel_daemon.py).
The daemon's backend (esl/wiring.DaemonConsentBackend over the daemon's own ``consent_requested``
/ ``consent_resolved``, the real core behind them) answers it "norecord": no question is played
on that leg, and a "yes" typed there never records the call."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from esl.wiring import DaemonConsentBackend
from pbx_recorder.core import events as ev
from pbx_recorder.core.calls import CallBook
from pbx_recorder.daemon import Daemon, Summary
from tests.peers import test_esl_consent as harness
from tests.peers.test_esl_consent import CALL, Serve, apps, call
from tests.unit.test_consent_settled_result_and_stop import RULES

serve = harness.serve  # the outbound server fixture of the consent harness
CALLER_LEG = "0f1e2d3c-caller-leg"


class CoreDaemon:
    """The daemon's consent entry points over the real core; PBX commands are only collected."""

    consent_requested = Daemon.consent_requested
    consent_resolved = Daemon.consent_resolved

    def __init__(self) -> None:
        self.app = SimpleNamespace(callbook=CallBook("pbx1", "/mon", RULES))
        self.summary, self.commands = Summary(), []  # type: ignore[var-annotated]

    def clock(self) -> float:
        return 1000.0

    async def execute(self, commands: Any, origin_at: Any = None, inband: Any = None) -> bool:
        self.commands += list(commands)
        return True

    def _persist(self, call_ids: Any) -> None:
        pass


async def test_other_leg_gets_norecord_and_no_question(serve: Serve) -> None:
    daemon = CoreDaemon()
    book = daemon.app.callbook
    book.handle(ev.ConsentRequested(at=999.0, call_id=CALL, channel_id=CALLER_LEG, channel=CALLER_LEG,
                                    direction="inbound", dialed="8002"), 999.0)
    assert book.state(CALL) == "consent_pending"
    server = serve(DaemonConsentBackend(daemon))
    channel = await call(server, digits=["1"], variables={"PBXREC_DIALED": "8002"})
    assert channel.vars_set["PBXREC_RESULT"] == "norecord"
    assert apps(channel) == []  # no play_and_get_digits on the other leg
    assert book.state(CALL) == "consent_pending"  # the caller's own answer decides
    book.handle(ev.ConsentResolved(at=1001.0, call_id=CALL, channel_id=CALLER_LEG, channel=CALLER_LEG,
                                   decision="granted", evidence={"decision": "granted"}), 1001.0)
    assert book.state(CALL) == "recording"
