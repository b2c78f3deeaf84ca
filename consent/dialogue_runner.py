"""Runs the pure :class:`pbx_recorder.core.consent_policy.ConsentDialog` over a prompt channel.

The dialog decides; the runner only plays prompts and collects digits:

    PlayNotice / PlayRetry -> ``channel.play(prompt)`` (not skippable), then next_step()
    AskDigit               -> ``channel.ask(question, timeout)``: the question with barge-in, then a
                              wait for one digit -> on_digit (with the digit's time relative to the
                              question) / on_timeout
    ChannelGone at any point -> on_hangup (fail closed)

:func:`run_dialogue` runs the FreeSWITCH dialogue (esl/outbound_channel.py is its channel); the
Asterisk session (consent/async_session.py) walks the same steps itself, with its admission check
between them.  Both share :data:`MAX_STEPS`, :class:`ChannelGone` and :func:`safe_prompt_path`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pbx_recorder.core.consent_policy import AskDigit, ConsentDialog, Done, PlayNotice, PlayRetry

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
    async def play(self, path: str) -> None: ...

    async def ask(self, path: str, timeout_ms: int) -> DigitAnswer: ...


def safe_prompt_path(path: str) -> str:
    """Prompt paths go unquoted into AGI commands: refuse anything outside a plain alphabet."""
    if not _SAFE_PROMPT.fullmatch(path):
        raise ValueError(f"unsafe prompt path {path[:80]!r}")
    return path


async def run_dialogue(
    dialog: ConsentDialog,
    channel: PromptChannel,
    prompt_path: Callable[[str], str],
    clock: Callable[[], float],
    call_id: str = "",
) -> Done:
    """Walk ``dialog`` to its end over ``channel``; a hang-up ends it as the dialog says (never as
    consent); a dialog still going after :data:`MAX_STEPS` steps is a bug (RuntimeError)."""
    step = dialog.next_step(clock())
    try:
        for _ in range(MAX_STEPS):
            if isinstance(step, Done):
                return step
            if isinstance(step, PlayNotice | PlayRetry):
                await channel.play(prompt_path(step.prompt))
                step = dialog.next_step(clock())
            elif isinstance(step, AskDigit):
                answer = await channel.ask(prompt_path(step.prompt), int(step.timeout_s * 1000))
                now = clock()
                step = (dialog.on_digit(answer.digit, now, prompt_offset_s=answer.prompt_offset_s,
                                        after_prompt_s=answer.after_prompt_s)
                        if answer.digit else dialog.on_timeout(now))
    except ChannelGone:
        log.info("caller hung up during the consent dialogue call=%s", call_id)
        return as_done(dialog.on_hangup(clock()))
    raise RuntimeError(f"consent dialogue did not end within {MAX_STEPS} steps (call {call_id})")


def as_done(step: object) -> Done:
    if not isinstance(step, Done):  # on_hangup always ends the dialog
        raise RuntimeError("consent dialog did not end on hang-up")
    return step
