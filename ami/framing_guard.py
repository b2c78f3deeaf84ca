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

What this cannot see: a blank line in a value AFTER a complete snapshot (VarSet ``Value``,
Newexten ``AppData``, UserEvent fields) when the dialplan copies caller data (e.g. a SIP
header) there without the caller ID carrying it too; caller IDs that reach Asterisk without
the 79-byte bound (dialplan ``Set(CALLERID(num)=${PJSIP_HEADER(...)})``), which could spell a
fake remainder; and forged blocks that make the guard drop up to MAX_DISTRUSTED genuine
events after a cut (denial of service, bounded).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

#: snapshot fields after the first caller field (ast_manager_build_channel_state_string_prefix)
SNAPSHOT_TAIL = ("calleridname", "connectedlinenum", "connectedlinename", "language", "accountcode",
                 "context", "exten", "priority", "uniqueid", "linkedid")
#: cdr_manager's fields after Source (the first caller-controlled one)
CDR_TAIL = ("destination", "destinationcontext", "callerid", "channel", "destinationchannel",
            "lastapplication", "lastdata", "starttime", "answertime", "endtime", "duration",
            "billableseconds", "disposition", "amaflags", "uniqueid", "userfield")
MAX_DISTRUSTED = 8
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


def block_keys(block: str) -> dict[str, str]:
    """Lower-case header name -> first value of one raw block (``\\r\\n`` or ``\\n`` lines)."""
    keys: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep and key and " " not in key:
            keys.setdefault(key.lower(), value.strip())
    return keys


class FramingGuard:
    """Feed every block in order (:meth:`accept`); False means drop it."""

    def __init__(self, max_distrusted: int = MAX_DISTRUSTED) -> None:
        self.max_distrusted = max_distrusted
        self._missing: set[str] = set()
        self._dropped_run = 0
        self._cut_event = ""
        self.cuts = 0  # blocks that ended inside their caller fields
        self.dropped = 0  # blocks dropped as the caller's
        self.strays = 0  # blocks without Event/Response outside a cut (a cut we could not see)

    @property
    def distrusting(self) -> bool:
        return bool(self._missing)

    def accept(self, keys: Mapping[str, Any]) -> bool:
        """``keys``: lower-case header -> value of one block (a frames dict works as is)."""
        event = keys.get("event") or ""
        event = str(event[0] if isinstance(event, list) and event else event)
        if self._missing:
            return self._distrusted(keys, event)
        missing = missing_fields(keys, event)
        if missing:
            self.cuts += 1
            self._missing, self._dropped_run, self._cut_event = missing, 0, event
            log.warning("AMI framing injection: %s event ends inside its caller fields (%s missing); "
                        "distrusting the blocks that follow until its remainder", event or "?",
                        ",".join(sorted(missing))[:160])
            return True  # the head is genuine; the normalizer's own checks still apply
        if "event" not in keys and "response" not in keys:
            self.strays += 1
            log.warning("AMI framing: a block without Event/Response (%s): an event was cut where "
                        "this guard cannot see it", ",".join(list(keys)[:6])[:120])
        return True

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
        elif self._dropped_run >= self.max_distrusted:
            log.error("AMI framing injection: remainder of the cut %s not seen within %d blocks "
                      "(still missing %s); trusting again, genuine events may have been dropped",
                      self._cut_event, self._dropped_run, ",".join(sorted(self._missing))[:160])
            self._missing = set()
        return False
