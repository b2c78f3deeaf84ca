"""FastAGI consent server: one thread per session (``ThreadingTCPServer``), bounded.

Dialplan contract (dialplan/asterisk/pbx-recorder.conf)::

    AGI(agi://HOST:PORT/consent,direction=<d>,dialed=<n>,linkedid=${CHANNEL(linkedid)},
        queue=<q>,region=<r>,lang=${CHANNEL(language)})

Each argument arrives as ``agi_arg_N = key=value``; unknown keys, control characters and
over-long values are dropped (the caller controls some of them).  Caller number and name
come from ``agi_callerid`` / ``agi_calleridname``, the channel from ``agi_channel`` /
``agi_uniqueid``.

A session: ConsentRequested (with the VIP flag) -> ``backend.request`` (the daemon's loop
runs CallBook.handle, carries out the commands, waits for any MixMonitor the core started
before the dialogue, and returns the RuleDecision) -> the ConsentDialog over STREAM FILE /
GET DATA -> ``backend.resolve(ConsentResolved)`` -> channel variables for the snippet:

    PBXREC_RESULT  record | norecord | refused   (norecord also for a refusal whose route is
                                                  "continue": the call goes on unrecorded)
    PBXREC_CONSENT the dialog's decision (granted, refused, timeout, invalid, notified, ...)
    PBXREC_ROUTE   "context,exten,priority" for a refusal routed elsewhere
    PBXREC_GOODBYE prompt path (no extension) played before hanging up a refused call

Any failure is logged with the call id and the session closes WITHOUT setting
PBXREC_RESULT: the snippet takes its fail direction and the call is not recorded.
"""

from __future__ import annotations

import logging
import re
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from consent.agi_channel import AgiPromptChannel, ThreadSafeAGI
from consent.dialogue_runner import ChannelGone, run_dialogue, safe_prompt_path
from pbx_recorder import events as ev
from pbx_recorder.consent_policy import ConsentDialog, Decision, allows_recording
from pbx_recorder.masking import mask_number, sanitize
from pbx_recorder.naming import make_call_id
from pbx_recorder.rules import RuleDecision

log = logging.getLogger(__name__)

SCRIPT = "consent"
DECIDE_SCRIPT = "decide"  # the quick decision before answer (consent/early_decide.py)
ARG_KEYS = ("direction", "dialed", "linkedid", "queue", "region", "lang", "t0")
DIRECTIONS = ("inbound", "outbound", "internal")
MAX_ARGS = 32
MAX_ARG_LEN = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ROUTE = re.compile(r"[A-Za-z0-9_.+-]{1,80},[A-Za-z0-9_.+*#-]{1,80},[A-Za-z0-9_.+-]{1,40}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?")
PROMPT_FOR = {"notify": "recording-notice", "explicit": "consent-question"}
RETRY_PROMPT = "consent-retry"
GOODBYE_PROMPT = "refusal-goodbye"


@dataclass(frozen=True)
class ConsentTicket:
    """The daemon's answer to a ConsentRequested."""

    decision: RuleDecision | None
    recording_ok: bool = True  # False: a MixMonitor the core wanted before the dialogue failed


class ConsentBackend(Protocol):
    def request(self, event: ev.ConsentRequested) -> ConsentTicket: ...

    def resolve(self, event: ev.ConsentResolved) -> bool | None: ...  # False: recording did not start


class PromptPaths(Protocol):
    def path(self, prompt_id: str, language: str) -> tuple[str, str]: ...


class VipLookup(Protocol):
    def is_vip(self, number: str) -> bool: ...


@dataclass(frozen=True)
class DialogSettings:
    default_language: str = "en"
    timeout_s: float = 5.0
    max_attempts: int = 3
    digit_yes: str = "1"
    digit_no: str = "2"


