"""Forged AMI blocks the framing guard let through before, fed as raw bytes to the live client's
parsing path (``ami.protocol.GuardedProtocol.data_received`` -> guard -> panoramisk -> normalizer).

A caller whose number reaches AMI with ``\\r\\n\\r\\n`` in it (PJSIP decodes ``%0d%0a``) ends an
event early; the guard distrusted the blocks after a cut until the genuine remainder came.  What
still got through, each turned into a state change for ANOTHER call (the victim's recording
paused, its channel answered):

* the caller's bytes a second time, after the remainder: a VarSet of a variable the dialplan set
  from the caller ID carries them in the snapshot (cut) AND in ``Value`` (no cut: after it);
* a forged block after a complete snapshot (BlindTransfer ``Extension`` from a REFER target);
* a fake remainder spelled by a caller with room for it (a caller ID set from a SIP header);
* a cut hidden by ``\\n`` or ``\\x1c`` in a value (the guard split lines as ``splitlines``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from ami.client import AmiClient, message_from_block
from ami.framing_guard import FramingGuard, block_keys
from ami.genuine_envelope import AsteriskEnvelope
from ami.normalize import Normalizer
from ami.protocol import GuardedProtocol
from pbx_recorder.core import events as ev
from pbx_recorder.metrics import Metrics
from pbx_recorder.metrics_sampler import MetricsSampler

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
VICTIM, VICTIM_CHANNEL = "1732300000.1", "PJSIP/alice-00000001"
MALLORY, MALLORY_CHANNEL = "1732300005.7", "PJSIP/mallory-00000007"
STAMP = "1732300100.000000"
#: the decoded SIP From user PJSIP passes on (measured on 16.28)
BUDGET = 79


def snapshot(channel: str, uid: str, caller: str = "4915112345678", state: str = "6") -> str:
    """A channel snapshot in Asterisk's order (ast_manager_build_channel_state_string_prefix)."""
    desc = "Up" if state == "6" else "Ring"
    return (f"Channel: {channel}\r\nChannelState: {state}\r\nChannelStateDesc: {desc}"
            f"\r\nCallerIDNum: {caller}\r\nCallerIDName: <unknown>\r\nConnectedLineNum: <unknown>\r\n"
            f"ConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\nContext: from-trunk\r\n"
            f"Exten: 8001\r\nPriority: 1\r\nUniqueid: {uid}\r\nLinkedid: {uid}\r\n")


def event(name: str, body: str, privilege: str = "call,all", stamp: str | None = None) -> bytes:
    head = f"Event: {name}\r\nPrivilege: {privilege}\r\n" + (f"Timestamp: {stamp}\r\n" if stamp else "")
    return (head + body + "\r\n").encode()


def opening(stamp: str | None = None) -> bytes:
    """Login, the victim's call (registered, answered), the caller's channel."""
    return (b"Asterisk Call Manager/5.0.2\r\nResponse: Success\r\nMessage: Authentication accepted\r\n\r\n"
            + event("FullyBooted", "Uptime: 6\r\nStatus: Fully Booted\r\n", "system,all")
            + event("Newchannel", snapshot(VICTIM_CHANNEL, VICTIM, state="4"), stamp=stamp)
            + event("Newstate", snapshot(VICTIM_CHANNEL, VICTIM), stamp=stamp)
            + event("Newchannel", snapshot(MALLORY_CHANNEL, MALLORY, "100", "4"), stamp=stamp))


class Harness:
    """The client's receiving path without a socket."""

    def __init__(self) -> None:
        self.client = AmiClient(host="127.0.0.1", port=0, username="u", secret="s",
                                normalizer=Normalizer("pbx1"), confirm_hangups=False)
        self.protocol = GuardedProtocol(self.client)
        self.protocol.connection_made(None)

    def feed(self, *reads: bytes) -> list[Any]:
        for data in reads:
            self.protocol.data_received(data)
        out = []
        while not self.client._queue.empty():
            out.append(self.client._queue.get_nowait())
        return out


def victim_changes(events: list[Any], opened: int) -> list[Any]:
    """Events for the victim's call (after the first ``opened`` ones)."""
    return [e for e in events[opened:] if isinstance(e, ev.CallEvent) and e.channel_id == VICTIM]


def varset_twice(payload: str) -> bytes:
    """``Set(FROM=${CALLERID(num)})`` on the caller's channel: the caller ID in the snapshot and in
    Value, raw (Asterisk does not escape CR/LF in either)."""
    body = snapshot(MALLORY_CHANNEL, MALLORY, payload) + f"Variable: FROM\r\nValue: {payload}\r\n"
    return event("VarSet", body, "dialplan,all")


