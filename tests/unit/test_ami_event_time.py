"""Event times from Asterisk's ``Timestamp`` header (manager.conf ``timestampevents = yes``)."""

from __future__ import annotations

import logging

import pytest

from ami.event_time import MAX_AGE_S, MAX_AHEAD_S, EventClock
from ami.frames import parse_transcript
from ami.normalize import Normalizer
from pbx_recorder.core import events as ev

NOW = 1_732_200_010.0

NEWCHANNEL = (
    "Event: Newchannel\r\nPrivilege: call,all\r\nTimestamp: {stamp}\r\nChannel: PJSIP/alice-00000001\r\n"
    "ChannelState: 0\r\nChannelStateDesc: Down\r\nCallerIDNum: 5551234\r\nExten: 8001\r\n"
    "Context: from-trunk\r\nUniqueid: 1732200000.1\r\nLinkedid: 1732200000.1\r\n\r\n"
)
ANSWER = (
    "Event: Newstate\r\nPrivilege: call,all\r\nTimestamp: {stamp}\r\nChannel: PJSIP/alice-00000001\r\n"
    "ChannelState: 6\r\nChannelStateDesc: Up\r\nUniqueid: 1732200000.1\r\nLinkedid: 1732200000.1\r\n\r\n"
)
LIST_ENTRY = (
    "Event: CoreShowChannel\r\nActionID: r1\r\nChannel: PJSIP/alice-00000001\r\nChannelState: 6\r\n"
    "ChannelStateDesc: Up\r\nUniqueid: 1732200000.1\r\nLinkedid: 1732200000.1\r\n\r\n"
)


def _events(text: str, now: float = NOW) -> tuple[Normalizer, list[object]]:
    n = Normalizer("pbx1")
    out: list[object] = []
    for frame in parse_transcript(text.encode()):
        out.extend(n.normalize(frame, now))
    return n, out


def test_a_late_read_event_keeps_the_time_asterisk_raised_it() -> None:
    """The recorder read both frames 10 s late (a busy host): the call's times are Asterisk's."""
    n, out = _events(NEWCHANNEL.format(stamp="1732200000.250000") + ANSWER.format(stamp="1732200001.500000"))
    created, answered = out
    assert isinstance(created, ev.ChannelCreated) and isinstance(answered, ev.ChannelAnswered)
    assert (created.at, answered.at) == (1732200000.25, 1732200001.5)
    assert (n.clock.stamped, n.clock.unstamped, n.clock.rejected) == (2, 0, 0)


def test_without_timestampevents_the_arrival_time_is_used_and_the_admin_told_once(
        caplog: pytest.LogCaptureFixture) -> None:
    plain = NEWCHANNEL.replace("Timestamp: {stamp}\r\n", "") + ANSWER.replace("Timestamp: {stamp}\r\n", "")
    with caplog.at_level(logging.WARNING, logger="ami.event_time"):
        n, out = _events(plain)
    assert [e.at for e in out] == [NOW, NOW]  # type: ignore[attr-defined]
    assert n.clock.unstamped == 2
    warnings = [r.getMessage() for r in caplog.records if "timestampevents = yes" in r.getMessage()]
    assert len(warnings) == 1, warnings


@pytest.mark.parametrize("stamp", ["nan", "inf", "-inf", "1e308", "abc", "0", "1732200000,5",
                                   str(NOW - MAX_AGE_S - 1), str(NOW + MAX_AHEAD_S + 1), "x" * 2000])
def test_a_timestamp_far_from_this_clock_or_not_a_number_is_not_trusted(
        stamp: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ami.event_time"):
        n, out = _events(NEWCHANNEL.format(stamp=stamp) + ANSWER.format(stamp=stamp))
    assert [e.at for e in out] == [NOW, NOW]  # type: ignore[attr-defined]
    assert n.clock.rejected == 2
    skew = [r.getMessage() for r in caplog.records if "not within" in r.getMessage()]
    assert len(skew) == 1 and len(skew[0]) < 300, skew  # once, and the hostile value cut short


def test_the_edges_of_the_trusted_window_are_inside_it() -> None:
    clock = EventClock()
    assert clock.at({"timestamp": str(NOW - MAX_AGE_S)}, NOW) == NOW - MAX_AGE_S
    assert clock.at({"timestamp": str(NOW + MAX_AHEAD_S)}, NOW) == NOW + MAX_AHEAD_S


def test_a_reply_to_our_own_action_is_timed_by_arrival_and_raises_no_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    """A CoreShowChannels entry and the FullyBooted Asterisk sends at login carry no Timestamp
    even with timestampevents = yes (seen on 16.28 and 22.10): no warning for them."""
    with caplog.at_level(logging.WARNING, logger="ami.event_time"):
        n, out = _events("Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
                         + LIST_ENTRY)
    (live,) = out
    assert isinstance(live, ev.LiveChannel) and live.at == NOW
    assert n.clock.unstamped == 0 and not caplog.records


def test_a_reply_read_late_is_timed_back_by_the_streams_lag() -> None:
    """The MixMonitor response confirming a start is read as late as the events around it: its
    time is taken back by the lag of the last stamped event, while that lag is fresh."""
    clock = EventClock()
    assert clock.reply_time(NOW) == NOW  # nothing stamped yet
    assert clock.at({"timestamp": str(NOW - 4.0)}, NOW) == NOW - 4.0  # read 4 s late
    assert clock.reply_time(NOW + 0.5) == pytest.approx(NOW - 3.5)
    assert clock.reply_time(NOW + 2.0) == NOW + 2.0  # the lag is stale: the reader caught up
    clock.at({"timestamp": str(NOW + 3.0)}, NOW + 2.9)  # Asterisk's clock 0.1 s ahead: no lag
    assert clock.reply_time(NOW + 3.0) == NOW + 3.0
