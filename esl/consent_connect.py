"""What the outbound ``connect`` reply tells a FreeSWITCH consent session, and answering the
caller's leg (esl/consent_session.py): the dialplan's ``PBXREC_*`` inputs, kept only when plain;
whether the channel is answered; the prompt file FreeSWITCH's playback needs."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

from consent.dialogue_runner import safe_prompt_path
from consent.prompts import AUDIO_EXTENSIONS
from esl import commands as esc
from esl.outbound_channel import OutboundChannel
from pbx_recorder.errors import EslError

log = logging.getLogger(__name__)

ANSWER_RETRIES_S = (0.1, 0.3)  # pauses before answering again after a bare "-ERROR"
_INPUT = re.compile(r"[A-Za-z0-9_.+*#@-]{0,128}")


async def answer_call(ch: OutboundChannel, leg: str, call_id: str) -> None:
    """``uuid_answer`` the caller's leg.  A bare ``-ERROR`` (FreeSWITCH's answer did not succeed;
    seen once for one of 20 calls arriving at once, the caller then answered by the dialplan's
    fail direction and the call unrecorded) is tried again after a short pause: answering is
    idempotent (an answered channel answers "+OK").  ``-ERR No such channel`` and a third
    refusal fail the session (closed), as before."""
    line = esc.api("uuid_answer", esc.check_uuid(leg, call_id), call_id=call_id)
    for pause in (*ANSWER_RETRIES_S, None):
        try:
            await ch.api(line)
            return
        except EslError as exc:
            if pause is None or "no such channel" in str(exc).lower():
                raise
            log.warning("uuid_answer refused, answering again in %.1f s call=%s: %s", pause, call_id, exc)
            await asyncio.sleep(pause)


def dialplan_input(headers: dict[str, str], name: str) -> str:
    """A ``PBXREC_*`` input the dialplan set: kept only when it is plain (else dropped, logged)."""
    value = headers.get(f"variable_{name}", "").strip()
    if not _INPUT.fullmatch(value):
        log.warning("dialplan variable %s refused (unexpected characters or too long)", name)
        return ""
    return value


def answered(headers: dict[str, str]) -> bool:
    """The ``connect`` reply says the channel is answered (the snippet used to answer first)."""
    return headers.get("Answer-State", "") == "answered"


def audio_file(base: str) -> str:
    """FreeSWITCH's playback needs the extension: the first audio file beside ``base``."""
    for ext in AUDIO_EXTENSIONS:
        if Path(base + ext).is_file():
            return safe_prompt_path(base + ext)
    raise FileNotFoundError(f"no audio file for prompt {Path(base).name}")
