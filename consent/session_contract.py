"""What every consent session shares with the daemon, on Asterisk (FastAGI: consent/async_session.py)
and on FreeSWITCH (the outbound socket: esl/consent_session.py).

A session sends ConsentRequested (with the VIP flag) to the daemon's backend and gets a
:class:`ConsentTicket` back (the core's RuleDecision; ``recording_ok`` False when a MixMonitor
the core started before the dialogue failed); it then runs the ConsentDialog with
:class:`DialogSettings` and the prompts named here (:data:`PROMPT_FOR`, :data:`RETRY_PROMPT`,
:data:`GOODBYE_PROMPT`, found through :class:`PromptPaths`), and sends ConsentResolved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from pbx_recorder.core.rules import RuleDecision

DIRECTIONS = ("inbound", "outbound", "internal")
LANGUAGE = re.compile(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?")  # a language tag the prompts may have
PROMPT_FOR = {"notify": "recording-notice", "explicit": "consent-question"}  # by the rule's consent
RETRY_PROMPT = "consent-retry"
GOODBYE_PROMPT = "refusal-goodbye"


@dataclass(frozen=True)
class ConsentTicket:
    """The daemon's answer to a ConsentRequested."""

    decision: RuleDecision | None
    recording_ok: bool = True  # False: a MixMonitor the core wanted before the dialogue failed


class PromptPaths(Protocol):
    def path(self, prompt_id: str, language: str) -> tuple[str, str]: ...  # (path, version)


class VipLookup(Protocol):
    def is_vip(self, number: str) -> bool: ...


@dataclass(frozen=True)
class DialogSettings:
    default_language: str = "en"
    timeout_s: float = 5.0
    max_attempts: int = 3
    digit_yes: str = "1"
    digit_no: str = "2"
