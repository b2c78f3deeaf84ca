"""From when the AMI client may have lost events (``PbxEventsLost.since``, ``PbxLinkLost.since``):
the core keeps trusting the MixMonitor count of a call whose recordings were all seen to start
well before that (core/mixmonitor_order.py ``survives_gap``), so the time must be the earliest
any lost block can have arrived, never the time the loss was noticed."""

from __future__ import annotations

from typing import Any

from test_ami_framing_forged_after_remainder import Harness, fake_remainder_stream, opening

from pbx_recorder.core import events as ev


class Clock:
    def __init__(self, h: Harness, now: float) -> None:
        self.now = now
        h.client.clock = lambda: self.now  # type: ignore[method-assign]


def lost(out: list[Any]) -> list[ev.PbxEventsLost]:
    return [e for e in out if isinstance(e, ev.PbxEventsLost)]


def test_blocks_dropped_a_read_later_are_dated_from_the_read_the_cut_opened_in() -> None:
    h = Harness()
    h.feed(opening())
    before, remainder = fake_remainder_stream()
    clock = Clock(h, 100.0)
    first = h.feed(before)  # the cut opens; what follows it is held
    assert lost(first) == [] and h.client.cut_since == 100.0
    clock.now = 200.0
    (report,) = lost(h.feed(remainder))  # the second remainder: the held blocks are dropped
    assert report.since == 100.0 and report.at == 200.0  # before: no time, taken as "now" (200)
    assert h.client.cut_since is None  # nothing held any more: the next loss is dated anew


def test_a_block_that_fails_alone_is_dated_now() -> None:
    h = Harness()
    h.feed(opening())
    Clock(h, 300.0)
    h.client.lost_events("a block failed to parse")
    (report,) = lost(h.feed())
    assert report.since == 300.0


def test_a_lost_link_loses_what_came_after_its_last_bytes() -> None:
    h = Harness()
    clock = Clock(h, 50.0)
    h.feed(opening())
    clock.now = 80.0
    h.client.connection_lost(None)
    (gone,) = [e for e in h.feed() if isinstance(e, ev.PbxLinkLost)]
    assert (gone.at, gone.since) == (80.0, 50.0)


def test_a_mixmonitor_start_is_dated_by_when_it_was_read_for_the_gap_rule() -> None:
    """Asterisk's Timestamp is trusted for a call's times up to an hour behind this host's clock
    (a late reader, a slow clock): a start dated by it could look older than a loss that began
    right after it was read, and the call would wrongly survive the gap.  ``arrived_at`` is the
    reading time, on the clock the loss is dated by."""
    from ami.normalize import Normalizer

    n = Normalizer("pbx1")
    frame = {"Event": "MixMonitorStart", "Privilege": "call,all", "Timestamp": "1000.000000",
             "Channel": "PJSIP/agent-01", "Uniqueid": "1.1", "Linkedid": "1.1"}
    (started,) = n.normalize(frame, 1030.0)  # read 30 s after Asterisk stamped it
    assert isinstance(started, ev.MixMonitorStarted)
    assert (started.at, started.arrived_at) == (1000.0, 1030.0)
