"""FreeSWITCH starts the call recording itself at answer when the decision is known before it (issue 7).

The Asterisk snippet's quick decision (consent/early_decide.py), on the outbound socket: the
snippet (dialplan/freeswitch/pbx-recorder.xml) hands the call to the recorder **before** it
answers.  When the rule decision is final at entry (pbx_recorder/core/early_start.py: ``consent:
none`` starting at answer, or not to record, and no rule on a later fact that could override
it), the core decides at once (``ConsentRequested`` with ``early=True``) and the call recording
it starts is handed to FreeSWITCH as channel variables instead of a ``uuid_record``::

    execute_on_answer_pbxrec_<n>   record_session <path> [{RECORD_STEREO=true,...}]   (n = 1..3:
                                   the file, and the two leg files of a dual rule)

plus ``PBXREC_RECORDING_ID`` / ``PBXREC_RECORDING_PATH`` / ``PBXREC_RECORDING_FILE`` /
``PBXREC_CONSENT`` and, last, ``PBXREC_RESULT``, in ONE ``api uuid_setvar_multi`` on the call's
socket once the replies to ``myevents`` / ``resume`` / ``set`` are ``+OK`` (FreeSWITCH runs an
``api`` in the socket's thread at once; each ``sendmsg set`` would wait for a tick of the parked,
unanswered channel's loop).  The snippet then answers,
and FreeSWITCH runs every ``execute_on_answer*`` variable in the answering thread itself:
the recording starts with the answer, no round trip to the recorder after it.  The daemon
adopts it: the ESL client (``EslClient.expect_start``) turns that path's ``RECORD_START`` into
``RecordingStarted``; it never sends a second ``uuid_record``.  Stop, PCI mask/unmask and
stereo are the same as for a recording the recorder started (same paths, same variables).

A failure after the core was asked (the hand-over refused or unanswered, the time limit) is
told to the core as ``failed`` (esl/consent_session.py ``EslConsentSession.fail``), after one more
try of the same hand-over: the core discards the recording it expected, so the catalog agrees with
the snippet's fail branch (nothing records: it unsets the ``execute_on_answer_pbxrec_*``).

Not final at entry, a channel already answered, or ``PBXREC_EARLY_START=no`` from the
dialplan: the session answers the call itself (``api uuid_answer``) and goes on as before (the
in-band start on this socket).  A session that fails before ``PBXREC_RESULT`` is set (it is
set in the same command as the rest) leaves nothing decided: the snippet's fail branches also
unset any ``execute_on_answer_pbxrec_*`` before they answer (a scripted recorder that died
half-way, tests/real/freeswitch/test_fs_e2e_early_start.py), so nothing records.  A recorder
restarted while such a call still rings adopts its start too (``EslClient`` resync).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from esl import commands as esc
from esl.frames import EslFrame
from esl.outbound_channel import OutboundChannel
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import constants as C
from pbx_recorder.core import events as ev
from pbx_recorder.core.consent_policy import Decision
from pbx_recorder.errors import EslError

if TYPE_CHECKING:
    from esl.consent_session import EslConsentSession

log = logging.getLogger(__name__)

ON_ANSWER_VARS = ("execute_on_answer_pbxrec_1", "execute_on_answer_pbxrec_2", "execute_on_answer_pbxrec_3")
_MULTI_VALUE = re.compile(r"[A-Za-z0-9._/:+@{}=,-]{1,400}( [A-Za-z0-9._/:+@{}=,-]{1,400}){0,3}")
OPT_OUT_VAR = "PBXREC_EARLY_START"  # "no" in the dialplan: the recorder answers and starts in band


class ExpectsStart(Protocol):
    """The inbound ESL client: adopts the ``RECORD_START`` of a file the dialplan starts."""

    def expect_start(self, command: cmds.StartRecording) -> None: ...


def may_start_early(headers: dict[str, str]) -> bool:
    """The channel is not answered yet and the dialplan did not opt out."""
    if headers.get("Answer-State", "") == "answered":
        return False
    return headers.get(f"variable_{OPT_OUT_VAR}", "").strip().lower() not in ("no", "false", "0")


def on_answer_values(command: cmds.StartRecording) -> list[str]:
    """``record_session`` lines for the ``execute_on_answer_pbxrec_<n>`` variables (checked paths
    and recording variables: the same files and options as ``uuid_record``)."""
    values = []
    for path, variables in esc.recorded_paths(command):
        arg = esc.check_path(path, command.call_id)
        if variables:
            arg += " " + esc.var_block(variables, command.call_id)
        values.append(f"record_session {arg}")
    if len(values) > len(ON_ANSWER_VARS):
        raise ValueError(f"too many files for rec={command.recording_id}")
    return values


class EarlyStarter:
    """The daemon's ``inband`` runner for the session's own channel: the call recording and the
    channel variables are collected (``set_vars``) and written by :func:`start_early` in one
    ``uuid_setvar_multi`` on the socket, ``PBXREC_RESULT`` last."""

    def __init__(self, channel: OutboundChannel, leg: str, client: ExpectsStart | None) -> None:
        self.channel, self.leg, self.client = channel, leg, client
        self.set_vars: dict[str, str] = {}
        self.started: list[str] = []  # recording ids handed to the dialplan

    def takes(self, command: cmds.Command) -> bool:
        if getattr(command, "channel", None) != self.leg or self.channel.gone:
            return False
        if isinstance(command, cmds.StartRecording):
            return not command.dialogue
        return isinstance(command, cmds.SetChannelVar)

    def _set(self, name: str, value: str, call_id: str) -> None:
        self.set_vars[name] = value  # written all at once by start_early (one api, no park tick)

    def consent(self, outcome: str, call_id: str) -> None:
        self._set("PBXREC_CONSENT", outcome, call_id)

    async def execute(self, command: cmds.Command) -> list[Any]:
        if isinstance(command, cmds.SetChannelVar):
            self._set(command.name, command.value, command.call_id)
            return []
        assert isinstance(command, cmds.StartRecording)
        values = on_answer_values(command)  # raises before anything is written
        if self.client is not None:
            self.client.expect_start(command)
        for name, value in zip(ON_ANSWER_VARS, values, strict=False):
            self._set(name, value, command.call_id)
        self.started.append(command.recording_id)
        log.info("recording handed to the dialplan (at answer) call=%s rec=%s", command.call_id,
                 command.recording_id)
        return []  # RecordingStarted comes from FreeSWITCH's RECORD_START (EslClient.expect_start)


async def start_early(session: EslConsentSession, event: ev.ConsentRequested,
                      setup: list[tuple[str, asyncio.Future[EslFrame]]]) -> str | None:
    """The decision before answer; the PBXREC_RESULT set, or None when the call keeps today's path
    (the session then answers and runs the consent dialogue / in-band start).  ``setup``: the
    session's ``myevents``/``resume``/``set`` in flight, checked with the variables."""
    decide = getattr(session.backend, "decide", None)
    decision = await decide(event) if decide is not None else None
    if decision is None:
        return None
    ch = session.channel
    client = session.routes if hasattr(session.routes, "expect_start") else None
    starter = EarlyStarter(ch, event.channel, client)  # type: ignore[arg-type]
    session.hand_over_pending(event)  # a failure from here on is told to the core (session.fail)
    ticket = session.ticket = await session.backend.request(replace(event, early=True), starter)
    final = ticket.decision
    result = "record" if final is not None and final.record else "norecord"
    if result == "record":
        if not ticket.recording_ok or not starter.started:
            raise RuntimeError("the call recording could not be handed to the dialplan")
        starter.consent(Decision.NOT_REQUIRED.value, session.call_id)
    variables = {k: v for k, v in starter.set_vars.items() if k != C.VAR_RESULT}
    variables[C.VAR_RESULT] = result  # last: FreeSWITCH sets them in order, in one command
    line = hand_over(event.channel, variables, session.call_id)  # checked before anything is sent
    await ch.settle(setup)  # myevents / resume / set: +OK before any result (else: fail closed)
    session.handover = line  # sent again once by session.fail() when its reply is missing
    await ch.api(line)  # -ERR raises: nothing decided, the snippet's fail direction
    session.result_set = result
    return result


def hand_over(uuid: str, variables: dict[str, str], call_id: str) -> str:
    """``api uuid_setvar_multi <uuid> a=1;b=2`` for the decision's variables.  FreeSWITCH runs it
    in the socket's listener thread at once; a ``sendmsg set`` would wait for the parked, still
    unanswered channel's loop (one queued application per 20 ms tick, longer on a busy host).
    Values keep to a small alphabet with single inner spaces (``record_session <path> {vars}``):
    no ``;`` (the separator), quotes or backslashes (FreeSWITCH's tokenizer would strip them)."""
    return esc.uuid_setvar_multi(uuid, variables, call_id, check=_spaced_value)


def _spaced_value(name: str, value: str, call_id: str) -> str:
    if not _MULTI_VALUE.fullmatch(value):
        raise EslError(f"refused ESL command: unsafe value for {name}", call_id=call_id or None)
    return value
