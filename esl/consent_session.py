"""The consent dialogue of one FreeSWITCH call, on the outbound socket (CONTRACT.md section 3).

The same decisions and evidence as the Asterisk FastAGI session (consent/async_session.py): the
pure :class:`ConsentDialog` decides, the core (through ``backend``) evaluates the rules and
starts any recording the rule needs before the dialogue; this module plays prompts, collects
the digit and tells the dialplan through channel variables.  Differences, FreeSWITCH-side:

* the caller's data comes from the ``connect`` reply (``Caller-Caller-ID-Number``,
  ``variable_PBXREC_*``), sanitized and bounded; never from command arguments;
* a refusal is routed here: ``transfer <exten> XML <context>`` for a rule ``goto``, or the
  goodbye prompt and a hang-up; ``continue`` sets ``PBXREC_RESULT=norecord``;
* any failure sets ``PBXREC_SOCKET=failed:<reason>`` and leaves ``PBXREC_RESULT`` empty: the
  dialplan takes its fail direction (fail closed); so does a "yes" whose call recording then
  cannot start (the catalog says not recorded and why);
* a failure of ours after the core was asked (a prompt missing, an ``EslError``, the session's
  time limit: :meth:`EslConsentSession.fail`) is resolved as ``failed``, as on Asterisk: the
  core stops the dialogue's recording and discards it with that evidence, never leaving it to
  run on and be blamed on the caller's ``hangup``;
* after a ``consent: none`` start the call is lawfully recorded: a later failure (an error, the
  time limit) leaves the call recorded when ``PBXREC_RESULT=record`` reached the channel (the
  core's ``uuid_setvar_multi``, or one more, run at once); otherwise the core is told ``failed``
  and stops (over the inbound connection) and discards the recording: the fail branch's
  "unrecorded" is then true;
* the files of a recording started before the result (the dialogue's, or a ``consent: none``
  call recording) are kept in ``PBXREC_DIALOGUE_PATH_<n>`` (n = 1..3; Asterisk's
  ``PBXREC_DIALOGUE_MMID``), each set by an ``api uuid_setvar_multi`` written on this socket
  just before its ``uuid_record start`` (FreeSWITCH runs them in order): the snippet's fail
  direction stops them with ``stop_record_session``, even with the recorder killed mid-start;
* a failed session (the core told ``failed``) empties ``PBXREC_RESULT`` behind every command it
  wrote, by ``api`` and by a queued ``set`` (:meth:`EslConsentSession._withdraw_result`): a
  command whose reply never came still runs, in order, after the session gave up on it;
* a digit is timed against its question from FreeSWITCH's own ``DTMF`` and ``CHANNEL_EXECUTE``
  timestamps (esl/outbound_channel.py): one pressed before the question (``min_answer_s``) does
  not count, and the evidence's ``digit_log`` times every digit, as on Asterisk.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from consent.dialogue_runner import ChannelGone, run_dialogue
from consent.session_contract import (
    DIRECTIONS,
    GOODBYE_PROMPT,
    LANGUAGE,
    PROMPT_FOR,
    RETRY_PROMPT,
    ConsentTicket,
    DialogSettings,
    PromptPaths,
    VipLookup,
)
from esl import commands as esc
from esl.consent_connect import answer_call, answered, audio_file, dialplan_input
from esl.consent_ports import AsyncConsentBackend, CommandRoutes
from esl.early_start import may_start_early, start_early
from esl.normalize import EslNormalizer
from esl.outbound_channel import OutboundChannel
from pbx_recorder.core import constants as C
from pbx_recorder.core import events as ev
from pbx_recorder.core.consent_policy import (
    ConsentDialog,
    Decision,
    Done,
    allows_recording,
)
from pbx_recorder.core.masking import mask_number, sanitize
from pbx_recorder.core.rules import RuleDecision
from pbx_recorder.errors import EslError

log = logging.getLogger(__name__)

_ROUTE = re.compile(r"([A-Za-z0-9_.+-]{1,80}),([A-Za-z0-9_.+*#-]{1,80}),[A-Za-z0-9_.+-]{1,40}")
TERMINATORS_VAR = "playback_terminators"  #: the digits that stop a playback ("*" when unset)
_TERMINATORS = re.compile(r"[0-9*#]{0,12}|any|none", re.IGNORECASE)  #: a value worth putting back
SLOW_HANDOFF_S = 0.05  # a hand-off slower than this is logged with its steps
DIALOGUE_PATH_VARS = ("PBXREC_DIALOGUE_PATH_1", "PBXREC_DIALOGUE_PATH_2", "PBXREC_DIALOGUE_PATH_3")


class EslConsentSession:
    def __init__(
        self,
        channel: OutboundChannel,
        *,
        normalizer: EslNormalizer,
        backend: AsyncConsentBackend,
        prompts: PromptPaths,
        vip: VipLookup | None,
        settings: DialogSettings,
        clock: Callable[[], float] = time.time,
        to_thread: Callable[..., Awaitable[Any]] = asyncio.to_thread,
        routes: CommandRoutes | None = None,
    ) -> None:
        self.channel = channel
        self.normalizer = normalizer
        self.backend = backend
        self.prompts = prompts
        self.vip = vip
        self.settings = settings
        self.clock = clock
        self.to_thread = to_thread
        self.routes = routes
        self.call_id = ""
        self.leg = ""
        self._requested: ev.ConsentRequested | None = None  # the core was asked (a recording may run)
        self._resolved = False  # the core was told the outcome (never twice)
        self._started: list[str] = []  # files of this leg's uuid_record starts on this socket
        self._uuid = ""  # the caller's leg (Unique-ID of the connect reply)
        self._terminators = ""  # the channel's playback_terminators before the dialogue
        self.ticket: ConsentTicket | None = None  # the core's answer to the request
        self.result_set = ""  # the PBXREC_RESULT FreeSWITCH confirmed setting
        self.handover = ""  # the decision before answer, as sent (esl/early_start.py)
        self._early = False  # the decision before answer: only its own hand-over may say "record"
        self._guarding = False  # the core is asked: its starts are guarded (PBXREC_DIALOGUE_PATH_<n>)
        self._failing: asyncio.Future[bool] | None = None  # the one run of :meth:`fail`

    async def run(self) -> str:
        """The session; returns the PBXREC_RESULT set ("" when none was).  A failure of ours
        (not the caller's hang-up) is resolved as ``failed`` before it propagates."""
        try:
            return await self._run()
        except ChannelGone:
            raise  # the caller hung up: the core learns it from FreeSWITCH's CHANNEL_HANGUP
        except Exception as exc:
            if await self.fail(str(exc)[:200] or type(exc).__name__):
                return C.RESULT_RECORD  # consent none: the dialplan hears "record", and it is true
            raise
        finally:
            if self.routes is not None and self.leg:
                self.routes.unroute(self.leg)

    async def fail(self, why: str) -> bool:
        """Tell the core the dialogue failed (``ConsentResolved(failed)``, as the Asterisk session
        does), once, and only when it was asked: it stops the recording it started for the
        dialogue and discards it with that evidence.  Also called by the server when the
        session's time limit cancelled it.  Never raises: the session is failing already.

        After a ``consent: none`` start the call is lawfully recorded: True (nothing failed for
        the call) when ``PBXREC_RESULT=record`` reached the channel (:meth:`_still_recorded`).
        Otherwise the dialplan takes its fail branch ("unrecorded"), so the core is told
        ``failed`` too: it stops that recording (over the inbound connection: this socket is
        failing) and discards it.

        Run once, as a task of its own: the session's time limit may cancel the session while
        this runs, and the server's own call then waits for the same run (it used to find the
        session resolved and return at once, with neither the core told nor the result withdrawn)."""
        if self._failing is None:
            event = self._requested
            if event is None or self._resolved:
                return False
            self._resolved = True
            self.channel.wind_down()  # a stuck socket is waited for once from here, not per command
            self._failing = asyncio.ensure_future(self._fail_once(event, why))
        return await asyncio.shield(self._failing)

    async def _fail_once(self, event: ev.ConsentRequested, why: str) -> bool:
        if await self._still_recorded(why):
            return True
        if self._none_started() and self.routes is not None and self.leg:
            self.routes.unroute(self.leg)
        log.warning("consent session failed call=%s: %s", self.call_id, why)
        evidence = {"decision": C.CONSENT_FAILED, "decided_at": self.clock(), "failure": why}
        failed = ev.ConsentResolved(at=self.clock(), call_id=self.call_id, channel_id=event.channel_id,
                                    channel=event.channel, decision=C.CONSENT_FAILED, evidence=evidence)
        try:
            await self.backend.resolve(failed)
        except Exception:  # contained: logged with the call id, the server still fails the call closed
            log.exception("consent failure not recorded by the core call=%s", self.call_id)
        await self._withdraw_result()
        return False

    async def _withdraw_result(self) -> None:
        """After the core was told ``failed``: ``PBXREC_RESULT`` emptied behind every command of
        this session, so none whose reply never came can still tell the dialplan a result.
        FreeSWITCH runs this socket's ``api`` commands in order (a late ``uuid_setvar_multi`` with
        the core's "record", or an early hand-over, ran before this one) and the channel's queued
        applications in order (a stuck ``set PBXREC_RESULT=record`` runs before this ``set``): the
        ``api`` empties it now, the ``sendmsg`` again after whatever still waits in the queue.  The
        snippet then takes its fail direction, which also unsets ``execute_on_answer_pbxrec_*``.
        The replies are awaited (bounded), so the socket is not closed while FreeSWITCH still
        answers; the lines were written all the same."""
        if self.channel.gone or not self._uuid:
            return
        lines = [esc.uuid_setvar_multi(self._uuid, {C.VAR_RESULT: ""}, self.call_id),
                 esc.sendmsg_set(C.VAR_RESULT, "", call_id=self.call_id)]
        try:
            await self.channel.settle(self.channel.submit_all(lines))
        except (ChannelGone, EslError) as exc:
            log.warning("PBXREC_RESULT reset not confirmed call=%s: %s (written after every command "
                        "of the session: FreeSWITCH runs it last)", self.call_id, exc)

    def hand_over_pending(self, event: ev.ConsentRequested) -> None:
        """The core is asked before answer (esl/early_start.py): a failure from now on is the core's
        to know, and only the hand-over line itself (with its ``execute_on_answer_pbxrec_*``) may
        tell the dialplan "record"."""
        self._requested, self._early = event, True

    def _none_started(self) -> bool:
        """The core decided ``consent: none`` and started (or waits at the bridge to start) the call
        recording: no dialogue follows, the result is "record" unless something fails."""
        ticket = self.ticket
        decision = ticket.decision if ticket is not None else None
        return bool(ticket is not None and ticket.recording_ok and decision is not None and decision.record
                    and decision.consent not in PROMPT_FOR)

    async def _still_recorded(self, why: str) -> bool:
        """``PBXREC_RESULT=record`` reached the channel (the core's batch), or does now: one
        ``api uuid_setvar_multi`` on this socket, run by FreeSWITCH at once (a ``set`` would wait
        behind whatever application is stuck on the channel)."""
        confirmed = self.result_set == C.RESULT_RECORD
        if not confirmed and self._none_started() and not self.channel.gone \
                and (self.handover or not self._early):
            variables = {"PBXREC_CONSENT": Decision.NOT_REQUIRED.value, C.VAR_RESULT: C.RESULT_RECORD}
            try:
                await self.channel.api(self.handover if self._early
                                       else esc.uuid_setvar_multi(self._uuid, variables, self.call_id))
                confirmed = True
            except (ChannelGone, EslError) as exc:
                log.warning("PBXREC_RESULT=record not confirmed call=%s: %s", self.call_id, exc)
        if confirmed:
            log.warning("consent session failed after the consent-none recording started call=%s: %s; "
                        "PBXREC_RESULT=record is set: the call is recorded", self.call_id, why)
        return confirmed

    async def _api(self, line: str) -> str:
        """The core's ``api`` lines for this leg, on this socket.  A ``uuid_record <leg> start`` the
        core sends before the result (a dialogue's recording, or a ``consent: none`` call
        recording) is preceded, on this socket, by the ``uuid_setvar_multi`` of its
        ``PBXREC_DIALOGUE_PATH_<n>`` (:meth:`_guard_start`)."""
        words = line.split(" ", 5)
        starts = words[:2] == ["api", "uuid_record"] and len(words) > 4 and words[2:4] == [self.leg, "start"]
        guard = self._guard_start(words[4]) if starts and self._guarding else None
        body = await self.channel.api(line)
        if guard is not None:
            await self._guarded(*guard)
        if starts:
            self._started.append(words[4])
        if words[:3] == ["api", "uuid_setvar_multi", self.leg] and len(words) > 3:  # the core's variables
            for pair in line.split(" ", 3)[3].split(";"):
                name, _, value = pair.partition("=")
                if name == C.VAR_RESULT:
                    self.result_set = value
        return body

    def _guard_start(self, path: str) -> tuple[str, Any] | None:
        """Write ``api uuid_setvar_multi <leg> PBXREC_DIALOGUE_PATH_<n>=<path>`` now, before the
        start it guards: FreeSWITCH runs this socket's ``api`` commands in order, so the variable
        exists whenever the recording does, and the snippet's fail branch (``stop_record_session``)
        stops it even when the recorder dies between the start and the result.  Its reply is read
        after the start's (no extra round trip before the recording starts)."""
        n = len(self._started)
        if n >= len(DIALOGUE_PATH_VARS):
            log.warning("more than %d files before the result call=%s: %s is not in a "
                        "PBXREC_DIALOGUE_PATH variable", len(DIALOGUE_PATH_VARS), self.call_id, path)
            return None
        line = esc.uuid_setvar_multi(self.leg, {DIALOGUE_PATH_VARS[n]: path}, self.call_id)
        return line, self.channel.submit(line)

    async def _guarded(self, line: str, future: Any) -> None:
        """The guard's reply (it came before the start's).  Refused: the recording runs and this
        session goes on (the recorder still stops it on a failure); only a recorder that dies
        before the result leaves it to run: logged."""
        try:
            answer = (await self.channel.reply(line, future)).text().strip()
        except (EslError, ChannelGone) as exc:
            answer = f"-ERR {exc}"
        if answer.startswith("-ERR"):
            log.warning("PBXREC_DIALOGUE_PATH not set call=%s: %s", self.call_id, answer[:160])

    async def _run(self) -> str:
        ch = self.channel
        marks = [time.monotonic()]
        headers = await ch.connect()
        marks.append(time.monotonic())
        leg = headers.get("Unique-ID", "")
        if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", leg):
            raise ValueError("outbound connect without a usable Unique-ID")
        self._uuid = leg
        terminators = headers.get(f"variable_{TERMINATORS_VAR}", "")
        self._terminators = terminators if _TERMINATORS.fullmatch(terminators) else ""
        self.call_id = ch.call_id = self.normalizer.call_id(self.normalizer.root_of(headers))
        if self.routes is not None:  # this call's uuid_record goes out on this socket from now on
            self.leg = leg
            self.routes.route_via(leg, self._api)
        # written at once, and the decision is taken without waiting for their replies: FreeSWITCH
        # runs them in order on this socket, before the uuid_record of a rule that records (which
        # goes out on this same socket, see EslClient.route_via); the replies are checked below.
        setup = ch.submit_all(
            ["myevents", "resume", esc.sendmsg_set("PBXREC_SOCKET", "connected", call_id=self.call_id)]
        )
        marks.append(time.monotonic())
        existing = self.backend.existing_result(self.call_id)
        if existing:  # the call passed the recorder before (e.g. transferred back through the snippet)
            log.info("consent already handled call=%s result=%s", self.call_id, existing)
            await ch.settle(setup)
            return await self._set_result(existing)
        caller_num = sanitize(headers.get("Caller-Caller-ID-Number", ""), 40)
        caller_name = sanitize(headers.get("Caller-Caller-ID-Name", ""), 80)
        direction = dialplan_input(headers, "PBXREC_DIRECTION")
        language = dialplan_input(headers, "PBXREC_LANG") or dialplan_input(headers, "default_language")
        vip = bool(self.vip and caller_num and await self._is_vip(caller_num))
        event = ev.ConsentRequested(
            at=self.clock(),
            call_id=self.call_id,
            channel_id=leg,
            channel=leg,
            direction=direction if direction in DIRECTIONS else "",
            dialed=dialplan_input(headers, "PBXREC_DIALED"),
            caller_num=caller_num,
            caller_name=caller_name,
            queue=dialplan_input(headers, "PBXREC_QUEUE"),
            region=dialplan_input(headers, "PBXREC_REGION"),
            language=language if LANGUAGE.fullmatch(language) else "",
            vip=vip,
        )
        log.info(
            "consent requested call=%s direction=%s caller=%s",
            self.call_id,
            event.direction or "-",
            mask_number(caller_num),
        )
        marks.append(time.monotonic())
        if not answered(headers):
            early = await start_early(self, event, setup) if may_start_early(headers) else None
            if early is not None:  # FreeSWITCH starts the recording itself at answer
                return early
            # the dialogue and the in-band start need the call answered: ``uuid_answer`` runs in the
            # socket's thread at once (a ``sendmsg`` answer waits for a tick of the parked channel)
            await answer_call(ch, leg, self.call_id)
        self._requested = event
        self._guarding = True  # a start before the result keeps its file in PBXREC_DIALOGUE_PATH_<n>
        try:
            ticket = self.ticket = await self.backend.request(event)
        finally:
            self._guarding = False
        marks.append(time.monotonic())
        await ch.settle(setup)  # a refused myevents/resume fails the session (closed) before any result
        if marks[-1] - marks[0] > SLOW_HANDOFF_S:  # where the time went: the daemon's loop or FreeSWITCH
            log.info("slow hand-off call=%s connect/submit/inputs/decide+start ms: %s", self.call_id,
                     "/".join(f"{(b - a) * 1000:.1f}" for a, b in zip(marks, marks[1:], strict=False)))
        decision = ticket.decision
        if decision is None or not decision.record:
            return await self._set_result("norecord")
        if not ticket.recording_ok:
            raise RuntimeError("the recording the consent dialogue needs could not be started")
        if decision.consent not in PROMPT_FOR:  # "none": the core resolved it already (a failure
            await ch.set_var("PBXREC_CONSENT", Decision.NOT_REQUIRED.value)  # from here: fail())
            return await self._set_result("record")
        done = await self._dialogue(decision, event.language)
        self._resolved = True
        started = await self.backend.resolve(
            ev.ConsentResolved(
                at=self.clock(),
                call_id=self.call_id,
                channel_id=leg,
                channel=leg,
                decision=done.outcome.value,
                evidence=done.evidence.to_dict(),
            )
        )
        log.info("consent resolved call=%s decision=%s", self.call_id, done.outcome.value)
        if done.outcome == Decision.HANGUP:
            return ""
        await self._restore_terminators()
        if started is False and allows_recording(done.outcome.value):  # the fail direction, as on Asterisk
            raise RuntimeError("the call recording could not be started after consent")
        await ch.set_var("PBXREC_CONSENT", done.outcome.value)
        if allows_recording(done.outcome.value):
            return await self._set_result("record")
        return await self._refused(decision, event.language)

    async def _is_vip(self, number: str) -> bool:
        """A Redis lookup blocks: in a thread.  The file (or no VIP source) is a set lookup: inline."""
        assert self.vip is not None
        if getattr(self.vip, "_redis", None) is None:
            return bool(self.vip.is_vip(number))
        return bool(await self.to_thread(self.vip.is_vip, number))

    def _language(self, decision: RuleDecision, asked: str) -> str:
        return decision.language or asked or self.settings.default_language

    def _prompt(self, prompt_id: str, language: str) -> str:
        return audio_file(self.prompts.path(prompt_id, language)[0])

    async def _dialogue(self, decision: RuleDecision, asked_language: str) -> Done:
        language = self._language(decision, asked_language)
        prompt_id = decision.prompt or PROMPT_FOR[decision.consent]
        _, version = self.prompts.path(prompt_id, language)
        s = self.settings
        dialog = ConsentDialog(
            decision.consent,
            prompt_id,
            version,
            language,
            s.timeout_s,
            s.max_attempts,
            s.digit_yes,
            s.digit_no,
            self.clock(),
            retry_prompt_id=RETRY_PROMPT,
        )
        # FreeSWITCH's playback stops on "*" unless told otherwise: the notice could be cut short
        # and the evidence still say "notified" (Asterisk's STREAM FILE without escape digits
        # cannot be); the channel's own setting is put back after the dialogue
        try:
            await self.channel.set_var(TERMINATORS_VAR, "none")
        except ChannelGone:  # (the dialogue's first prompt finds the hang-up)
            pass
        except EslError as exc:  # refused: the notice can be cut short with "*"; the dialogue goes on
            log.warning("playback_terminators not set call=%s: %s", self.call_id, exc)
        return await run_dialogue(
            dialog, self.channel, lambda pid: self._prompt(pid, language), self.clock, self.call_id
        )

    async def _restore_terminators(self) -> None:
        """The channel's own ``playback_terminators`` put back ("" unsets it), once the dialogue's
        outcome is with the core: a hang-up or a refused ``set`` here loses nothing decided."""
        try:
            await self.channel.set_var(TERMINATORS_VAR, self._terminators)
        except (ChannelGone, EslError) as exc:
            log.info("playback_terminators not put back call=%s: %s", self.call_id, exc)

    async def _refused(self, decision: RuleDecision, asked_language: str) -> str:
        route = decision.refusal_route
        if route == "continue":
            return await self._set_result("norecord")
        await self._set_result("refused")
        match = _ROUTE.fullmatch(route)
        if match:
            await self.channel.set_var("PBXREC_ROUTE", route)
            context, exten = match.group(1), match.group(2)
            log.info("refused call=%s: transfer to %s in %s", self.call_id, exten, context)
            await self.channel.ok(_transfer(exten, context, self.call_id))
            return "refused"
        prompt = decision.goodbye_prompt or GOODBYE_PROMPT
        try:
            await self.channel.play(self._prompt(prompt, self._language(decision, asked_language)))
        except (LookupError, ValueError, OSError) as exc:  # no goodbye prompt: hang up silently
            log.warning("no goodbye prompt %r for call=%s: %s", prompt, self.call_id, exc)
        await self.channel.hangup()
        return "refused"

    async def _set_result(self, result: str) -> str:
        """Set and WAIT until set: the dialplan reads it as soon as the socket closes."""
        await self.channel.execute("set", f"PBXREC_RESULT={result}")
        self.result_set = result
        return result


def _transfer(exten: str, context: str, call_id: str) -> str:
    return esc.sendmsg_execute("transfer", f"{exten} XML {context}", lock=False, call_id=call_id)
