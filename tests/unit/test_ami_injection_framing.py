"""A blank line injected through a caller ID (Asterisk 16 passes it into AMI) forges no event.

``injection_blankline_asterisk16.txt`` is a raw capture from Asterisk 16.28 (the From user of
tests/real/test_asterisk_ami_framing.py); the other fixtures are built on its layout with a
forged ``Hangup`` that names a live call's Uniqueid in the 79 bytes a caller has.  Each is read
by :mod:`ami.frames` and by the live client's block path (``block_keys`` + ``message_from_block``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ami.client import message_from_block
from ami.frames import parse_transcript
from ami.framing_guard import CDR_TAIL, MAX_DISTRUSTED, SNAPSHOT_TAIL, FramingGuard, block_keys
from ami.normalize import Normalizer
from pbx_recorder.core import events as ev

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
NOW = 1_732_300_100.0
VICTIM = "1732300000.1"
#: longest caller ID num PJSIP passes on (measured on 16.28: the decoded From user is cut there)
CALLER_BUDGET = 79


def via_frames(data: bytes, guard: FramingGuard | None) -> list[Any]:
    return [f for f in parse_transcript(data) if guard is None or guard.accept(f)]


def via_client(data: bytes, guard: FramingGuard | None) -> list[Any]:
    text = data.decode().partition("\r\n")[2]  # the banner line
    blocks = text.split("\r\n\r\n")[:-1]
    kept = [b for b in blocks if guard is None or guard.accept(block_keys(b))]
    return [m for m in (message_from_block(b.strip()) for b in kept) if m is not None]


PARSERS = pytest.mark.parametrize("parse", [via_frames, via_client], ids=["frames", "panoramisk"])
Parse = Callable[[bytes, "FramingGuard | None"], list[Any]]


def run(name: str, parse: Parse, guard: FramingGuard | None) -> list[Any]:
    n = Normalizer("pbx1")
    out: list[Any] = []
    for frame in parse((FIXTURES / name).read_bytes(), guard):
        out.extend(n.normalize(frame, NOW))
    return out


def hangups(events: list[Any]) -> list[ev.ChannelHungUp]:
    return [e for e in events if isinstance(e, ev.ChannelHungUp)]


@PARSERS
def test_asterisk16_capture_forged_blocks_are_dropped(parse: Parse, caplog: pytest.LogCaptureFixture) -> None:
    data = (FIXTURES / "injection_blankline_asterisk16.txt").read_bytes()
    # 14 channel snapshots cut in CallerIDNum, the Cdr cut in Source and again in CallerID
    assert data.count(b"CallerIDNum: 1\r\n\r\nEvent: Hangup\r\nChannel: PJSIP/victim-00000001\r\n") == 14
    assert data.count(b"\r\n\r\nEvent: Hangup\r\nChannel: PJSIP/victim-00000001\r\n") == 16
    guard = FramingGuard()
    with caplog.at_level(logging.WARNING, logger="ami.framing_guard"):
        kept = parse(data, guard)
    names = [str(m.get("event") or m.get("Event") or "") for m in kept]
    assert not any("victim" in str(m.get("channel") or m.get("Channel") or "") for m in kept)
    assert names.count("Hangup") == 1  # the caller's own, cut short (a head only)
    assert guard.cuts == 15 and guard.dropped == 16 and not guard.distrusting
    assert "AMI framing injection" in caplog.text


@PARSERS
def test_short_forged_hangup_ends_the_victim_call_without_the_guard(parse: Parse) -> None:
    hung = hangups(run("injection_blankline_short_hangup.txt", parse, None))
    assert [h.channel_id for h in hung].count(VICTIM) >= 2  # the threat: a forged one before the genuine


@PARSERS
def test_short_forged_hangup_is_dropped_and_the_genuine_one_kept(parse: Parse) -> None:
    guard = FramingGuard()
    out = run("injection_blankline_short_hangup.txt", parse, guard)
    assert [(h.channel_id, h.cause) for h in hangups(out)] == [(VICTIM, 16)]  # only the last, genuine
    assert guard.cuts == 3 and guard.dropped == 6 and not guard.distrusting
    assert any(isinstance(e, ev.ChannelAnswered) and e.channel_id == VICTIM for e in out)


@PARSERS
def test_cut_hidden_behind_uniqueid_lines_and_double_cut_cdr(parse: Parse) -> None:
    guard = FramingGuard()
    out = run("injection_blankline_hidden_cut_and_cdr.txt", parse, guard)
    assert [h.channel_id for h in hangups(out)] == [VICTIM]
    assert guard.cuts == 2 and not guard.distrusting  # Newchannel, Cdr (its CallerID cut while distrusted)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("injection_callerid_*.txt"))
                         + sorted(FIXTURES.glob("injection_dest_*.txt"))
                         + [FIXTURES / "injection_blankline_display_asterisk16.txt"], ids=lambda p: p.name)
def test_genuine_streams_are_never_cut(path: Path) -> None:
    """Real layouts only (the display-name variant is a genuine 16.28 capture: PJSIP does not
    decode the display name).  Hand-written transcripts with abbreviated snapshots would count
    as cut: the guard relies on Asterisk always sending the whole snapshot."""
    guard = FramingGuard()
    frames = parse_transcript(path.read_bytes())
    assert frames and all(guard.accept(f) for f in frames)
    assert guard.cuts == 0 and guard.dropped == 0


def test_a_caller_cannot_spell_a_fake_remainder_in_its_budget() -> None:
    """After a cut in the first caller field the remainder needs every later field name; that is
    more than the 79 bytes the caller has (so a forged block can never end the distrust)."""
    def shortest(fields: tuple[str, ...]) -> int:
        return sum(len(f) + len(": \r\n") for f in fields)
    assert shortest(SNAPSHOT_TAIL) > CALLER_BUDGET
    assert shortest(SNAPSHOT_TAIL[2:]) > CALLER_BUDGET  # cut in ConnectedLineNum (a callee's leg)
    assert shortest(CDR_TAIL) > CALLER_BUDGET
    assert shortest(CDR_TAIL[3:]) > CALLER_BUDGET  # cut in CallerID


def test_distrust_is_bounded_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    guard = FramingGuard()
    cut = {"event": "Newchannel", "channel": "PJSIP/m-1", "channelstate": "4", "channelstatedesc": "Ring",
           "calleridnum": "1"}
    assert guard.accept(cut) and guard.distrusting
    genuine = {"event": "Newstate", "channel": "PJSIP/a-1", "uniqueid": "1.1", "linkedid": "1.1"}
    with caplog.at_level(logging.ERROR, logger="ami.framing_guard"):
        verdicts = [guard.accept(genuine) for _ in range(MAX_DISTRUSTED + 2)]
    assert verdicts == [False] * MAX_DISTRUSTED + [True, True]
    assert "not seen within" in caplog.text


def test_stray_block_without_event_is_reported() -> None:
    guard = FramingGuard()
    assert guard.accept(block_keys("CallerIDName: x\r\nUniqueid: 1.2\r\nLinkedid: 1.2"))
    assert guard.strays == 1 and not guard.distrusting
