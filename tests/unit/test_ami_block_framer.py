"""ami.block_framer: blocks are framed on bytes and decoded after framing (issue 10: a caller
name ``张三`` split between two TCP reads arrived as ``三``)."""

from __future__ import annotations

from ami.block_framer import BlockFramer

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
EVENT = ("Event: Newchannel\r\nChannel: PJSIP/caller-00000001\r\nCallerIDNum: 4930\r\n"
         "CallerIDName: 张三 Zoë \U0001F600\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\n\r\n").encode()
EXPECTED = EVENT.decode()[:-4]


def test_every_split_point_of_an_event_keeps_every_character() -> None:
    for cut in range(len(EVENT) + 1):
        framer = BlockFramer()
        blocks = framer.feed(EVENT[:cut]) + framer.feed(EVENT[cut:])
        assert blocks == [EXPECTED], cut
        assert framer.pending == 0


def test_every_pair_of_split_points_around_the_name() -> None:
    start = EVENT.index("张".encode()) - 2
    end = EVENT.index("\U0001F600".encode()) + 6
    for a in range(start, end):
        for b in range(a, end):
            framer = BlockFramer()
            blocks = framer.feed(EVENT[:a]) + framer.feed(EVENT[a:b]) + framer.feed(EVENT[b:])
            assert blocks == [EXPECTED], (a, b)


def test_byte_by_byte_with_banner_and_two_events() -> None:
    framer = BlockFramer()
    blocks: list[str] = []
    for byte in BANNER + EVENT + EVENT:
        blocks += framer.feed(bytes([byte]))
    assert framer.version == "9.0.0"
    assert blocks == ["Asterisk Call Manager/9.0.0\r\n" + EXPECTED, EXPECTED]


def test_invalid_utf8_is_replaced_not_dropped() -> None:
    blocks = BlockFramer().feed(b"Event: Newchannel\r\nCallerIDName: a\xffb\r\n\r\n")
    assert blocks == ["Event: Newchannel\r\nCallerIDName: a\ufffdb"]


def test_a_block_that_never_ends_is_bounded() -> None:
    framer = BlockFramer(max_pending=64)
    assert framer.feed(b"Event: X\r\nValue: " + b"x" * 40) == []
    out = framer.feed(b"y" * 40)
    assert len(out) == 1 and out[0].endswith("y" * 40)
    assert framer.oversized == 1 and framer.pending == 0
    assert framer.feed(EVENT) == [EXPECTED]