def parse_args(env: Mapping[str, str]) -> dict[str, str]:
    """``agi_arg_N = key=value`` -> {key: value} for the known keys; hostile input dropped."""
    args: dict[str, str] = {}
    for n in range(1, MAX_ARGS + 1):
        raw = env.get(f"agi_arg_{n}")
        if raw is None:
            break
        key, sep, value = raw.partition("=")
        key = key.strip().lower()
        if not sep or key not in ARG_KEYS or key in args:
            log.debug("AGI argument %d ignored", n)
            continue
        if _CONTROL.search(value) or len(value) > MAX_ARG_LEN:
            log.warning("AGI argument %r refused (control characters or too long)", key)
            continue
        args[key] = value.strip()
    return args


def caller_of(env: Mapping[str, str]) -> tuple[str, str]:
    num = env.get("agi_callerid", "")
    name = env.get("agi_calleridname", "")
    num = "" if num in ("unknown", "<unknown>") else sanitize(num, 40)
    name = "" if name in ("unknown", "<unknown>") else sanitize(name, 80)
    return num, name


class ConsentSession:
    def __init__(
        self,
        agi: ThreadSafeAGI,
        *,
        node: str,
        backend: ConsentBackend,
        prompts: PromptPaths,
        vip: VipLookup | None,
        settings: DialogSettings,
        clock: Callable[[], float] = time.time,
        call_id_of: Callable[[str], str] | None = None,
    ) -> None:
        self.agi = agi
        self.call_id_of = call_id_of  # the AMI side's id maker (it knows the PBX's start time)
        self.node = node
        self.backend = backend
        self.prompts = prompts
        self.vip = vip
        self.settings = settings
        self.clock = clock
        self.call_id = ""
        self.channel = AgiPromptChannel(agi)

    def run(self) -> str:
        """Run the session; returns the PBXREC_RESULT set ("" when none was)."""
        env = self.agi.env
        script = env.get("agi_network_script", "").split("?", 1)[0].strip("/")
        if script != SCRIPT:
            log.warning("FastAGI request for unknown script %r refused", sanitize(script, 40))
            return ""
        args = parse_args(env)
        uniqueid = sanitize(env.get("agi_uniqueid", ""), 64)
        linkedid = args.get("linkedid") or uniqueid
        if not linkedid:
            raise ValueError("AGI session without linkedid and agi_uniqueid")
        self.call_id = self.call_id_of(linkedid) if self.call_id_of else make_call_id(self.node, linkedid)
        caller_num, caller_name = caller_of(env)
        direction = args.get("direction", "")
        language = args.get("lang", "") or env.get("agi_language", "")
        language = language if _LANGUAGE.fullmatch(language) else ""
        event = ev.ConsentRequested(
            at=self.clock(),
            call_id=self.call_id,
            channel_id=uniqueid,
            channel=sanitize(env.get("agi_channel", ""), 120),
            direction=direction if direction in DIRECTIONS else "",
            dialed=args.get("dialed", ""),
            caller_num=caller_num,
            caller_name=caller_name,
            queue=args.get("queue", ""),
            region=args.get("region", ""),
            language=language,
            vip=bool(self.vip and caller_num and self.vip.is_vip(caller_num)),
        )
        log.info(
            "consent requested call=%s direction=%s caller=%s",
            self.call_id,
            event.direction or "-",
            mask_number(caller_num),
        )
        ticket = self.backend.request(event)
        decision = ticket.decision
        if decision is None or not decision.record:
            return self._set_result("norecord")
        if not ticket.recording_ok:
            raise RuntimeError("the recording the consent dialogue needs could not be started")
        if decision.consent not in PROMPT_FOR:  # "none": the core resolved it already
            self._set("PBXREC_CONSENT", Decision.NOT_REQUIRED.value)
            return self._set_result("record")
        done = self._dialogue(decision, event.language)
        started = self.backend.resolve(
            ev.ConsentResolved(
                at=self.clock(),
                call_id=self.call_id,
                channel_id=uniqueid,
                channel=event.channel,
                decision=done.outcome.value,
                evidence=done.evidence.to_dict(),
            )
        )
        log.info("consent resolved call=%s decision=%s", self.call_id, done.outcome.value)
        if done.outcome == Decision.HANGUP:
            return ""
        if started is False and allows_recording(done.outcome.value):  # say so: the fail direction
            raise RuntimeError("the call recording could not be started after consent")
        self._set("PBXREC_CONSENT", done.outcome.value)
        if allows_recording(done.outcome.value):
            return self._set_result("record")
        return self._refused(decision, event.language)

    def _language(self, decision: RuleDecision, asked: str) -> str:
        return decision.language or asked or self.settings.default_language

    def _dialogue(self, decision: RuleDecision, asked_language: str) -> Any:
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
        return run_dialogue(
            dialog, self.channel, lambda pid: self.prompts.path(pid, language)[0], self.clock, self.call_id
        )

    def _refused(self, decision: RuleDecision, asked_language: str) -> str:
        route = decision.refusal_route
        if route == "continue":
            return self._set_result("norecord")
        if _ROUTE.fullmatch(route):
            self._set("PBXREC_ROUTE", route)
        else:
            prompt = decision.goodbye_prompt or GOODBYE_PROMPT
            try:
                path = safe_prompt_path(
                    self.prompts.path(prompt, self._language(decision, asked_language))[0]
                )
                self._set("PBXREC_GOODBYE", path)
            except (LookupError, ValueError, OSError) as exc:  # no goodbye prompt: hang up silently
                log.warning("no goodbye prompt %r for call=%s: %s", prompt, self.call_id, exc)
        return self._set_result("refused")

    def _set(self, name: str, value: str) -> None:
        self.channel.set_variable(name, value)

    def _set_result(self, result: str) -> str:
        self._set("PBXREC_RESULT", result)
        return result


