"""The lazy header view (``Headers.of_event_text``: the first blank line searched only as far as
a header found needs it) answers every look-up as the view whose block end was found first.

Bodies with a blank line before the end (an inner body, a stray empty line), a header repeated
after it, a body opening with a blank line, CRLF, and look-ups in every order (the lazy view's
state depends on which header was read first).
"""

from __future__ import annotations

import itertools

import pytest

from esl.frames import EslParser, Headers, HeaderSet, parse_event_plain, pick
from tests.unit.esl_transcript import sources

BODIES = [
    b"Event-Name: CHANNEL_ANSWER\nUnique-ID: u1\nCaller-Caller-ID-Name: Jane%20Doe\n\n",
    b"Event-Name: BACKGROUND_JOB\nJob-UUID: j1\nContent-Length: 12\n\nUnique-ID: x\n\n",
    b"Event-Name: CUSTOM\nUnique-ID: u1\n\nUnique-ID: after-the-blank\nContent-Length: 3\n\n",
    b"Event-Name: CUSTOM\n\nUnique-ID: after-the-blank\n\n",
    b"\n\nEvent-Name: CHANNEL_CREATE\nUnique-ID: u1\n\n",
    b"\nEvent-Name: CHANNEL_CREATE\nUnique-ID: u1\n\n",
    b"Event-Name: CHANNEL_CREATE\r\nUnique-ID: u1\r\nContent-Length: 2\r\n\r\nab\r\n\r\n",
    b"Unique-ID:\nUnique-ID: second\nEvent-Name:x\nEvent-Name: real\n\nEvent-Name: inner\n\n",
    b"Caller-ID-Name-Extra: x\nCaller-ID-Name: Jane%20Doe\nEmpty:\nBlank: \n\n",
    b"\n\n",
    b"A: 1\n\n\n\n",
]
KEYS = ["Event-Name", "Unique-ID", "Content-Length", "Job-UUID", "Caller-ID-Name", "Empty", "Blank",
        "Caller-Caller-ID-Name", "No-Such-Header", "A"]


def settled(body: bytes) -> Headers:
    """The same text with its block end found before any look-up."""
    lazy = parse_event_plain(body).headers
    assert isinstance(lazy, Headers)
    return Headers(lazy._text, lazy._end)


@pytest.mark.parametrize("body", BODIES)
def test_lazy_view_answers_as_the_settled_one_in_any_order(body: bytes) -> None:
    expected = {k: settled(body).get(k, None) for k in KEYS}
    for order in itertools.islice(itertools.permutations(KEYS[:6]), 0, 720, 7):
        lazy = parse_event_plain(body).headers
        assert {k: lazy.get(k, None) for k in (*order, *KEYS)} == expected, order
    lazy = parse_event_plain(body).headers
    lazy.get("Unique-ID")
    assert pick(lazy, HeaderSet(KEYS)) == pick(settled(body), HeaderSet(KEYS))
    assert dict(parse_event_plain(body).headers) == dict(settled(body))


@pytest.mark.parametrize("body", BODIES)
def test_inner_body_is_the_one_cut_at_the_first_blank_line(body: bytes) -> None:
    text = "\n" + body.decode().replace("\r\n", "\n")
    block, blank, rest = text[1:].partition("\n\n")
    length = Headers(block).get("Content-Length", "") if blank else ""
    expected = rest.encode()[: int(length)].decode() if length.isdigit() else ""
    assert parse_event_plain(body).body == expected


def test_every_captured_event_reads_the_same_lazily() -> None:
    for data in sources().values():
        for body in (f.body for f in EslParser().feed(data) if f.content_type == "text/event-plain"):
            lazy, fixed = parse_event_plain(body).headers, settled(body)
            for key in dict(fixed):
                assert lazy.get(key, None) == fixed.get(key, None), key

