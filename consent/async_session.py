"""One consent session on the asyncio FastAGI server (consent/agi_async.py).

The snippet's contract is in consent/agi_dialplan.py (dialplan variables ``PBXREC_RESULT`` /
``PBXREC_CONSENT`` / ``PBXREC_ROUTE`` / ``PBXREC_GOODBYE``; any failure leaves ``PBXREC_RESULT``
unset so the snippet takes its fail direction).  Compared with the thread-per-session server it
replaced (removed in session 18):

* the backend is awaited on the loop (no thread hop) and receives an :class:`InbandStarter`:
  commands for this session's own channel (``StartRecording``, ``SetChannelVar``, and
  ``StopRecording`` by MixMonitorID) are carried out on the AGI socket (``EXEC MixMonitor``,
  ``SET VARIABLE``, ``EXEC StopMixMonitor``) instead of as AMI actions: the channel runs them at
  once, and a refusal stops the consent segment even when AMI is slow or down;
* a dialogue that fails on a live channel (:class:`AgiCommandFailed`: a prompt that cannot be
  played, no reply in time) is resolved as ``failed`` (not recorded, the catalog says why),
  never as the caller's ``hangup``.

The call-path rules (issue 10):

* the call id comes from ``call_id_of`` (the AMI side's id maker: it knows the PBX's start
  time, so ids stay unique across PBX restarts);
* a recording started before the dialogue (consent segment, or the call recording before a
  notice) or before the result (a ``consent: none`` call recording) keeps its MixMonitorID in
  ``PBXREC_DIALOGUE_MMID`` (the same ``i()`` option in band as over AMI; Asterisk sets it
  itself): the snippet's fail direction stops it in the dialplan, even with the recorder dead;
* after a ``consent: none`` start the call is lawfully recorded: a later failure of the session
  ends it as "record" when ``PBXREC_RESULT=record`` reached the channel (the core's in-band set
  or one more try); otherwise the call is resolved ``failed`` (the core stops the MixMonitor over
  AMI and discards the recording) and the snippet's fail direction ("unrecorded") is true; a
  ``SET VARIABLE PBXREC_RESULT record`` whose reply never came may still run after that (Asterisk
  runs the socket's commands in order), so the session's last command then resets it to "";
* a consent request from another channel of a call whose dialogue is pending (an agent's leg)
  gets "norecord" and no dialogue: only the caller's own channel answers the caller's consent;
* after an in-band start that failed, the core's ``PBXREC_RESULT=record`` is not set;
* the question is ``STREAM FILE <q> 0123456789*#`` (barge-in; ``endpos`` says where in the
  question the digit came) then ``WAIT FOR DIGIT``: a digit less than
  ``ConsentDialog.min_answer_s`` into the question (pressed before it began) does not count,
  and the evidence's ``digit_log`` times every digit against the prompt;
* a "yes" whose call recording then cannot start leaves ``PBXREC_RESULT`` unset: the snippet
  takes its fail direction (CDR userfield ``unavailable``), the catalog says not recorded and why;
* admission control (pbx_recorder/core/admission.py): a dialogue whose first prompt would start more
  than ``max_question_delay_s`` after the snippet's ``t0`` is refused as ``capacity`` (a starved
  PBX), and the core is told when the first prompt starts (``ConsentAsked``), so a caller who
  hangs up before it is catalogued ``hangup_before_question``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from ami.actions import mmid_variable_of, start_recording
from consent.agi_async import UNAVAILABLE_VAR, AgiCommandFailed, AsyncAgiConnection
from consent.agi_dialplan import DECIDE_SCRIPT, ROUTE, SCRIPT, caller_of, parse_args
from consent.agi_protocol import DIGITS, PROMPT_RATE, AgiProtocolError, AgiReply, digit_of
from consent.dialogue_runner import MAX_STEPS, ChannelGone, safe_prompt_path
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
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import constants as C
from pbx_recorder.core import events as ev
from pbx_recorder.core.admission import Admission, admit_dialogue, parse_t0
from pbx_recorder.core.consent_policy import (
    AskDigit,
    ConsentDialog,
    Decision,
    Done,
    PlayNotice,
    PlayRetry,
    allows_recording,
)
from pbx_recorder.core.masking import mask_number, sanitize
from pbx_recorder.core.naming import make_call_id
from pbx_recorder.core.rules import RuleDecision

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 5.0  # one more try to tell the dialplan "record" after a failure (AGI reply bound)
_MMID = re.compile(r"[A-Za-z0-9_]{1,40}")  # MixMonitor IDs as Asterisk makes them ("0x55d0...")


class AskedTooLate(Exception):
    def __init__(self, admission: Admission) -> None:
        super().__init__("the question started too late")
        self.admission = admission


class AsyncConsentBackend(Protocol):
    async def request(self, event: ev.ConsentRequested, inband: InbandStarter) -> ConsentTicket: ...

    async def resolve(self, event: ev.ConsentResolved, inband: InbandStarter) -> bool | None: ...
    # False: a recording the decision started could not start

    async def decide(self, event: ev.ConsentRequested) -> RuleDecision | None: ...
    # the decision when it is final at entry (pbx_recorder/core/early_start.py), else None; no state change

    def existing_result(self, call_id: str, channel: str = "") -> str: ...
    # the result of a call the core settled already, or "norecord" when another channel's dialogue
    # decides it (core: CallBook.settled_result), else ""


class InbandStarter:
    """Carries out the core's commands for the session's own channel over the AGI socket."""

    def __init__(self, conn: AsyncAgiConnection, channel: str, channel_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.conn, self.channel, self.channel_id, self.clock = conn, channel, channel_id, clock
        self.open = True
        self.guard_starts = False  # a call recording started now keeps its ID in PBXREC_DIALOGUE_MMID
        self.start_failed = False  # a start in band failed: "record" is never set after it
        self.result_set = ""  # the PBXREC_RESULT Asterisk confirmed setting (in band)

    def takes(self, command: cmds.Command) -> bool:
        if not self.open or self.conn.hung_up or getattr(command, "channel", None) != self.channel:
            return False
        if isinstance(command, cmds.StopRecording):  # by its MixMonitorID only (else over AMI)
            return bool(_MMID.fullmatch(command.pbx_ref))
        return isinstance(command, cmds.StartRecording | cmds.SetChannelVar)

    async def execute(self, command: cmds.Command) -> list[Any]:
        """Carry out ``command`` in band.  After a start that failed, the core's
        ``PBXREC_RESULT=record`` is not set: the snippet takes its fail direction (the catalog says
        why), never "recorded" while no (or an unknown) MixMonitor runs."""
        if isinstance(command, cmds.SetChannelVar) and command.name == C.VAR_RESULT \
                and command.value == C.RESULT_RECORD and self.start_failed:
            log.warning("PBXREC_RESULT=record not set call=%s: the recording did not start", command.call_id)
            return []
        try:
            produced = await self._execute(command)
        except Exception:
            if isinstance(command, cmds.StartRecording):
                self.start_failed = True
            raise
        if isinstance(command, cmds.SetChannelVar) and command.name == C.VAR_RESULT:
            self.result_set = command.value
        return produced

    async def _execute(self, command: cmds.Command) -> list[Any]:
        if isinstance(command, cmds.SetChannelVar):
            await self.conn.execute("SET VARIABLE", command.name, command.value)
            return []
        if isinstance(command, cmds.StopRecording):  # e.g. the consent segment after a "no":
            await self.conn.execute("EXEC", "StopMixMonitor", command.pbx_ref)  # stops at once
            return []
        assert isinstance(command, cmds.StartRecording)
        if self.guard_starts and not command.dialogue:  # the snippet's fail direction stops it too
            command = replace(command, dialogue=True)
        action = start_recording(command)  # the same checked File / Options / Command as over AMI
        arguments = f"{action['File']},{action['Options']},{action['Command']}"
        await self.conn.execute("EXEC", "MixMonitor", arguments)
        reply = await self.conn.execute("GET VARIABLE", mmid_variable_of(command))
        mmid = reply.data if reply.result == "1" else ""
        return [ev.RecordingStarted(at=self.clock(), call_id=command.call_id, channel_id=self.channel_id,
                                    channel=command.channel, recording_id=command.recording_id, pbx_ref=mmid)]


class AsyncConsentSession:
    def __init__(self, conn: AsyncAgiConnection, *, node: str, backend: AsyncConsentBackend,
                 prompts: PromptPaths, vip: VipLookup | None, settings: DialogSettings,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 call_id_of: Callable[[str], str] | None = None,
                 max_question_delay_s: float | None = None,
                 on_asked: Callable[[ev.ConsentAsked], Awaitable[None]] | None = None) -> None:
        self.conn, self.node, self.backend = conn, node, backend
        self.max_question_delay_s = max_question_delay_s  # admission control (pbx_recorder/core/admission.py)
        self.on_asked = on_asked  # the core learns when the first prompt starts
        self.monotonic = monotonic
        self.call_id_of = call_id_of  # the AMI side's id maker (it knows the PBX's start time)
        self.prompts, self.vip, self.settings, self.clock = prompts, vip, settings, clock
        self.call_id = ""
        self._resolved = False
        self._none_started = False  # consent none: the core started (or waits to start) the recording

    async def run(self) -> str:
        """Run the session; returns the PBXREC_RESULT set ("" when none was)."""
        env = self.conn.env
        script = env.get("agi_network_script", "").split("?", 1)[0].strip("/")
        if script not in (SCRIPT, DECIDE_SCRIPT):
            log.warning("FastAGI request for unknown script %r refused", sanitize(script, 40))
            return ""
        event = request_event(env, self.node, self.vip, self.clock, call_id_of=self.call_id_of)
        self.call_id = event.call_id
        existing = getattr(self.backend, "existing_result", None)  # the daemon's has it (daemon_consent.py)
        settled = existing(self.call_id, event.channel) if existing is not None else ""
        if settled:  # the call passed the recorder before (the snippet again, a failed quick decision)
            return await self._settled(event, settled)
        if script == DECIDE_SCRIPT:  # before answer: the dialplan starts the recording itself
            from consent.early_decide import decide  # it builds on InbandStarter, defined here
            return await decide(self, event)
        log.info("consent requested call=%s direction=%s caller=%s", self.call_id, event.direction or "-",
                 mask_number(event.caller_num))
        inband = InbandStarter(self.conn, event.channel, event.channel_id, self.clock)
        try:
            return await self._consent(event, inband)
        except ChannelGone:
            raise  # the caller hung up: the core learns it from the PBX's Hangup
        except Exception as exc:  # ours, not the caller's: never left to look like a hang-up later
            if not self._resolved and await self._still_recorded(inband, exc):
                return C.RESULT_RECORD  # consent none: the dialplan hears "record", and it is true
            if not self._resolved:
                await self._fail(event, inband, exc)
            raise

    async def _settled(self, event: ev.ConsentRequested, result: str) -> str:
        """A request for a call the core settled: its result again, as on FreeSWITCH
        (esl/consent_session.py ``existing_result``); nothing decided, started or played: the core
        would ignore this request and its dialogue's outcome.  "record" (e.g. the consent AGI after
        a quick decision that handed over ``PBXREC_EARLY_ARGS`` and then failed: the snippet's
        "decided" block starts it) gets one more try after a failure, as a ``consent: none`` start
        does; if it cannot be set, the session fails (the core is told: ``failed``)."""
        log.info("consent already settled call=%s result=%s: no new decision", self.call_id, result)
        inband = InbandStarter(self.conn, event.channel, event.channel_id, self.clock)
        self._none_started = result == C.RESULT_RECORD
        try:
            return await self._set_result(result)
        except ChannelGone:
            raise
        except Exception as exc:
            if await self._still_recorded(inband, exc):
                return C.RESULT_RECORD
            await self._fail(event, inband, exc)
            raise

    async def _fail(self, event: ev.ConsentRequested, inband: InbandStarter, exc: Exception) -> None:
        """Tell the core the session failed (``ConsentResolved(failed)``): the snippet takes its
        fail direction, so a recording the core keeps for this channel must not run on."""
        log.warning("consent session failed call=%s: %s", self.call_id, exc or type(exc).__name__)
        inband.open = False
        evidence = self._flagged({"decision": C.CONSENT_FAILED, "decided_at": self.clock(),
                                  "failure": str(exc)[:200] or type(exc).__name__})
        failed = ev.ConsentResolved(at=self.clock(), call_id=self.call_id,
                                    channel_id=event.channel_id, channel=event.channel,
                                    decision=C.CONSENT_FAILED, evidence=evidence)
        await self.backend.resolve(failed, inband)
        if self.conn.owed:  # a command whose reply never came may still run: undo its result
            await self._withdraw_result()

    async def _withdraw_result(self) -> None:
        """The last command of a failed session whose connection has commands without a reply:
        Asterisk runs a socket's commands in order, even after the recorder gave up on their
        replies, so a queued ``SET VARIABLE PBXREC_RESULT record`` would still make the dialplan
        say "record" for the recording the core just stopped and discarded (AGISTATUS is SUCCESS
        when the socket closes: a FastAGI server cannot end with a failure status).
        ``PBXREC_RESULT=""`` queued behind it is the snippet's fail direction ("unavailable", which
        also stops ``PBXREC_DIALOGUE_MMID``).  Its reply is awaited (bounded), so the socket is
        not closed while Asterisk still answers; without one it was written all the same."""
        try:
            await self.conn.execute("SET VARIABLE", C.VAR_RESULT, "", timeout=CONFIRM_TIMEOUT_S)
        except (ChannelGone, AgiCommandFailed, AgiProtocolError) as exc:
            log.warning("PBXREC_RESULT reset not confirmed call=%s: %s (written after every command "
                        "of the session: Asterisk runs it last)", self.call_id, exc)

    async def _consent(self, event: ev.ConsentRequested, inband: InbandStarter) -> str:
        inband.guard_starts = True  # a start before the result: the snippet's fail direction stops it
        ticket = await self.backend.request(event, inband)
        inband.guard_starts = False  # the call recording after a "yes" keeps its own MixMonitor ID
        decision = ticket.decision
        if decision is None or not decision.record:
            return await self._set_result("norecord")
        if not ticket.recording_ok:
            raise RuntimeError("the recording the consent dialogue needs could not be started")
        if decision.consent not in PROMPT_FOR:  # "none": the core resolved it already
            self._none_started = True  # a failure from here on: _still_recorded
            await self._set("PBXREC_CONSENT", Decision.NOT_REQUIRED.value)
            return await self._set_result("record")
        if self.max_question_delay_s is not None:
            admission = admit_dialogue(self._t0(), self.clock(), self.max_question_delay_s)
            if not admission.admitted:
                return await self._refuse_starved(event, inband, admission)
        if self.on_asked is not None:
            await self.on_asked(ev.ConsentAsked(at=self.clock(), call_id=self.call_id,
                                                channel_id=event.channel_id, channel=event.channel))
        outcome, evidence, failure = await self._dialogue(decision, event.language)
        evidence = self._flagged(evidence)
        resolved = ev.ConsentResolved(at=self.clock(), call_id=self.call_id, channel_id=event.channel_id,
                                      channel=event.channel, decision=outcome, evidence=evidence)
        if failure is not None:
            inband.open = False  # the channel variables the core would set go nowhere useful now
        self._resolved = True
        started = await self.backend.resolve(resolved, inband)
        log.info("consent resolved call=%s decision=%s", self.call_id, outcome)
        if failure is not None:
            raise failure
        if outcome == Decision.HANGUP:
            return ""
        if outcome == C.CONSENT_CAPACITY:  # asked too late (a starved PBX): the snippet's fail direction
            await self._set(UNAVAILABLE_VAR, C.CONSENT_CAPACITY)
            return ""
        if started is False and allows_recording(outcome):  # say so: the snippet's fail direction
            await self._set("PBXREC_RESULT", "")  # the core may have set "record" in band already
            raise RuntimeError("the call recording could not be started after consent")
        await self._set("PBXREC_CONSENT", outcome)
        if outcome in (Decision.GRANTED, Decision.NOTIFIED):
            return await self._set_result("record")
        return await self._refused(decision, event.language)

    async def _still_recorded(self, inband: InbandStarter, exc: Exception) -> bool:
        """After a ``consent: none`` start the call is lawfully recorded: a failure of the session
        must not make the dialplan say "unrecorded" while it records.  True when
        ``PBXREC_RESULT=record`` reached the channel (the core's in-band set, or one more try
        here, bounded): the session ends as "record".  False: not confirmed; the caller resolves
        the call ``failed``, so the core stops (over AMI) and discards the recording, and the
        snippet's fail direction stops its MixMonitor (``PBXREC_DIALOGUE_MMID``): "unrecorded"
        is then true."""
        confirmed = inband.result_set == C.RESULT_RECORD
        if not confirmed and self._none_started:
            try:
                await self.conn.execute("SET VARIABLE", C.VAR_RESULT, C.RESULT_RECORD,
                                        timeout=CONFIRM_TIMEOUT_S)
                confirmed = True
            except (ChannelGone, AgiCommandFailed, AgiProtocolError) as again:
                log.warning("PBXREC_RESULT=record not confirmed call=%s: %s", self.call_id, again)
        if confirmed:
            self._resolved = True
            log.warning("consent session failed after the consent-none recording started call=%s: %s; "
                        "PBXREC_RESULT=record is set: the call is recorded", self.call_id,
                        exc or type(exc).__name__)
        return confirmed

    async def _refuse_starved(self, event: ev.ConsentRequested, inband: InbandStarter,
                              admission: Admission) -> str:
        """The PBX is too slow to ask now: not recorded as ``capacity`` (the core stops and
        discards the dialogue's recording), ``PBXREC_RESULT`` unset: the snippet's fail direction."""
        log.warning("consent dialogue refused call=%s: the question would start %.1f s after the AGI "
                    "call (max %.1f s): capacity", self.call_id, admission.delay_s or 0.0, admission.bound_s)
        evidence = self._flagged({"decision": C.CONSENT_CAPACITY, "decided_at": self.clock(),
                                  **admission.evidence()})
        self._resolved = True
        await self.backend.resolve(ev.ConsentResolved(at=self.clock(), call_id=self.call_id,
                                                      channel_id=event.channel_id, channel=event.channel,
                                                      decision=C.CONSENT_CAPACITY, evidence=evidence), inband)
        await self._set(UNAVAILABLE_VAR, C.CONSENT_CAPACITY)
        return ""

    async def _dialogue(self, decision: RuleDecision,
                        asked: str) -> tuple[str, dict[str, Any], AgiCommandFailed | None]:
        language = decision.language or asked or self.settings.default_language
        prompt_id = decision.prompt or PROMPT_FOR[decision.consent]
        _, version = self.prompts.path(prompt_id, language)
        s = self.settings
        dialog = ConsentDialog(decision.consent, prompt_id, version, language, s.timeout_s, s.max_attempts,
                               s.digit_yes, s.digit_no, self.clock(), retry_prompt_id=RETRY_PROMPT)
        try:
            done = await self._steps(dialog, language)
        except AskedTooLate as late:  # the caller pressed before a question that started too late
            log.warning("consent question started %.1f s after the AGI call (max %.1f s) call=%s: capacity",
                        late.admission.delay_s or 0.0, late.admission.bound_s, self.call_id)
            evidence = dialog.evidence.to_dict()
            evidence.update(decision=C.CONSENT_CAPACITY, decided_at=self.clock(), **late.admission.evidence())
            return C.CONSENT_CAPACITY, evidence, None
        except ChannelGone as exc:
            log.info("caller hung up during the consent dialogue call=%s (%s)", self.call_id, exc)
            step = dialog.on_hangup(self.clock())
            assert isinstance(step, Done)
            return step.outcome.value, step.evidence.to_dict(), None
        except AgiCommandFailed as exc:  # the channel is up: a failure of ours, not the caller's hang-up
            log.warning("consent dialogue failed on a live channel call=%s: %s", self.call_id, exc)
            evidence = dialog.evidence.to_dict()
            evidence.update(decision=C.CONSENT_FAILED, decided_at=self.clock(), failure=str(exc)[:200])
            return C.CONSENT_FAILED, evidence, exc
        return done.outcome.value, done.evidence.to_dict(), None

    async def _steps(self, dialog: ConsentDialog, language: str) -> Done:
        step = dialog.next_step(self.clock())
        for _ in range(MAX_STEPS):
            if isinstance(step, Done):
                return step
            path = safe_prompt_path(self.prompts.path(step.prompt, language)[0])
            if isinstance(step, PlayNotice | PlayRetry):
                await self.conn.execute("STREAM FILE", path, "")
                step = dialog.next_step(self.clock())
            elif isinstance(step, AskDigit):
                digit, offset, after = await self._ask(path, max(int(step.timeout_s * 1000), 1))
                now = self.clock()
                step = (dialog.on_digit(digit, now, prompt_offset_s=offset, after_prompt_s=after)
                        if digit else dialog.on_timeout(now))
                if digit and offset is not None and offset < dialog.min_answer_s \
                        and dialog.evidence.attempts == 1:  # logged, not counted; the first asking only
                    self._check_question_start(now - offset)
            else:  # pragma: no cover - the Step union is closed
                raise TypeError(f"unknown consent step {step!r}")
        raise RuntimeError(f"consent dialogue did not end within {MAX_STEPS} steps (call {self.call_id})")

    def _flagged(self, evidence: dict[str, Any]) -> dict[str, Any]:
        """The evidence, saying so when the caller tampered with the AGI environment (the genuine
        arguments were used: consent/agi_environment.py)."""
        return {**evidence, "agi_env_tampered": True} if self.conn.env_tampered else evidence

    def _t0(self) -> float | None:
        return parse_t0(parse_args(self.conn.env).get("t0", ""))

    def _check_question_start(self, started: float) -> None:
        """A digit stopped the question as it began: the caller pressed before being asked.  If the
        question began more than the admission bound after ``t0``, the PBX made them wait: refuse
        as ``capacity`` instead of asking again a caller who has given up on being asked."""
        if self.max_question_delay_s is None:
            return
        admission = admit_dialogue(self._t0(), started, self.max_question_delay_s)
        if not admission.admitted:
            raise AskedTooLate(admission)

    async def _ask(self, path: str, timeout_ms: int) -> tuple[str, float | None, float | None]:
        """The question with barge-in, then up to ``timeout_ms`` for one digit: (digit or "",
        seconds into the question it came, or seconds after the question ended it came).

        ``STREAM FILE`` stops at a digit and says where (``endpos``, samples of the 8 kHz prompt):
        a digit queued before the question began stops it at ~0 and is told from an answer."""
        reply = await self.conn.execute("STREAM FILE", path, DIGITS)
        digit = digit_of(reply.result)
        if digit:
            return digit, _endpos_s(reply), None
        ended = self.monotonic()
        reply = await self.conn.execute("WAIT FOR DIGIT", timeout_ms)
        return digit_of(reply.result), None, max(self.monotonic() - ended, 0.0)

    async def _refused(self, decision: RuleDecision, asked: str) -> str:
        route = decision.refusal_route
        if route == "continue":
            return await self._set_result("norecord")
        if ROUTE.fullmatch(route):
            await self._set("PBXREC_ROUTE", route)
        else:
            prompt = decision.goodbye_prompt or GOODBYE_PROMPT
            language = decision.language or asked or self.settings.default_language
            try:
                await self._set("PBXREC_GOODBYE", safe_prompt_path(self.prompts.path(prompt, language)[0]))
            except (LookupError, ValueError, OSError) as exc:  # no goodbye prompt: hang up silently
                log.warning("no goodbye prompt %r for call=%s: %s", prompt, self.call_id, exc)
        return await self._set_result("refused")

    async def set_variable(self, name: str, value: str) -> None:
        await self._set(name, value)

    async def set_result(self, result: str) -> str:
        return await self._set_result(result)

    async def _set(self, name: str, value: str) -> None:
        await self.conn.execute("SET VARIABLE", name, value)

    async def _set_result(self, result: str) -> str:
        await self._set("PBXREC_RESULT", result)
        return result


def _endpos_s(reply: AgiReply) -> float | None:
    endpos = reply.fields.get("endpos", "")
    return int(endpos) / PROMPT_RATE if endpos.isdigit() else None


def request_event(env: dict[str, str], node: str, vip: VipLookup | None,
                  clock: Callable[[], float], *,
                  call_id_of: Callable[[str], str] | None = None) -> ev.ConsentRequested:
    """The ConsentRequested an AGI environment describes (hostile values dropped or reduced)."""
    args = parse_args(env)
    uniqueid = sanitize(env.get("agi_uniqueid", ""), 64)
    linkedid = args.get("linkedid") or uniqueid
    if not linkedid:
        raise ValueError("AGI session without linkedid and agi_uniqueid")
    caller_num, caller_name = caller_of(env)
    direction = args.get("direction", "")
    language = args.get("lang", "") or env.get("agi_language", "")
    return ev.ConsentRequested(
        at=clock(), call_id=call_id_of(linkedid) if call_id_of else make_call_id(node, linkedid),
        channel_id=uniqueid,
        channel=sanitize(env.get("agi_channel", ""), 120),
        direction=direction if direction in DIRECTIONS else "",
        dialed=args.get("dialed", ""), caller_num=caller_num, caller_name=caller_name,
        queue=args.get("queue", ""), region=args.get("region", ""),
        language=language if LANGUAGE.fullmatch(language) else "",
        vip=bool(vip and caller_num and vip.is_vip(caller_num)))
