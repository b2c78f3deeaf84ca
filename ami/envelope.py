"""Sans-IO: one AMI block -> a panoramisk ``Message`` with Asterisk's own envelope, whatever a
caller ID injected (the live client's parser, :func:`parse_message`).

A caller number ``1\\r\\nEvent: x`` (PJSIP percent-decodes ``%0d%0a`` in the SIP From user, see
:mod:`ami.injection`) reaches the event text raw, so the block carries a second ``Event``
header.  :func:`message_from_block` keeps a repeated header as a list, and panoramisk
reads the envelope as scalars: ``message['event'].lower()`` in ``handle_message`` (AttributeError)
and ``self.responses.get(message.id)`` (TypeError for a list ``ActionID``/``CommandID``).  Raised
out of ``data_received``, either closes the AMI transport (every pending action fails, the rest of
the read is lost) on every event of that call.  :func:`repair` gives each message the envelope
Asterisk wrote, before panoramisk sees it.

Where Asterisk writes the envelope (checked in the 16.28 and 22 sources):

* an event: ``Event``, ``Privilege``, ``Timestamp``, (``SequenceNumber``/``File``/``Line``/``Func``
  with manager debug), ``SystemName``, then the body (main/manager.c, ``__manager_event_sessions_va``);
* a reply: ``Response``, ``ActionID``, ``EventList``, ``Message``, then the action's own data
  (``astman_send_response_full``);
* a list item: ``Event: CoreShowChannel``, ``ActionID``, then the channel snapshot
  (``action_coreshowchannels``); a list end: ``Event``, ``ActionID``, ``EventList``, ``ListItems``
  (``astman_send_list_complete_start_common``).

So every envelope header comes before the first caller-controlled field (the snapshot's
``CallerIDNum``/``ConnectedLineNum``; the names are C-escaped by Asterisk), and whatever a caller
injects lands after it: for the headers in :data:`FIRST_WINS` the FIRST value is the genuine one.
Three more rules follow from what Asterisk never writes:

* a block is an event or a reply, decided by whichever of ``Event``/``Response`` comes first;
  the other one is injected and removed (an injected ``Response: Success`` in a list item would
  make panoramisk end the CoreShowChannels list there, and the calls after it would miss the
  resync);
* ``SubEvent`` is removed: Asterisk 16-22 never send it, and panoramisk ends a list on
  ``SubEvent: End``;
* ``CommandID`` is removed: Asterisk writes ``CommandId`` only in AsyncAGI events (after the
  snapshot, the recorder uses FastAGI), the recorder never sends one, and panoramisk would match a
  reply by it before the ActionID.

Identity headers (``Channel``, ``Uniqueid``, ``Linkedid``, ``CallerIDNum`` ...) are NOT decided
here: they stay lists for :mod:`ami.injection`, whose first/last rules follow the snapshot layout
(``Uniqueid``/``Linkedid`` come after the caller fields, so there the LAST value is genuine).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from panoramisk.message import Message

from ami.injection import resolve
from pbx_recorder.core.masking import mask_number
from pbx_recorder.core.naming import make_call_id

#: written by Asterisk before any caller-controlled field: the first value is the genuine one.
#: panoramisk reads event/response/actionid/eventlist/message as scalars, event_time reads timestamp
FIRST_WINS = frozenset({"event", "response", "actionid", "eventlist", "message", "privilege", "timestamp",
                        "systemname"})
#: never written by Asterisk 16-22 in a message the recorder uses; panoramisk acts on them
NEVER_GENUINE = frozenset({"subevent", "commandid"})
_KINDS = ("event", "response")


def needs_repair(spelling: Mapping[str, str], repeated: bool) -> bool:
    """The cheap test for the hot path: ``spelling`` maps lower-case header -> stored key."""
    return repeated or ("event" in spelling and "response" in spelling) or \
        any(key in spelling for key in NEVER_GENUINE)


def repair(headers: dict[str, Any], spelling: Mapping[str, str]) -> tuple[str, ...]:
    """Give ``headers`` (stored keys, repeats as lists in occurrence order) Asterisk's envelope, in
    place; return the lower-case names repaired (``()`` when nothing was wrong)."""
    repaired: list[str] = []
    kind = next((k.lower() for k in headers if k.lower() in _KINDS), "")
    for lower, key in spelling.items():
        if key not in headers:
            continue
        if lower in NEVER_GENUINE or (lower in _KINDS and lower != kind):
            del headers[key]
            repaired.append(lower)
        elif lower in FIRST_WINS and isinstance(headers[key], list):
            values = headers[key]
            headers[key] = values[0] if values else ""
            repaired.append(lower)
    return tuple(repaired)


EOL = "\r\n"


def message_from_block(block: str) -> Message | None:
    """Like panoramisk's ``Message.from_line``, but a header repeated in another letter case
    (``Channel`` then an injected ``channel``) becomes a list in occurrence order instead of
    silently replacing the first one, so :mod:`ami.injection` sees the repeat; and the envelope
    is Asterisk's (:func:`repair`: ``Event``, ``Response``, ``ActionID`` ... one value each)."""
    return parse_message(block)[0]


def parse_message(block: str) -> tuple[Message | None, tuple[str, ...]]:
    """:func:`message_from_block` and the envelope headers it had to repair (lower-case)."""
    lines = block.split(EOL)
    content = ""
    if lines[0].startswith(("Response: Follows", "Response: Fail")):
        content = lines.pop()
        while not content and lines:
            content = lines.pop()
    headers: dict[str, Any] = {}
    spelling: dict[str, str] = {}  # lower-case -> first spelling seen
    repeated = False
    for line in lines:
        if ": " not in line:
            continue
        key, value = line.split(": ", 1)
        lower = key.lower()
        if lower in Message.quoted_keys:
            value = unquote(value).strip()
        first = spelling.setdefault(lower, key)
        if first in headers:
            old = headers[first]
            headers[first] = [*old, value] if isinstance(old, list) else [old, value]
            repeated = True
        else:
            headers[first] = value
    if "event" not in spelling and "response" not in spelling:
        return None, ()
    repaired = repair(headers, spelling) if needs_repair(spelling, repeated) else ()
    return Message(headers, content), repaired


def block_context(headers: Any, node: str, boot: str) -> str:
    """``event=.. call=.. channel=.. uniqueid=.. linkedid=.. caller=..`` of a block for a log line:
    the identity :mod:`ami.injection` would trust, the caller's number masked, nothing raw."""
    folded = {str(k).lower(): v for k, v in headers.items()}
    name = (_first(folded.get("event")) or _first(folded.get("response")))[:40]
    r = resolve(folded, name)
    linkedid, uniqueid = str(r.get("linkedid", ""))[:64], str(r.get("uniqueid", ""))[:64]
    try:
        call = make_call_id(node, linkedid, boot) if linkedid else "-"
    except ValueError:
        call = "-"
    caller = r.get("calleridnum", "")
    return (f"event={name or '?'} call={call} channel={str(r.get('channel', ''))[:80] or '-'} "
            f"uniqueid={uniqueid or '-'} linkedid={linkedid or '-'} caller={mask_number(caller) or '-'}")


def _first(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return "" if value is None else str(value)