MUTE_VICTIM = f"1\r\n\r\nEvent: MixMonitorMute\r\nPrivilege: a\r\nUniqueid: {VICTIM}\r\nState: 1"
ANSWER_VICTIM = f"1\r\n\r\nEvent: Newstate\r\nPrivilege: a\r\nUniqueid: {VICTIM}\r\nChannelState: 6"


@pytest.mark.parametrize("payload", [MUTE_VICTIM, ANSWER_VICTIM], ids=["mute", "answer"])
def test_the_callers_bytes_again_after_the_remainder_are_not_acted_on(payload: str) -> None:
    assert len(payload.encode()) <= BUDGET
    h = Harness()
    opened = h.feed(opening())
    assert len(victim_changes(opened, 0)) == 2  # created, answered: the baseline
    hangup = event("Hangup", snapshot(MALLORY_CHANNEL, MALLORY) + "Cause: 16\r\n")
    out = h.feed(varset_twice(payload) + hangup)
    assert victim_changes(out, 0) == []  # before: RecordingMuted / ChannelAnswered for the victim
    assert [e.channel_id for e in out if isinstance(e, ev.ChannelHungUp)] == [MALLORY]  # genuine, after
    assert h.client.framing.attempts >= 2 and not h.client.framing.distrusting


def test_a_forged_block_after_a_complete_snapshot_needs_asterisks_envelope() -> None:
    """BlindTransfer's Extension is written after both snapshots: nothing is cut, no remainder."""
    h = Harness()
    h.feed(opening(STAMP))
    transfer = (snapshot(MALLORY_CHANNEL, MALLORY).replace("Channel:", "TransfererChannel:", 1)
                .replace("\r\n", "\r\nTransferer", 13).replace("TransfererTransferer", "Transferer"))
    forged_plain = f"1\r\n\r\nEvent: Newstate\r\nUniqueid: {VICTIM}\r\nChannelState: 6"
    forged_priv = f"1\r\n\r\nEvent: Newstate\r\nPrivilege: a\r\nUniqueid: {VICTIM}\r\nChannelState: 6"
    for forged in (forged_plain, forged_priv):  # without Privilege; without the Timestamp learned
        assert len(forged.encode()) <= BUDGET
        out = h.feed(event("BlindTransfer", "Result: Success\r\n" + transfer + f"IsExternal: Yes\r\n"
                           f"Context: from-trunk\r\nExtension: {forged}\r\n", stamp=STAMP))
        assert victim_changes(out, 0) == []
    assert h.client.framing.forged == 2


def fake_remainder_stream() -> tuple[bytes, bytes]:
    """A caller ID without the 79-byte bound: cut, a fake remainder, a forged block with a whole
    snapshot and envelope, then Asterisk's genuine remainder."""
    fake = ("CallerIDName: x\r\nConnectedLineNum: x\r\nConnectedLineName: x\r\nLanguage: x\r\n"
            "AccountCode: x\r\nContext: x\r\nExten: x\r\nPriority: x\r\nUniqueid: x\r\nLinkedid: x")
    forged = ("Event: MixMonitorMute\r\nPrivilege: call,all\r\n" + snapshot(VICTIM_CHANNEL, VICTIM)
              + "Direction: both\r\nState: 1")
    caller = f"1\r\n\r\n{fake}\r\n\r\n{forged}\r\n\r\n"  # (merged with the remainder, the
    # forged block would take its Uniqueid: the normalizer's registry check drops that one)
    head = f"Event: Newstate\r\nPrivilege: call,all\r\n{snapshot(MALLORY_CHANNEL, MALLORY, caller)}\r\n"
    cut = head.index("\r\nCallerIDName: <unknown>") + 2  # where Asterisk's own remainder starts
    return head[:cut].encode(), head[cut:].encode()


