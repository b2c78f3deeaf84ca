"""A caller ID that is only a blank line (``1\\r\\n\\r\\n``, no forged event) cuts EVERY event of the
caller's channel.  The remainder of its next event used to count as a "second remainder" of the
previous cut, so every genuine event of OTHER calls read in between was dropped as forged (and a
resync asked per pair of cuts).  Now a cut that opens in probation decides with its own remainder:
the same channel's Uniqueid again -> its next event (the held blocks go on); another one -> one of
the two remainders was the caller's (the held blocks are dropped, resync asked)."""

from __future__ import annotations

from typing import Any

import pytest

from pbx_recorder.core import events as ev
from tests.unit.test_ami_framing_forged_after_remainder import (
    MALLORY,
    MALLORY_CHANNEL,
    MUTE_VICTIM,
    STAMP,
    VICTIM,
    VICTIM_CHANNEL,
    Harness,
    event,
    opening,
    snapshot,
)

BOB, BOB_CH = "1732300009.9", "PJSIP/bob-00000009"
CAROL, CAROL_CH = "1732300010.10", "PJSIP/carol-0000000a"
EVE, EVE_CH = "1732300011.11", "PJSIP/eve-0000000b"
BLANK = "1\r\n\r\n"  # 5 bytes: the caller ID alone, nothing forged


def cut(name: str, channel: str = MALLORY_CHANNEL, uid: str = MALLORY, extra: str = "") -> bytes:
    """One of the caller's channel's events: Asterisk writes it whole, the caller ID cuts it."""
    return event(name, snapshot(channel, uid, BLANK) + extra, stamp=STAMP)


def genuine(name: str, channel: str, uid: str, extra: str = "") -> bytes:
    return event(name, snapshot(channel, uid) + extra, stamp=STAMP)


def started() -> Harness:
    h = Harness()
    h.feed(opening(STAMP) + genuine("Newchannel", BOB_CH, BOB).replace(b"ChannelState: 6", b"ChannelState: 4")
           + genuine("Newchannel", CAROL_CH, CAROL).replace(b"ChannelState: 6", b"ChannelState: 4"))
    return h


def of(events: list[Any], uid: str) -> list[str]:
    return [type(e).__name__ for e in events if isinstance(e, ev.CallEvent) and e.channel_id == uid]


