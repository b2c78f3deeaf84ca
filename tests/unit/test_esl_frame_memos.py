"""What esl/frames.py remembers: the framer its parsed outer blocks (``EslParser._parse_head``:
each frame still gets its own headers, a bad block is refused every time) and ``decode_value``
its recent values (the same string as ``unquote``, the first time and after); both bounded."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from esl import frames
from esl.frames import EslParser, decode_value
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


def test_remembered_values_decode_as_unquote_and_stay_bounded() -> None:
    values = [f"M%C3%BCller%20{n}%0D%0A%zz" for n in range(frames._DECODED_MAX + 10)]
    for raw in values + values[-20:] + ["x" * 300 + "%41"] * 2:
        assert decode_value(raw) == unquote(raw, errors="replace")
    assert len(frames._DECODED) <= frames._DECODED_MAX
    assert "x" * 300 + "%41" not in frames._DECODED  # long values are decoded, not kept
