"""Sans-IO: distrust the AMI blocks a caller forged with a blank line in a caller ID.

Measured on Asterisk 16.28 (tests/real/test_asterisk_ami_framing.py): a SIP From user
``1%0d%0a%0d%0aEvent%3a%20Hangup...`` is percent-decoded by PJSIP and copied raw into every
event that carries the caller ID, so the event ends early at the injected blank line and the
caller's bytes become whole blocks of their own (a forged ``Hangup`` for another call)::

    Event: Newchannel ... CallerIDNum: 1          <- genuine head, cut short
    Event: Hangup / Channel: PJSIP/victim-...     <- the caller's bytes
    CallerIDName: ... Uniqueid: ... Linkedid: ... <- the genuine remainder, no Event header

The decoded user part is truncated to 79 bytes; the display name is not decoded.

The invariant used: a genuine channel snapshot (``PChannel .. PLinkedid``, see
:mod:`ami.injection`) and a genuine ``Cdr`` never end inside their caller fields.  A block
with a snapshot head (``PChannelStateDesc`` + ``PCallerIDNum``) whose tail fields are not all
there, or a ``Cdr`` without its fields after ``Source``, is *cut*: the blocks after it are
distrusted (dropped, WARNING "AMI framing injection") until the missing field names have all
been seen, which only the genuine remainder provides (the caller's 79 bytes cannot spell the
~100-200 bytes of field names; the block that completes them is dropped too, since the
caller's last forged block may have merged into it).  Blocks cut again while distrusted add
what they miss.  At most :data:`MAX_DISTRUSTED` blocks are dropped per cut; past that the
guard trusts again and logs an ERROR.

It relies on Asterisk always sending the whole snapshot (16 to 22 do): hand-written
transcripts with abbreviated snapshots count as cut.

Probation (:meth:`FramingGuard.filter`, the client's path): the remainder closes the window, but
the caller's bytes are not over for sure: the same caller ID may come again in a later field of
the same event (a VarSet ``Value``, a Newexten ``AppData``), and a caller with room (a caller ID
set from a SIP header, no 79-byte bound) can spell a fake remainder and put forged blocks after
it.  So the blocks after a remainder are held until the read ends (or the next one, while a
partial block is pending; at most :data:`MAX_HELD`):

* an event the recorder acts on that names a channel without Asterisk's whole snapshot (or a
  Cdr without all its fields) is dropped: Asterisk writes every snapshot whole, the caller's 79
  bytes hold ``Event: MixMonitorMute / Uniqueid: <victim> / State: 1``, never a snapshot;
* a second block without Event/Response carrying the cut's missing fields, with NO cut opened
  since the first remainder, proves the first remainder was the caller's: the held blocks
  between are dropped (except heads of the cut channel that name no Uniqueid), counted in
  :attr:`forged`, and a resync is asked (:attr:`resync_wanted`), since genuine events may have
  been among them.  Found after the held blocks were released, it is an ERROR and a resync;
* a cut that opens in probation (the caller's channel's next event, cut again by the same caller
  ID; or another caller's) is decided by its own remainder (:meth:`FramingGuard._cut_closed`):
  if it names another Uniqueid for that channel than the remainder before it did, one of the two
  was forged (a caller with room can spell a cut head of its own channel after a fake remainder,
  so that Asterisk's genuine remainder looks like the new cut's): the held blocks are dropped as
  above.  The same Uniqueid: the channel's next event; the held blocks (other calls' genuine
  events) go on at the read's end.  While such a cut is open they are held across reads (bounded
  by :data:`MAX_HELD` and :data:`MAX_DISTRUSTED`).  Before, its remainder counted as a second
  remainder: a 5-byte caller ID (``1\r\n\r\n``) made every other call's events read between
  two of its events vanish, and asked for a resync per pair.

Every event block also has to carry Asterisk's envelope (:mod:`ami.genuine_envelope`, when the
guard has one: the client's does).  Block keys are read as panoramisk reads them (``\\r\\n``
lines): a caller's lone ``\\n``/``\\x1c`` in a value must not show the guard a snapshot tail the
parser never sees.  :attr:`attempts` (cuts + forged) is ``pbxrec_ami_injection_attempts_total``.

What this cannot see: a blank line in a value AFTER a complete snapshot outside any cut window
(no cut, no remainder: only the envelope check applies there), a whole forged snapshot and
envelope from a caller without the byte bound (including, after a fake remainder, a forged cut
head of ANOTHER channel than its own, whose closing remainder no earlier one contradicts, or a
head of its own channel without a blank line after it, which absorbs Asterisk's remainder into a
whole event so that no bare second remainder is seen: 43e13ed had the same gap), and
forged blocks that make the guard drop up to MAX_DISTRUSTED genuine events after a cut (denial
of service, bounded, then a resync).  The resyncs asked here are paced by the client
(:mod:`ami.resync_pacer`): a caller decides when they are asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ami.genuine_envelope import AsteriskEnvelope
from ami.injection import SNAPSHOT_PREFIXES
from ami.normalize import HANDLERS

log = logging.getLogger(__name__)

#: snapshot fields after the first caller field (ast_manager_build_channel_state_string_prefix)
SNAPSHOT_TAIL = ("calleridname", "connectedlinenum", "connectedlinename", "language", "accountcode",
                 "context", "exten", "priority", "uniqueid", "linkedid")
#: cdr_manager's fields after Source (the first caller-controlled one)
CDR_TAIL = ("destination", "destinationcontext", "callerid", "channel", "destinationchannel",
            "lastapplication", "lastdata", "starttime", "answertime", "endtime", "duration",
            "billableseconds", "disposition", "amaflags", "uniqueid", "userfield")
#: a whole snapshot, as Asterisk writes every one (head, then the tail above)
SNAPSHOT_FIELDS = ("channel", "channelstate", "channelstatedesc", "calleridnum", *SNAPSHOT_TAIL)
CDR_FIELDS = ("accountcode", "source", *CDR_TAIL)
MAX_DISTRUSTED = 8
#: blocks held after a cut's remainder while the read that may bring a second one is incomplete
MAX_HELD = 64
_HEAD = "channelstatedesc"


def missing_fields(keys: Mapping[str, Any], event: str) -> set[str]:
    """Field names a cut-short block lacks (empty for a complete block)."""
    missing: set[str] = set()
    for key in keys:
        if key.endswith(_HEAD):
            prefix = key[: -len(_HEAD)]
            if prefix + "calleridnum" in keys:
                missing.update(f for f in (prefix + t for t in SNAPSHOT_TAIL) if f not in keys)
    if event.lower() == "cdr" and "source" in keys:
        missing.update(f for f in CDR_TAIL if f not in keys)
    return missing


def incomplete_snapshot(keys: Mapping[str, Any], event: str) -> str:
    """The first field an event the recorder acts on lacks of a snapshot it names (or of a Cdr),
    "" when whole.

    Asterisk writes every snapshot whole (a cut one is caught by :func:`missing_fields`), so a
    block naming a channel (``Uniqueid``, ``Channel``, ``Linkedid``, or a prefixed one) without
    the rest of that snapshot was written by someone else: in the window after a cut's
    remainder, the caller's short forged block (``Event: MixMonitorStop / Uniqueid: <victim>``)."""
    if event not in HANDLERS:
        return ""  # the recorder does not act on it (e.g. TestEvent names a Channel without a snapshot)
    if event == "Cdr":
        return next((f for f in CDR_FIELDS if f not in keys), "")
    for prefix in SNAPSHOT_PREFIXES:
        if any(prefix + f in keys for f in ("uniqueid", "linkedid", "channel")):
            lacking = next((prefix + f for f in SNAPSHOT_FIELDS if prefix + f not in keys), "")
            if lacking:
                return lacking
    return ""