def in_reads(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


SIZES = pytest.mark.parametrize("size", [1 << 16, 1500, 97, 7], ids=["one-read", "mtu", "small", "tiny"])


@SIZES
def test_the_reviewers_stream_keeps_bobs_answer_and_hangup(size: int) -> None:
    h = started()
    stream = (cut("Newstate") + genuine("Newstate", BOB_CH, BOB)
              + genuine("Hangup", BOB_CH, BOB, "Cause: 16\r\n")
              + cut("NewCallerid", extra="CID-CallingPres: 0\r\n"))
    out = h.feed(*in_reads(stream, size))
    assert of(out, BOB) == ["ChannelAnswered", "ChannelHungUp"]  # before: [] (dropped as forged)
    assert h.client.framing.forged == 0 and h.client.resyncs_asked == 0
    assert h.client.framing.cuts == 2 and not h.client.framing.distrusting


@SIZES
def test_many_cut_events_in_a_row_interleaved_with_two_other_calls(size: int) -> None:
    h = started()
    stream = b""
    for i in range(6):
        stream += cut("Newstate") + cut("VarSet", extra=f"Variable: X{i}\r\nValue: 1\r\n")
        stream += genuine("Newstate", BOB_CH, BOB) if i == 1 else b""
        stream += genuine("Newstate", CAROL_CH, CAROL) if i == 3 else b""
    stream += genuine("Hangup", BOB_CH, BOB, "Cause: 16\r\n") + cut("Newstate")
    stream += genuine("Hangup", CAROL_CH, CAROL, "Cause: 16\r\n") + cut("Hangup", extra="Cause: 16\r\n")
    out = h.feed(*in_reads(stream, size))
    assert of(out, BOB) == ["ChannelAnswered", "ChannelHungUp"]
    assert of(out, CAROL) == ["ChannelAnswered", "ChannelHungUp"]
    assert h.client.framing.forged == 0 and h.client.resyncs_asked == 0
    assert h.client.framing.cuts == 14


def test_the_callers_events_split_across_reads_at_every_block_boundary() -> None:
    h = started()
    reads = [cut("Newstate"), genuine("Newstate", BOB_CH, BOB), cut("NewCallerid"),
             genuine("Hangup", BOB_CH, BOB, "Cause: 16\r\n"), cut("Newstate"), cut("Newstate"),
             genuine("Newstate", CAROL_CH, CAROL)]
    out = h.feed(*reads)
    assert of(out, BOB) == ["ChannelAnswered", "ChannelHungUp"] and of(out, CAROL) == ["ChannelAnswered"]
    assert h.client.framing.forged == 0 and h.client.resyncs_asked == 0


def test_two_callers_with_blank_line_ids_do_not_make_a_third_calls_events_vanish() -> None:
    """A caller with two calls (or two callers): the cuts alternate between two channels."""
    h = started()
    h.feed(event("Newchannel", snapshot(EVE_CH, EVE, BLANK, "4"), stamp=STAMP))
    stream = (cut("Newstate") + genuine("Newstate", BOB_CH, BOB) + cut("Newstate", EVE_CH, EVE)
              + genuine("Hangup", BOB_CH, BOB, "Cause: 16\r\n") + cut("Newstate")
              + cut("Newstate", EVE_CH, EVE))
    for size in (1 << 16, 97):
        out = h.feed(*in_reads(stream, size))
        assert of(out, BOB) == ["ChannelAnswered", "ChannelHungUp"]
        h.feed(genuine("Newchannel", BOB_CH, BOB).replace(b"ChannelState: 6", b"ChannelState: 4"))
    assert h.client.framing.forged == 0 and h.client.resyncs_asked == 0


FAKE_REMAINDER = ("CallerIDName: x\r\nConnectedLineNum: x\r\nConnectedLineName: x\r\nLanguage: x\r\n"
                  "AccountCode: x\r\nContext: x\r\nExten: x\r\nPriority: x\r\nUniqueid: x\r\nLinkedid: x")
FORGED_HEAD = (f"Event: Newstate\r\nPrivilege: call,all\r\nChannel: {MALLORY_CHANNEL}\r\nChannelState: 6"
               "\r\nChannelStateDesc: Up\r\nCallerIDNum: 1")


def forged_recut_stream() -> bytes:
    """The attack the old rule stopped and a naive "a new cut of the same channel releases the held
    blocks" would let through: a caller with room (no 79-byte bound) spells a fake remainder, a
    whole forged event for the victim, and a forged cut head of its OWN channel, so that Asterisk's
    genuine remainder looks like the remainder of that new cut."""
    forged = ("Event: MixMonitorMute\r\nPrivilege: call,all\r\n" + snapshot(VICTIM_CHANNEL, VICTIM)
              + "Direction: both\r\nState: 1")
    caller = f"1\r\n\r\n{FAKE_REMAINDER}\r\n\r\n{forged}\r\n\r\n{FORGED_HEAD}\r\n"
    return event("Newstate", snapshot(MALLORY_CHANNEL, MALLORY, caller))


@pytest.mark.parametrize("size", [1 << 16, 1500, 97], ids=["one-read", "mtu", "small"])
def test_a_forged_cut_head_of_the_callers_channel_does_not_release_the_forged_block(size: int) -> None:
    h = Harness()
    h.feed(opening())
    data = forged_recut_stream() + event("Newstate", snapshot(BOB_CH, BOB))
    out = h.feed(*in_reads(data, size))
    assert [e for e in out if isinstance(e, ev.CallEvent) and e.channel_id == VICTIM] == []
    assert of(out, BOB) == ["ChannelAnswered"]
    assert h.client.framing.forged >= 1 and h.client.resyncs_asked >= 1


def test_a_forged_cut_head_ending_a_read_holds_the_forged_block_until_the_remainder() -> None:
    """The read boundary falls right after the forged head: the held blocks are not released at the
    read's end while the new cut is open."""
    h = Harness()
    h.feed(opening())
    data = forged_recut_stream()
    split = data.index(FORGED_HEAD.encode()) + len(FORGED_HEAD) + 4  # the head block, then the read ends
    first = h.feed(data[:split])
    assert h.client.framing.distrusting
    out = first + h.feed(data[split:])
    assert [e for e in out if isinstance(e, ev.CallEvent) and e.channel_id == VICTIM] == []
    assert h.client.framing.forged >= 1


def test_a_short_forged_block_between_two_cuts_is_still_dropped() -> None:
    """A 79-byte caller whose ID the dialplan also copies into a VarSet Value: its forged block
    comes after the remainder (a second copy).  With the held blocks now released between the
    caller's cuts, incomplete_snapshot still drops it, and Bob's events between still go on."""
    h = started()
    assert len(MUTE_VICTIM.encode()) <= 79
    body = snapshot(MALLORY_CHANNEL, MALLORY, MUTE_VICTIM) + f"Variable: FROM\r\nValue: {MUTE_VICTIM}\r\n"
    twice = event("VarSet", body, "dialplan,all", stamp=STAMP)
    out = h.feed(twice + genuine("Newstate", BOB_CH, BOB) + twice + genuine("Hangup", BOB_CH, BOB))
    assert [e for e in out if isinstance(e, ev.CallEvent) and e.channel_id == VICTIM] == []
    assert of(out, BOB) == ["ChannelAnswered", "ChannelHungUp"]
    assert h.client.framing.forged == 2 and h.client.framing.cuts == 2


def test_a_uniqueid_spelled_before_asterisks_remainder_does_not_pass_for_it() -> None:
    """The caller's last bytes merge into the front of Asterisk's remainder: a ``Uniqueid: x`` there
    (the fake remainder's) must not be read as the remainder's Uniqueid (Asterisk's comes last)."""
    h = Harness()
    h.feed(opening())
    data = forged_recut_stream().replace(FORGED_HEAD.encode() + b"\r\n\r\n",
                                         FORGED_HEAD.encode() + b"\r\n\r\nUniqueid: x\r\n")
    out = h.feed(data + event("Newstate", snapshot(BOB_CH, BOB)))
    assert [e for e in out if isinstance(e, ev.CallEvent) and e.channel_id == VICTIM] == []
    assert of(out, BOB) == ["ChannelAnswered"] and h.client.framing.forged >= 1

