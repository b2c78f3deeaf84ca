"""The framer remembers parsed outer blocks (esl.frames.EslParser._parse_head): each frame still
gets its own headers, a bad block is refused every time, and the memory stays bounded (512
blocks of up to 256 bytes)."""

from __future__ import annotations

import pytest

from esl.frames import EslParser
from pbx_recorder.errors import EslError

FRAME = b"Content-Type: text/event-plain\nContent-Length: 3\n\nabc"


def test_frames_with_the_same_block_get_equal_but_separate_headers() -> None:
    parser = EslParser()
    first, second = parser.feed(FRAME * 2)
    assert first.headers == second.headers == {"Content-Type": "text/event-plain", "Content-Length": "3"}
    first.headers["Content-Type"] = "changed"
    (third,) = parser.feed(FRAME)
    assert second.headers["Content-Type"] == third.headers["Content-Type"] == "text/event-plain"


@pytest.mark.parametrize("block", [b"Content-Length: 3x\n\n", b"Content-Length: 999999999999\n\n"])
def test_a_bad_block_is_refused_each_time(block: bytes) -> None:
    parser = EslParser()
    for _ in range(2):  # the block stays in the buffer: refused again, not remembered as good
        with pytest.raises(EslError):
            parser.feed(block)


def test_remembered_blocks_are_bounded() -> None:
    parser = EslParser()
    for n in range(2000):
        body = b"x" * (n % 700)
        (frame,) = parser.feed(b"Content-Type: text/event-plain\nContent-Length: %d\n\n" % len(body) + body)
        assert frame.body == body
    assert len(parser._heads) <= 512



def test_a_long_block_is_parsed_but_not_kept() -> None:
    parser = EslParser()
    block = b"Content-Type: text/event-plain\nX-Pad: " + b"p" * 400 + b"\nContent-Length: 1\n\n"
    assert [f.body for f in parser.feed(block + b"a" + block + b"b")] == [b"a", b"b"]
    assert parser._heads == {}