def block_keys(block: str) -> dict[str, str]:
    """Lower-case header name -> first value of one raw block, read as the client's parser reads
    it (:func:`ami.envelope.parse_message`: ``\\r\\n`` lines, ``Key: value``).  Not
    ``splitlines``: a caller's ``\\n``, ``\\x1c`` or ``\\u2028`` in a value would show the guard
    field names that the parser (and Asterisk) never see, e.g. a snapshot's missing tail, and
    hide a cut."""
    keys: dict[str, str] = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep and key:
            keys.setdefault(key.lower(), value.strip())
    return keys


class FramingGuard:
    """Feed every block in order: :meth:`filter` (the client: a read's blocks at once, with the
    probation below) or :meth:`accept` (one block; False means drop it)."""

    def __init__(self, max_distrusted: int = MAX_DISTRUSTED, *, envelope: AsteriskEnvelope | None = None,
                 max_held: int = MAX_HELD) -> None:
        self.max_distrusted = max_distrusted
        self.envelope = envelope  # None: the envelope is not checked (hand-written transcripts)
        self.max_held = max_held
        self._missing: set[str] = set()
        self._dropped_run = 0
        self._cut_event = ""
        self._cut_channel = ""
        self._cut_ident = ""  # the channel(s) of the snapshot(s) cut, as the remainder's Uniqueid names them
        self._cut_tail: frozenset[str] = frozenset()  # every field the current cut lacked
        self._tail: frozenset[str] = frozenset()  # probation: the fields a later remainder would carry
        self._tail_channel = ""
        self._last_tail: frozenset[str] = frozenset()  # of the last probation, for a late remainder
        self._held: list[tuple[str, dict[str, str]]] = []
        self._recut = False  # probation: a cut opened since the remainder (its remainder is not a 2nd one)
        self._closed = False  # the last block closed a cut with its remainder
        self._uids: dict[str, str] = {}  # probation: channel -> Uniqueid its remainders carried
        self.cuts = 0  # blocks that ended inside their caller fields
        self.dropped = 0  # blocks dropped as the caller's
        self.strays = 0  # blocks without Event/Response outside a cut (a cut we could not see)
        self.forged = 0  # blocks found to be the caller's outside a cut window (envelope, 2nd remainder)
        self.resync_wanted = False  # genuine events may have been dropped: ask the PBX for its state

    @property
    def distrusting(self) -> bool:
        return bool(self._missing)

    @property
    def quiet(self) -> bool:
        """No cut open, no block held in probation: nothing received so far can still be dropped."""
        return not self._missing and not self._tail and not self._held

    @property
    def attempts(self) -> int:
        """Injection attempts seen (pbxrec_ami_injection_attempts_total): cuts and forged blocks."""
        return self.cuts + self.forged

    def take_resync(self) -> bool:
        """A resync is wanted: this guard dropped blocks that may have been genuine events, or the
        envelope dropped an event for a missing Timestamp (Asterisk's own after a reload that
        turned timestampevents off, until it is learned again).  The client paces them."""
        envelope = self.envelope is not None and self.envelope.take_resync()
        wanted, self.resync_wanted = self.resync_wanted or envelope, False
        return wanted

    def accept(self, keys: Mapping[str, Any]) -> bool:
        """``keys``: lower-case header -> value of one block (a frames dict works as is)."""
        event = keys.get("event") or ""
        event = str(event[0] if isinstance(event, list) and event else event)
        if self._missing:
            return self._distrusted(keys, event)
        missing = missing_fields(keys, event)
        if missing:
            if not self._envelope_ok(keys, event):
                return False
            self.cuts += 1
            self._missing, self._dropped_run, self._cut_event = missing, 0, event
            self._cut_tail, self._cut_channel = frozenset(missing), _text(keys.get("channel"))
            self._cut_ident = "|".join(_text(keys.get(p + "channel")) for p in _uid_prefixes(missing))
            log.warning("AMI framing injection: %s event ends inside its caller fields (%s missing); "
                        "distrusting the blocks that follow until its remainder", event or "?",
                        ",".join(sorted(missing))[:160])
            return True  # the head is genuine; the normalizer's own checks still apply
        if "event" not in keys and "response" not in keys:
            if self._last_tail and self._last_tail <= keys.keys():
                self._late_remainder()
                return False
            self.strays += 1
            log.warning("AMI framing: a block without Event/Response (%s): an event was cut where "
                        "this guard cannot see it", ",".join(list(keys)[:6])[:120])
        return self._envelope_ok(keys, event)

    def filter(self, blocks: list[str], more: bool = False,
               failed: Callable[[str], None] | None = None) -> list[str]:
        """The blocks of one read that may be handled, in order.

        After a cut's remainder, the blocks that follow are held (probation) until the read
        ends: a caller with room to spell a fake remainder puts forged blocks after it and the
        genuine remainder after those.  A second block without Event/Response carrying the same
        missing fields, with no cut opened since, proves it; the held blocks are then dropped
        (counted, resync wanted).  A cut opened meanwhile is decided by the Uniqueid its remainder
        names (:meth:`_cut_closed`).  ``more``: a partial block is pending (the remainder may
        still come), so the held blocks wait for the next read, as they do while a cut opened in
        probation is still open (at most :data:`MAX_HELD` of them).  ``failed(block)``: a block
        whose checks raised is dropped and reported there; the others go on."""
        out: list[str] = []
        for block in blocks:
            try:
                self._one(block, out)
            except Exception:  # per-block containment (the caller logs it with the block's ids)
                if failed is None:
                    raise
                failed(block)
        # a cut opened in probation holds on across reads until its remainder decides (bounded)
        if self._tail and (not (more or self._recut) or len(self._held) >= self.max_held):
            out.extend(block for block, _ in self._held)
            self._held, self._last_tail, self._tail = [], self._tail, frozenset()
            self._recut, self._uids = False, {}
        return out

    def _one(self, block: str, out: list[str]) -> None:
        keys = block_keys(block)
        if self._tail and not self._missing and "event" not in keys and "response" not in keys \
                and self._tail <= keys.keys():
            out.extend(self._second_remainder())  # no cut open since the first remainder
            return  # the remainder itself carries no event
        holding, was_open = bool(self._tail), bool(self._missing)
        self._closed = False
        accepted = self.accept(keys)
        if was_open and not self._missing:
            self._cut_closed(block, out)
        elif holding and not was_open and self._missing:
            self._recut = True  # a new cut: its remainder is decided in _cut_closed, not a 2nd remainder
        if not accepted:
            return
        if not holding:
            out.append(block)
            return
        event = _text(keys.get("event"))
        lacking = incomplete_snapshot(keys, event) if event and not self._missing else ""
        if lacking and not missing_fields(keys, event):
            self.forged += 1
            log.warning("AMI framing injection: %s block after the remainder of a cut on channel %.80s names "
                        "a channel without Asterisk's whole snapshot (no %s); dropped (uniqueid %.64s)",
                        event[:40], self._tail_channel, lacking, _text(keys.get("uniqueid")))
            return
        self._held.append((block, keys))

    def _envelope_ok(self, keys: Mapping[str, Any], event: str) -> bool:
        why = self.envelope.verdict(keys) if self.envelope is not None and event else ""
        if why:
            self.forged += 1
            log.warning("AMI framing injection: %s block is not Asterisk's (%s); dropped (channel %.80s "
                        "uniqueid %.64s)", event[:40], why, _text(keys.get("channel")),
                        _text(keys.get("uniqueid")))
        return not why

    def _second_remainder(self) -> list[str]:
        """A second remainder of the probation's cut: the first one was the caller's, and the held
        blocks after it are the caller's too, except identity-less heads of the cut channel."""
        kept, dropped = [], 0
        for block, keys in self._held:
            cut_head = bool(missing_fields(keys, _text(keys.get("event"))))
            if cut_head and not {"uniqueid", "linkedid"} & keys.keys() \
                    and _text(keys.get("channel")) == self._tail_channel:
                kept.append(block)
            else:
                dropped += 1
        self._held = []
        if not dropped:  # only heads of the same channel between: its next events, each cut again
            return kept
        self.forged += dropped
        self.resync_wanted = True
        log.warning("AMI framing injection: a second remainder of the cut on channel %.80s: the first was "
                    "forged; %d block(s) after it dropped, resync asked", self._tail_channel, dropped)
        return kept

    def _cut_closed(self, block: str, out: list[str]) -> None:
        """A cut window just ended.  Its remainder names the cut channel's Uniqueid (Asterisk's,
        or a caller's guess in a fake remainder).  In probation, a cut of the same channel whose
        remainder names another Uniqueid than the one before means one of the two was forged, and
        the genuine one came last (Asterisk writes the remainder after the caller's bytes): the
        held blocks go as after a second remainder; so do they when it names the Uniqueid an
        earlier remainder gave another channel (no two channels share one).  Same Uniqueid: the
        channel's next event, cut again; the held blocks wait for the read's end as before (other
        calls' genuine events)."""
        recut, self._recut = self._recut, False
        if not self._closed:  # past MAX_DISTRUSTED: no remainder to decide with
            if recut and self._held:
                out.extend(self._second_remainder())
            return
        # Asterisk's Uniqueid comes after the caller's bytes that merged into its remainder: the
        # last one (a caller's Uniqueid line before its first blank line is in the cut head too,
        # and leaves this field out of the cut: "" never matches)
        prefixes = _uid_prefixes(self._cut_tail)
        uid = "|".join(_last_value(block, p + "uniqueid") for p in prefixes)
        channel = self._cut_ident if self._cut_ident.strip("|") else \
            "|".join(_last_value(block, p + "channel") for p in prefixes)  # a Cdr: Channel in its tail
        if recut and (self._uids.get(channel, uid) != uid
                      or any(c != channel and u == uid for c, u in self._uids.items())):
            self._tail_channel = channel
            out.extend(self._second_remainder())
            self._uids = {}
        if not uid.strip("|"):
            uid = "\x00"  # a remainder without a Uniqueid matches none (never Asterisk's)
        self._uids[channel] = uid

    def _late_remainder(self) -> None:
        self.forged += 1
        self.resync_wanted = True
        self._last_tail = frozenset()
        log.error("AMI framing injection: a remainder of the cut on channel %.80s came after its probation "
                  "ended: events before it may have been forged; resync asked", self._tail_channel)

    def _distrusted(self, keys: Mapping[str, Any], event: str) -> bool:
        self.dropped += 1
        self._dropped_run += 1
        self._missing = {f for f in self._missing if f not in keys} | missing_fields(keys, event)
        if event:
            log.warning("AMI framing injection: dropped forged %s block after a cut %s (channel %.80s "
                        "uniqueid %.64s)", event[:40], self._cut_event, keys.get("channel", ""),
                        keys.get("uniqueid", ""))
        if not self._missing:
            log.info("AMI framing: remainder of the cut %s seen after %d block(s); trusting again",
                     self._cut_event, self._dropped_run)
            self._tail, self._tail_channel = self._cut_tail, self._cut_channel  # probation (filter)
            self._closed = True
        elif self._dropped_run >= self.max_distrusted:
            log.error("AMI framing injection: remainder of the cut %s not seen within %d blocks "
                      "(still missing %s); trusting again, genuine events may have been dropped",
                      self._cut_event, self._dropped_run, ",".join(sorted(self._missing))[:160])
            self._missing = set()
            self.resync_wanted = True
        return False


def _uid_prefixes(fields: frozenset[str] | set[str]) -> list[str]:
    """The snapshot prefixes whose Uniqueid a cut lacks (in a stable order)."""
    return sorted(f[: -len("uniqueid")] for f in fields if f.endswith("uniqueid"))


def _last_value(block: str, key: str) -> str:
    """The last value of ``key`` (lower case) in a raw block, read as :func:`block_keys` reads it."""
    found = ""
    for line in block.split("\r\n"):
        name, sep, value = line.partition(": ")
        if sep and name.lower() == key:
            found = value.strip()
    return found


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return "" if value is None else str(value)
