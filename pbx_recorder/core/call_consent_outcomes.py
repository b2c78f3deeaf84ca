"""How the call state machine records consent outcomes that are not the caller's answer.  Pure.

* **The dialogue's first prompt starts** (:class:`events.ConsentAsked`): the call keeps when;
  a caller who hangs up before it is catalogued ``hangup`` with the flag and evidence
  ``hangup_before_question`` (they were never asked), not as one who heard the question and left
  -- once the PBX's consent sessions are seen to report it (Asterisk's do; FreeSWITCH's not yet).
* **The snippet's fail direction, reported by the dialplan** (``UserEvent(PbxrecUnavailable)``
  -> :class:`events.ConsentUnavailable`): when no consent session told the core anything (a
  session refused before its environment could be read, the recorder unreachable), the call is
  not recorded with that reason (``capacity``, ``stopping``, ``unavailable``), replacing the
  answered-without-the-Gosub verdict ``no_consent_path`` if its grace ran out first.  A call
  whose consent outcome is already known keeps it (the report only confirms the fail direction).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pbx_recorder.core import constants as C
from pbx_recorder.core import events as E
from pbx_recorder.core.call_model import Call
from pbx_recorder.core.commands import Command

if TYPE_CHECKING:
    from pbx_recorder.core.calls import CallBook

NO_CONSENT_PATH = "no_consent_path"
QUESTION_STARTED = "question_started_at"


def on_consent_asked(book: CallBook, ev: E.ConsentAsked, now: float) -> list[Command]:
    book.question_start_reported = True  # this PBX's consent sessions report it (Asterisk's do)
    call = book.find(ev.call_id)
    if call is None or call.state != C.STATE_CONSENT_PENDING:
        return []
    evidence = dict(call.consent_evidence or {})
    evidence.setdefault(QUESTION_STARTED, ev.at)
    call.consent_evidence = evidence
    return []


def hangup_evidence(call: Call, at: float, reported: bool) -> dict[str, Any]:
    """The evidence for a caller who hung up while the dialogue was pending.  ``reported``: the
    consent sessions of this PBX report the first prompt (``ConsentAsked``; FreeSWITCH's do not
    yet, so there a hang-up is never taken for one before the question)."""
    evidence = dict(call.consent_evidence or {})
    evidence.update(decision="hangup", decided_at=at)
    if reported and QUESTION_STARTED not in evidence:
        evidence[C.FLAG_HANGUP_BEFORE_QUESTION] = True
        call.flag(C.FLAG_HANGUP_BEFORE_QUESTION)
    return evidence


def already_settled(call: Call) -> bool:
    """A consent outcome is known (granted, refused, failed, capacity...): keep it."""
    return bool(call.consent_decision)


def replace_no_consent_path(call: Call, reason: str) -> None:
    """The grace verdict "answered without passing the Gosub" was wrong: the Gosub ran and took
    its fail direction.  Keep the rule decision (not recorded) with the true reason."""
    if NO_CONSENT_PATH not in call.flags:
        return
    call.flags = [f for f in call.flags if f != NO_CONSENT_PATH]
    if call.decision is not None and call.decision.get("reason") == NO_CONSENT_PATH:
        call.decision = {**call.decision, "reason": f"consent_{reason}"}
