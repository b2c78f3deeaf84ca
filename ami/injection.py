"""Sans-IO: pick the genuine value of each AMI header when a caller injected copies.

Asterisk 16 copies a percent-decoded CRLF from the SIP From user/display name straight
into every AMI event that carries the caller ID, so ``CallerIDNum: 1\\r\\nChannel: Local/1@x``
arrives as two headers.  :mod:`ami.frames` and panoramisk keep a repeated header as a list
in occurrence order; that order is all this module needs.

A channel snapshot (``ast_manager_build_channel_state_string_prefix``, checked against the
16.28 binary) is, for a prefix ``P``::

    PChannel PChannelState PChannelStateDesc PCallerIDNum PCallerIDName PConnectedLineNum
    PConnectedLineName PLanguage PAccountCode PContext PExten PPriority PUniqueid PLinkedid

The caller-controlled values (CallerIDNum .. ConnectedLineName) sit in the middle, so in
an event with ONE snapshot an injected line always lands after the genuine fields before
them (take the FIRST value) and before the genuine fields after them (take the LAST).
Bridge fields (BridgeEnter/Leave) and the event envelope come before the snapshot; the
event's own extras (Cause, Variable/Value, MixMonitorID, Queue ...) come after it.

Checked again in the 16.28 and 22 sources (main/manager_channels.c): the order above is the
same; the 18-22 branches append ``Tenantid`` after ``Linkedid``; ``ChanVariable`` lines follow
(their values C-escaped).  CallerIDName and ConnectedLineName are C-escaped too
(``ast_escape_c_alloc``), so a raw CR/LF comes in through CallerIDNum or ConnectedLineNum.
Hence, for a caller who repeats them: ``Channel`` (before the caller fields) -> FIRST;
``CallerIDNum`` -> FIRST (the genuine value, cut at the caller's line break);
``Uniqueid``/``Linkedid`` (after) -> LAST.  Through the caller ID a caller cannot steer which
call a one-snapshot event is attributed to.  The envelope (``Event``, ``Response``, ``ActionID``
...) is made scalar before this module, by :mod:`ami.envelope` (first value: Asterisk writes it
before the body).
Limits of LAST: an event field after the snapshot that itself carries caller data (VarSet
``Value``, Newexten ``AppData`` when the dialplan copies caller data there) puts the caller's
copies after the genuine ones.  Such a frame is tainted as soon as it repeats an identity
header, and ``Normalizer._untaint`` drops it when its Uniqueid/Linkedid contradict the channel
registry; the AMI filter keeps VarSet and Newexten out, and the core ignores VariableSet.

Events with several snapshots (AgentConnect, transfers) and ``Cdr`` (its own layout with
LastData, which can also carry caller data, after Channel) have no such guarantee: if any
identity header is repeated they are *tainted*: identity comes from the normalizer's
channel registry and every other repeated field is its first value, sanitized.

A DOUBLE CRLF goes further (measured on 16.28, tests/real/test_asterisk_ami_framing.py): the
event ends at the injected blank line and the caller's bytes are read as whole events of their
own, e.g. ``Event: Hangup / Uniqueid: <a live call's>`` (46-70 bytes: it fits the 79 decoded
bytes PJSIP keeps of the From user; the display name is not decoded).  Nothing here can see that,
since each forged block is well-formed.  The defenses sit before this module, in the client's
block loop (:meth:`ami.framing_guard.FramingGuard.filter`):

* a cut: an event whose channel snapshot or Cdr ends inside its caller fields; the blocks after it
  are dropped until its remainder (every missing field name, more than 79 bytes) is seen, bounded
  to 8 blocks; the guard reads lines as panoramisk does (``\\r\\n`` only), so a lone ``\\n`` or
  ``\\x1c`` in a value cannot show it a tail the parser never sees;
* probation after the remainder: the caller's bytes may come again (a VarSet ``Value`` or Newexten
  ``AppData`` copying the caller ID after the snapshot), or the remainder may have been the
  caller's own (a caller ID without the 79-byte bound).  Until the read ends, an event naming a
  channel without Asterisk's whole snapshot is dropped, and a second remainder drops what came
  after the first (resync asked, as blocks of other calls may be among them).  The caller's
  channel's next event, cut again, is not a second remainder: its remainder names the same
  Uniqueid, and the other calls' events read in between go on;
* the envelope (:mod:`ami.genuine_envelope`): every block claiming to be an event must carry
  ``Privilege`` (or be an item of a list we asked for), and a ``Timestamp`` once this connection's
  events (of that ``SystemName``, when they carry one) are stamped; ``SystemName`` itself is not
  required.  A forged block after a complete snapshot (a BlindTransfer ``Extension``) no longer
  fits the 79 bytes with a timestamp;
* :meth:`ami.client.AmiClient._confirm_hangup`: before a ``Hangup`` is passed on, ``Getvar
  UNIQUEID`` by its Uniqueid; a channel Asterisk still has was not hung up (a genuine Hangup
  is published after the channel is unlinked: "No such channel").

What remains possible: without ``timestampevents`` a caller with 70+ bytes after a complete
snapshot and OUTSIDE any cut window (a field written only there, never in the snapshot) can still
spell ``Privilege`` and a short event; a caller without the byte bound can spell a whole snapshot
and envelope after a complete one (no cut, no remainder, nothing to compare); a second remainder
arriving in a later read than :data:`ami.framing_guard.MAX_HELD` blocks is found after the fact
(ERROR, resync); genuine events dropped in a window (a caller faking cuts) are recovered only as
far as a resync recovers them (live channels, ended calls); the cut event itself reaches the
normalizer as a head without Uniqueid/Linkedid and is dropped as malformed.  Asterisk itself
should refuse CR/LF in caller IDs; until then, refuse them at the SBC/proxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ami.frames import Frame

#: values that legitimately repeat (kept as lists)
MULTI_VALUED = frozenset({"chanvariable", "output", "_body"})
#: the caller-controlled fields of a snapshot, where an injection starts
CALLER_FIELDS = ("calleridnum", "calleridname", "connectedlinenum", "connectedlinename")
#: before the caller fields: the envelope, bridge snapshot, channel head
FIRST_FIELDS = frozenset({
    "event", "privilege", "timestamp", "systemname", "actionid", "response",
    "channel", "channelstate", "channelstatedesc",
    "bridgeuniqueid", "bridgetype", "bridgetechnology", "bridgecreator", "bridgename",
    "bridgenumchannels", "bridgevideosourcemode",
})
#: events carrying exactly one (unprefixed) channel snapshot
SINGLE_SNAPSHOT = frozenset({
    "Newchannel", "Newstate", "Hangup", "VarSet", "MixMonitorStart", "MixMonitorStop",
    "MixMonitorMute", "QueueCallerJoin", "BridgeEnter", "BridgeLeave", "CoreShowChannel",
    "Newexten", "NewCallerid", "NewConnectedLine", "NewAccountCode", "HangupRequest",
    "SoftHangupRequest", "DialBegin", "DialEnd",
})
#: snapshot prefixes whose identity the registry can vouch for
SNAPSHOT_PREFIXES = ("", "dest", "transferer", "transferee", "origtransferer", "secondtransferer",
                     "transfertarget")
IDENTITY_SUFFIXES = ("channel", "uniqueid", "linkedid")


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def sanitize(value: object) -> str:
    """Text without control characters (C0, DEL, C1): a value can never carry a line break."""
    return _CONTROL.sub("", value if isinstance(value, str) else str(value))


def is_identity(key: str) -> bool:
    return key.endswith(IDENTITY_SUFFIXES)


def values(h: Mapping[str, Any], key: str) -> list[str]:
    value = h.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return [sanitize(v) for v in value]
    return [sanitize(value)]


class Resolved(dict[str, Any]):
    """Lower-case header -> the one value the normalizer may trust (a plain dict)."""

    tainted: bool = False  # an identity header (Channel, Uniqueid, Linkedid, prefixed) was repeated
    positional: bool = False  # one snapshot: the first/last rule gave the genuine identity
    repeated: tuple[str, ...] = ()


def _single_rule(key: str) -> str:
    """One-snapshot events: FIRST for what Asterisk writes before or in the caller fields
    (envelope, bridge, Channel/ChannelState, the caller fields), LAST for what it writes after
    them (Language .. Uniqueid, Linkedid, the event's own fields)."""
    if key in FIRST_FIELDS or key in CALLER_FIELDS:
        return "first"
    return "last"


def _cdr_rule(key: str) -> str:
    # Cdr: AccountCode Source Destination DestinationContext CallerID Channel DestinationChannel
    #      LastApplication LastData StartTime ... UniqueID UserField [mapped variables]
    if key in ("event", "privilege", "timestamp", "systemname", "accountcode", "source", "callerid",
               "destination", "lastdata"):
        return "first"
    return "last"


def resolve(h: Mapping[str, Any], name: str) -> Resolved:
    """Choose one value per header; mark the frame tainted when identity is repeated."""
    fast = _resolve_plain(h, name)
    if fast is not None:
        return fast
    return _resolve_repeated(h, name)


def _resolve_plain(h: Mapping[str, Any], name: str) -> Resolved | None:
    """The hot path: no header repeated (in any letter case) and every value a string.
    Returns None as soon as the frame needs the full rules below."""
    try:
        joined = "".join(h.values())  # TypeError: a repeated header (list) or a non-string
    except TypeError:
        return None
    if type(h) is Frame:  # our parser: keys already folded, repeats already lists
        keys = list(h)
    else:
        keys = [k.lower() for k in h]
        if len(set(keys)) != len(keys):
            return None
    if joined.isprintable():
        out = Resolved(zip(keys, h.values(), strict=True))
    else:
        out = Resolved(zip(keys, (_CONTROL.sub("", v) for v in h.values()), strict=True))
    out.positional = name in SINGLE_SNAPSHOT
    return out


def _resolve_repeated(h: Mapping[str, Any], name: str) -> Resolved:
    out = Resolved()
    merged: dict[str, Any] = {}
    for k, value in h.items():  # case variants ("channel" after "Channel") are repeats too
        key = str(k).lower()
        if key in merged:
            old = merged[key] if isinstance(merged[key], list) else [merged[key]]
            merged[key] = old + (value if isinstance(value, list) else [value])
        else:
            merged[key] = value
    h = merged
    repeated = [key for key, value in h.items() if isinstance(value, list) and key not in MULTI_VALUED]
    tainted = any(is_identity(key) for key in repeated)
    if name in SINGLE_SNAPSHOT:
        rule = _single_rule
    elif name == "Cdr":
        rule = _cdr_rule
    else:
        rule = None  # several snapshots (or unknown layout): first value, sanitized
    for key, value in h.items():
        if key in MULTI_VALUED:
            out[key] = [sanitize(v) for v in value] if isinstance(value, list) else sanitize(value)
        elif isinstance(value, list):
            if not value:
                out[key] = ""
            elif rule is None or (tainted and rule is _cdr_rule) or rule(key) == "first":
                out[key] = sanitize(value[0])
            else:
                out[key] = sanitize(value[-1])
        else:
            out[key] = sanitize(value) if value is not None else ""
    out.tainted = tainted
    out.repeated = tuple(repeated)
    # a tainted single-snapshot event is still positionally reliable; the others are not
    out.positional = name in SINGLE_SNAPSHOT
    return out


def snapshot_prefixes(h: Mapping[str, Any]) -> Iterable[str]:
    """Prefixes of the channel snapshots an event carries (by their Uniqueid/Channel)."""
    for prefix in SNAPSHOT_PREFIXES:
        if prefix + "uniqueid" in h or prefix + "channel" in h:
            yield prefix
