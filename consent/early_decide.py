"""The snippet's quick decision before answer: ``AGI(agi://HOST:PORT/decide,...)`` (issue 10).

Called by dialplan/asterisk/pbx-recorder.conf on a channel that is not answered yet, with the
same arguments as the consent session.  When the rule decision is final at entry
(pbx_recorder/core/early_start.py: ``consent: none`` starting at answer, or not to record, and no
rule on a later fact that could override it), the core decides now (``ConsentRequested`` with
``early=True``) and the call recording the core starts is handed to the dialplan as channel
variables instead of being started here::

    PBXREC_EARLY_ARGS     MixMonitor's arguments: the file the core chose, the options (r()/t()
                          legs, D for stereo) with i(PBXREC_EARLY_MMID), the post-command that
                          marks the files closed; checked as for the AMI action (no commas inside)
    PBXREC_RECORDING_ID   our recording id (set by the core for resync), echoed in the UserEvent

plus ``PBXREC_RESULT`` / ``PBXREC_CONSENT`` as from the consent session.  The snippet answers,
runs ``MixMonitor(${PBXREC_EARLY_ARGS})`` at once and reports it with
``UserEvent(PbxrecEarlyStart,PbxrecRec: ...,PbxrecMMID: ...)``; the daemon adopts that
recording (ami/normalize.py ``on_user_event`` -> ``RecordingStarted``), it never starts a
second one.  Every variable is one AGI round trip while the call rings (about 90 ms each on a
2-core host at 100 %): one variable carries all of MixMonitor's arguments, and nothing is set
twice.

When the decision is not final at entry, nothing is told to the core and nothing is set: the
snippet answers and runs the consent session as before.  When the recorder cannot be reached,
the snippet goes on the same way and that session's failure takes the fail direction as before.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ami.actions import mmid_variable_of, start_recording
from consent.agi_dialplan import DECIDE_SCRIPT
from consent.async_session import InbandStarter
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import constants as C
from pbx_recorder.core import events as ev
from pbx_recorder.core.consent_policy import Decision

if TYPE_CHECKING:
    from consent.async_session import AsyncConsentSession

log = logging.getLogger(__name__)

__all__ = ["DECIDE_SCRIPT", "VAR_ARGS", "EarlyStarter", "decide"]

EARLY_MMID = C.VAR_EARLY_MMID  # the snippet clears it on entry (a stop may read it: ami/actions.py)
VAR_ARGS = "PBXREC_EARLY_ARGS"


class EarlyStarter(InbandStarter):
    """Like :class:`InbandStarter`, but the call recording is handed to the dialplan."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_vars: dict[str, str] = {}  # what the core set on the channel in band

    async def _execute(self, command: cmds.Command) -> list[Any]:
        if isinstance(command, cmds.SetChannelVar):
            self.set_vars[command.name] = command.value
        if not isinstance(command, cmds.StartRecording) or command.dialogue:
            return await super()._execute(command)
        action = start_recording(command)  # the same checked File / Options / Command as over AMI
        own = f"i({mmid_variable_of(command)})"
        if not action["Options"].startswith(own):
            raise ValueError(f"unexpected MixMonitor options for rec={command.recording_id}")
        arguments = [action["File"], f"i({EARLY_MMID})" + action["Options"][len(own):], action["Command"]]
        if any("," in a for a in arguments):  # the dialplan splits PBXREC_EARLY_ARGS at commas
            raise ValueError(f"a comma in MixMonitor's arguments for rec={command.recording_id}")
        await self.conn.execute("SET VARIABLE", VAR_ARGS, ",".join(arguments))
        log.info("recording handed to the dialplan call=%s rec=%s", command.call_id, command.recording_id)
        return []  # RecordingStarted comes from the snippet's UserEvent


async def decide(session: AsyncConsentSession, event: ev.ConsentRequested) -> str:
    """The quick decision; returns the PBXREC_RESULT set ("" when the call keeps today's path)."""
    decision = await session.backend.decide(event)
    if decision is None:
        log.debug("decision not final at entry call=%s: consent session follows", session.call_id)
        return ""
    inband = EarlyStarter(session.conn, event.channel, event.channel_id, session.clock)
    ticket = await session.backend.request(replace(event, early=True), inband)
    final = ticket.decision
    if final is None or not final.record:
        return await session.set_result("norecord")
    if not ticket.recording_ok:
        raise RuntimeError("the call recording could not be handed to the dialplan")
    await session.set_variable("PBXREC_CONSENT", Decision.NOT_REQUIRED.value)
    if inband.result_set == "record":  # the core set it in band already (Asterisk confirmed it)
        return "record"
    return await session.set_result("record")
