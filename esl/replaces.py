"""An attended transfer a SIP phone completes itself: REFER with ``Replaces`` (RFC 3891), issue 7.

The agent's phone holds the caller's call and places the consultation as a call of its own
(its own root, so its own catalog row).  Its ``REFER`` in the caller's dialog names the
consultation dialog in ``Replaces``; mod_sofia (``sofia.c`` 1.11.1, ``mark_transfer_record``)
then sets ``transfer_source`` = ``<epoch>:<own uuid>:att_xfer:<user@host>/<user@host>`` on the
two far ends (the held caller and the colleague), ``uuid_bridge``s them, and hangs the agent's
two legs up with ``ATTENDED_TRANSFER``.

``uuid_bridge`` then overwrites ``transfer_source`` with its own ``<epoch>:<uuid>:uuid_br:<other
leg>`` (seen on the real 1.11.1), so the mark survives only in ``transfer_history`` (an
``ARRAY::a|:b`` list).  A CHANNEL_BRIDGE whose channel's ``transfer_history`` holds a new
``att_xfer`` entry and that joins two legs of **different** calls is that transfer (an
``att_xfer`` application keeps every leg in the caller's call: esl/normalize.attended_transfer).
Both calls get ``Transferred(kind="attended")`` naming the other (``target_call_id``): the core
links them both ways (the catalog's ``transfer`` entry, ``calls show``).  The transferer named
in each is the agent leg that leaves (the bridge partner of each far end), so a recording on
the caller's leg runs on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pbx_recorder.core import events as ev

_ATT_XFER = re.compile(r"\d{1,20}:[0-9A-Za-z-]{1,64}:att_xfer:[^|]{0,300}")  # one history entry


def replaces_transfer(n: Any, h: Mapping[str, str], ids: tuple[str, str], at: float, a_leg: str,
                      b_leg: str) -> list[Any]:
    """``n``: the EslNormalizer (its roots, bridge partners and transfers already reported)."""
    leg = ids[1]
    if not a_leg or not b_leg or a_leg == b_leg:
        return []
    other = b_leg if a_leg == leg else a_leg
    own_root, other_root = n._roots.get(leg, ""), n._roots.get(other, "")
    if not own_root or not other_root or own_root == other_root:
        return []  # (checked first: a bridge within one call reads no variable, absent ones scan the event)
    marks = _ATT_XFER.findall(h.get("variable_transfer_history", "") or h.get("variable_transfer_source", ""))
    source = marks[-1] if marks else ""
    if not source or n.transfers.get(leg) == source:
        return []
    n.transfers[leg] = source
    own_call, other_call = ids[0], n.call_id(other_root)
    own_agent, other_agent = n.partners.get(leg, ""), n.partners.get(other, "")
    return [
        ev.Transferred(at=at, call_id=own_call, channel_id=own_agent, channel=own_agent, kind="attended",
                       target_call_id=other_call, target_channel=other),
        ev.Transferred(at=at, call_id=other_call, channel_id=other_agent, channel=other_agent,
                       kind="attended", target_call_id=own_call, target_channel=leg),
    ]