class _Handler(socketserver.StreamRequestHandler):
    server: AgiServer

    def handle(self) -> None:
        self.server.serve_session(self)


class AgiServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: str,
        port: int,
        *,
        session: Callable[[ThreadSafeAGI], ConsentSession],
        max_sessions: int = 200,
        session_timeout_s: float = 120.0,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.make_session = session
        self.session_timeout_s = session_timeout_s
        self._slots = threading.BoundedSemaphore(max_sessions)
        self._active = 0
        self._lock = threading.Condition()
        self.accepting = True
        self._thread: threading.Thread | None = None
        self.served = 0
        self.failed = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def active(self) -> int:
        return self._active

    def serve_session(self, handler: socketserver.StreamRequestHandler) -> None:
        if not self.accepting or not self._slots.acquire(blocking=False):
            log.warning(
                "AGI session refused (%s): the snippet takes its fail direction",
                "stopping" if not self.accepting else "too many sessions",
            )
            return
        with self._lock:
            self._active += 1
        session: ConsentSession | None = None
        try:
            handler.connection.settimeout(self.session_timeout_s)
            agi = ThreadSafeAGI(handler.rfile, handler.wfile)  # type: ignore[arg-type]
            session = self.make_session(agi)
            session.run()
            self.served += 1
        except ChannelGone as exc:
            self.failed += 1
            log.info("AGI session ended: caller gone call=%s (%s)", session.call_id if session else "-", exc)
        except Exception:  # fail closed: PBXREC_RESULT stays unset, the call is not recorded
            self.failed += 1
            log.exception("AGI consent session failed call=%s", session.call_id if session else "-")
        finally:
            self._slots.release()
            with self._lock:
                self._active -= 1
                self._lock.notify_all()

    def stop_accepting(self) -> None:
        """New sessions are refused from now on; the listener is closed by :meth:`close`."""
        self.accepting = False

    def wait_idle(self, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._active == 0, timeout)

    def start(self) -> threading.Thread:
        """Serve in a background thread (the daemon's asyncio loop stays free)."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="agi-server", daemon=True
        )
        self._thread.start()
        return self._thread

    def close(self) -> None:
        self.accepting = False
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server_close()
