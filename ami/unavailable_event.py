"""``UserEvent(PbxrecUnavailable,PbxrecWhy: ${AGISTATUS},PbxrecReason: ${PBXREC_UNAVAILABLE})``.

The snippet (dialplan/asterisk/pbx-recorder.conf) raises it in its fail direction, after the
consent AGI ended without a result.  It is how the catalog learns why a call went on unrecorded
when no consent session could tell the core: a session refused at ``max_sessions`` whose AGI
environment arrived too late to be read, the recorder unreachable (``AGISTATUS=FAILURE``), a
dialogue refused by admission control.  ``PBXREC_UNAVAILABLE`` is set by the recorder in band
when it refuses (``capacity`` / ``stopping``); without it the reason is ``unavailable``.

The core takes it only for a call whose consent outcome is still unknown (never overriding a
decision, never starting anything): a forged event can at most label an unrecorded call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pbx_recorder.core import constants as C
from pbx_recorder.core import events as ev

if TYPE_CHECKING:
    from ami.normalize import Headers, Normalizer

UNAVAILABLE_EVENT = "PbxrecUnavailable"
#: AMI ``Filter`` for it (ami/actions.py EVENT_FILTERS, etc/manager.conf.d)
UNAVAILABLE_FILTER = "Event: UserEvent[[:space:]].*UserEvent: PbxrecUnavailable[[:space:]]"
_REASONS = {C.CONSENT_CAPACITY, C.CONSENT_STOPPING}


def reason_of(why: str, reason: str) -> str:
    """The catalog's reason: the recorder's own (set in band) or ``unavailable``."""
    del why  # AGISTATUS is logged by the caller; every status without our reason means the same
    reason = reason.strip().lower()
    return reason if reason in _REASONS else C.CONSENT_UNAVAILABLE


def on_unavailable(n: Normalizer, h: Headers, name: str, now: float, *,
                   text: Any) -> list[Any]:
    ids = n._identity(h, name)
    if ids is None:
        return []
    why, reason = text(h, "pbxrecwhy")[:16], text(h, "pbxrecreason")[:16]
    return [ev.ConsentUnavailable(at=now, call_id=ids[0], channel_id=ids[1],
                                  channel=text(h, "channel"), reason=reason_of(why, reason))]