def test_a_fake_remainder_no_longer_lets_a_forged_block_through(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    h.feed(opening())
    before, remainder = fake_remainder_stream()
    with caplog.at_level(logging.WARNING, logger="ami.framing_guard"):
        out = h.feed(before + remainder + event("Newstate", snapshot("PJSIP/bob-9", "1732300009.9")))
    assert victim_changes(out, 0) == []  # before: RecordingMuted(muted=True) for the victim's call
    assert any(isinstance(e, ev.ChannelAnswered) and e.channel_id == "1732300009.9" for e in out)
    assert h.client.framing.forged >= 1 and h.client.resyncs_asked == 1
    assert [e.reason for e in out if isinstance(e, ev.PbxEventsLost)] == ["the framing guard dropped blocks"]
    assert "second remainder" in caplog.text


def test_the_genuine_remainder_in_the_next_read_still_unmasks_the_fake_one() -> None:
    h = Harness()
    h.feed(opening())
    before, remainder = fake_remainder_stream()
    out = h.feed(before + remainder[:40])  # the read ends inside Asterisk's remainder
    assert victim_changes(out, 0) == []
    out = h.feed(remainder[40:])
    assert victim_changes(out, 0) == [] and h.client.framing.forged >= 1


@pytest.mark.parametrize("newline", ["\n", "\x1c", "\u2028"], ids=["lf", "fs", "u2028"])
def test_a_cut_hidden_by_a_line_break_panoramisk_does_not_split_on_is_seen(newline: str) -> None:
    """The dialed number (``Exten``, from the request URI) cut with its tail spelled after a lone
    line break: the guard saw Priority/Uniqueid/Linkedid there, the parser does not."""
    h = Harness()
    h.feed(opening())
    hidden = newline.join(["8001", "Priority: 1", "Uniqueid: 1", "Linkedid: 1"])
    forged = ("Event: MixMonitorMute\r\nPrivilege: call,all\r\n" + snapshot(VICTIM_CHANNEL, VICTIM)
              + "State: 1")
    body = snapshot("PJSIP/mallory-00000008", "1732300006.8", state="4").replace(
        "Exten: 8001\r\n", f"Exten: {hidden}\r\n\r\n{forged}\r\n")
    keys = block_keys(body.split("\r\n\r\n")[0])
    assert "uniqueid" not in keys and "priority" not in keys
    out = h.feed(event("Newchannel", body))
    assert victim_changes(out, 0) == []
    assert h.client.framing.cuts == 1


@pytest.mark.parametrize("name", ["injection_blankline_display_asterisk16.txt",
                                  "injection_blankline_asterisk16.txt",
                                  "injection_blankline_short_hangup.txt"])
@pytest.mark.parametrize("size", [1 << 16, 1500, 97], ids=["one-read", "mtu", "small-reads"])
def test_real_streams_in_any_read_size_keep_every_genuine_event(name: str, size: int) -> None:
    """Asterisk 16.28 captures (many blocks per read) and the short-Hangup layout: the client path
    with the envelope and probation gives exactly what the per-block guard gave."""
    data = (FIXTURES / name).read_bytes()
    reference = FramingGuard()
    n = Normalizer("pbx1")
    text = data.decode().partition("\r\n")[2]
    expected: list[Any] = []
    for block in text.split("\r\n\r\n")[:-1]:
        if reference.accept(block_keys(block)):
            message = message_from_block(block.strip())
            if message is not None:
                expected.extend(n.normalize(message, 0.0))
    h = Harness()
    got = h.feed(*(data[i:i + size] for i in range(0, len(data), size)))
    strip = [(type(e).__name__, getattr(e, "channel_id", ""), getattr(e, "call_id", "")) for e in got]
    assert strip == [(type(e).__name__, getattr(e, "channel_id", ""), getattr(e, "call_id", ""))
                     for e in expected]
    assert h.client.framing.forged == 0 and h.client.framing.cuts == reference.cuts


def test_asterisk_that_stops_stamping_is_learned_again(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    h.feed(opening(STAMP))
    events = [event("Newstate", snapshot(f"PJSIP/c-{i}", f"1732300200.{i}")) for i in range(10)]
    with caplog.at_level(logging.ERROR, logger="ami.genuine_envelope"):
        out = h.feed(*events)  # manager reload turned timestampevents off
    lost = [e for e in out if isinstance(e, ev.PbxEventsLost)]
    assert [e.channel_id for e in out if not isinstance(e, ev.PbxEventsLost)] == [
        "1732300200.7", "1732300200.8", "1732300200.9"]
    assert lost  # the events dropped for want of a Timestamp: the core no longer trusts its counts
    assert "learning the envelope again" in caplog.text


def test_list_items_without_privilege_pass_only_under_an_action_id_of_ours() -> None:
    envelope = AsteriskEnvelope(ours={"ours-1"}.__contains__)
    item = {"event": "CoreShowChannel", "actionid": "ours-1", "channel": "PJSIP/a-1"}
    assert envelope.verdict(item) == ""
    assert envelope.verdict({**item, "actionid": "guess"}) != ""
    assert envelope.verdict({"event": "FullyBooted"}) == ""  # the login's, before any stamped event
    assert envelope.verdict({"event": "Newstate", "privilege": "call,all", "timestamp": STAMP}) == ""
    assert envelope.verdict({"event": "FullyBooted"}) != ""  # once the stream is stamped: not at login


def test_forged_blocks_are_counted_in_the_injection_metric() -> None:
    h = Harness()
    h.feed(opening(STAMP))
    metrics = Metrics()
    sampler = MetricsSampler(metrics, ami=h.client, callbook=type("B", (), {"live_call_ids": lambda s: []})(),
                             spool=None, hot_tiers={}, clock=lambda: 0.0)
    sampler.sample_loop_state()
    h.feed(varset_twice(MUTE_VICTIM))
    sampler.sample_loop_state()
    assert metrics.value("pbxrec_ami_injection_attempts_total") == h.client.framing.attempts >= 2
