"""After ``timestampevents`` is turned off (manager reload), the events dropped for a missing
Timestamp before the envelope learns again are Asterisk's own: each drop asks for a resync (the
client coalesces them).  "Stamped" is learned per SystemName (an AMI proxy merging PBXs), without
letting a caller escape the check by inventing one."""

from __future__ import annotations

from typing import Any

from ami.framing_guard import FramingGuard
from ami.genuine_envelope import NO_TIMESTAMP, RELEARN_AFTER, AsteriskEnvelope
from pbx_recorder.core import events as ev
from tests.unit.test_ami_framing_forged_after_remainder import STAMP, Harness, event, opening, snapshot


def ev_keys(system: str | None = None, stamped: bool = True, name: str = "Newstate") -> dict[str, Any]:
    keys = {"event": name, "privilege": "call,all"}
    if stamped:
        keys["timestamp"] = STAMP
    if system is not None:
        keys["systemname"] = system
    return keys


def test_every_event_dropped_for_a_missing_timestamp_asks_for_a_resync() -> None:
    h = Harness()
    h.feed(opening(STAMP))
    asked = []
    h.client.request_resync = lambda: asked.append(1)  # type: ignore[method-assign]
    hangups = [event("Hangup", snapshot(f"PJSIP/c-{i}", f"1732300200.{i}") + "Cause: 16\r\n")
               for i in range(9)]
    out = h.feed(*hangups)  # one read each: manager reload turned timestampevents off
    assert [e.channel_id for e in out if isinstance(e, ev.ChannelHungUp)] == ["1732300200.7", "1732300200.8"]
    assert len(asked) == RELEARN_AFTER - 1  # before: 0 (the 7 dropped hang-ups were never read back)


def test_the_guard_hands_the_envelopes_resync_on_once() -> None:
    guard = FramingGuard(envelope=AsteriskEnvelope())
    assert guard.accept(ev_keys()) and not guard.take_resync()
    assert not guard.accept(ev_keys(stamped=False))
    assert guard.take_resync() and not guard.take_resync()


def test_stamped_is_learned_per_systemname() -> None:
    """PBX a was reloaded without stamps, PBX b still stamps, their events interleaved: a is learned
    again after RELEARN_AFTER of its own events (before: b's stamped events reset the count, a's
    events were dropped for ever); b's still need a Timestamp."""
    envelope = AsteriskEnvelope()
    assert envelope.verdict(ev_keys("a")) == "" and envelope.verdict(ev_keys("b")) == ""
    verdicts = []
    for _ in range(RELEARN_AFTER):
        verdicts.append(envelope.verdict(ev_keys("a", stamped=False)))
        assert envelope.verdict(ev_keys("b")) == ""
    assert verdicts == [NO_TIMESTAMP] * (RELEARN_AFTER - 1) + [""]
    assert envelope.verdict(ev_keys("a", stamped=False)) == ""  # learned: a does not stamp
    assert envelope.verdict(ev_keys("b", stamped=False)) == NO_TIMESTAMP
    assert envelope.verdict(ev_keys("a")) == ""  # a stamps again: required again
    assert envelope.verdict(ev_keys("a", stamped=False)) == NO_TIMESTAMP


def test_an_invented_systemname_does_not_escape_the_timestamp() -> None:
    """A caller's forged block naming a SystemName never seen stamped is judged connection-wide:
    Asterisk's stamped events between reset the count, so it is never learned as unstamped."""
    envelope = AsteriskEnvelope()
    assert envelope.verdict(ev_keys("pbx1")) == ""
    for i in range(3 * RELEARN_AFTER):
        assert envelope.verdict(ev_keys(f"evil{i % 2}", stamped=False)) == NO_TIMESTAMP
        assert envelope.verdict(ev_keys(None, stamped=False)) == NO_TIMESTAMP
        assert envelope.verdict(ev_keys("pbx1")) == ""
    assert envelope.resync_wanted


def test_a_stream_without_systemname_behaves_as_before() -> None:
    envelope = AsteriskEnvelope()
    assert envelope.verdict({"event": "FullyBooted"}) == ""  # before any stamped event
    assert envelope.verdict(ev_keys()) == "" and envelope.timestamped
    assert envelope.verdict({"event": "FullyBooted"}) != ""
    got = [envelope.verdict(ev_keys(stamped=False)) for _ in range(RELEARN_AFTER + 1)]
    assert got == [NO_TIMESTAMP] * (RELEARN_AFTER - 1) + ["", ""] and not envelope.timestamped
