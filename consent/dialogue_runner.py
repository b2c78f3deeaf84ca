"""Runs the pure :class:`pbx_recorder.consent_policy.ConsentDialog` over an AGI channel.

The dialog decides; this module only plays prompts and collects digits:

    PlayNotice / PlayRetry -> ``STREAM FILE <prompt> ""`` (not skippable), then next_step()
    AskDigit               -> the question with barge-in, then a wait for one digit (AgiPromptChannel.ask)
                              -> on_digit (with the digit's time relative to the question) / on_timeout
    hang-up (HANGUP line, 511, result=-1, EOF) at any point -> on_hangup (fail closed)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pbx_recorder.consent_policy import AskDigit, ConsentDialog, Done, PlayNotice, PlayRetry

log = logging.getLogger(__name__)

MAX_STEPS = 64  # a dialog that has not ended after this many steps is a bug: fail closed
_SAFE_PROMPT = re.compile(r"[A-Za-z0-9/._-]{1,300}")


@dataclass(frozen=True, slots=True)
class DigitAnswer:
    """What :meth:`PromptChannel.ask` heard: a digit ("" = none) and when, relative to the
    question: ``prompt_offset_s`` after its start (it interrupted the question) or
    ``after_prompt_s`` after its end."""

    digit: str
    prompt_offset_s: float | None = None
    after_prompt_s: float | None = None


class ChannelGone(Exception):
    """The caller hung up (or the AGI connection ended) during the dialogue."""


class PromptChannel(Protocol):
    def play(self, path: str) -> None: ...

    def ask(self, path: str, timeout_ms: int) -> DigitAnswer | str: ...


def safe_prompt_path(path: str) -> str:
    """Prompt paths go unquoted into AGI commands: refuse anything outside a plain alphabet."""
    if not _SAFE_PROMPT.fullmatch(path):
        raise ValueError(f"unsafe prompt path {path[:80]!r}")
    return path


def run_dialogue(
    dialog: ConsentDialog,
    channel: PromptChannel,
    prompt_path: Callable[[str], str],
    clock: Callable[[], float],
    call_id: str = "",
) -> Done:
    step = dialog.next_step(clock())
    try:
        for _ in range(MAX_STEPS):
            if isinstance(step, Done):
                return step
            if isinstance(step, PlayNotice | PlayRetry):
                channel.play(safe_prompt_path(prompt_path(step.prompt)))
                step = dialog.next_step(clock())
            elif isinstance(step, AskDigit):
                heard = channel.ask(safe_prompt_path(prompt_path(step.prompt)), int(step.timeout_s * 1000))
                answer = heard if isinstance(heard, DigitAnswer) else DigitAnswer(heard[:1])
                digits = answer.digit
                now = clock()
                step = (dialog.on_digit(digits[0], now, prompt_offset_s=answer.prompt_offset_s,
                                        after_prompt_s=answer.after_prompt_s)
                        if digits else dialog.on_timeout(now))
                log.debug(
                    "consent attempt %d call=%s: %s",
                    step_attempt(dialog),
                    call_id,
                    "digit" if digits else "timeout",
                )
            else:  # pragma: no cover - the Step union is closed
                raise TypeError(f"unknown consent step {step!r}")
    except ChannelGone:
        log.info("caller hung up during the consent dialogue call=%s", call_id)
        return as_done(dialog.on_hangup(clock()))
    raise RuntimeError(f"consent dialogue did not end within {MAX_STEPS} steps (call {call_id})")


def step_attempt(dialog: ConsentDialog) -> int:
    return dialog.evidence.attempts


def as_done(step: object) -> Done:
    if not isinstance(step, Done):  # on_hangup always ends the dialog
        raise RuntimeError("consent dialog did not end on hang-up")
    return step
