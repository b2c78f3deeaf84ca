"""ami.frames: CRLF framing, partial chunks, Follows bodies, lines without ':'."""

from __future__ import annotations

from pathlib import Path

import pytest

from ami.frames import BODY_KEY, FrameParser, parse_block, parse_transcript, render_frame

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "peers" / "transcripts"
CORE_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_banner_version_and_frames_over_crlf() -> None:
    data = crlf((TRANSCRIPTS / "basic_call.txt").read_bytes())
    parser = FrameParser()
    frames = parser.feed(data) + parser.close()
    assert parser.version == "5.0.1"
    assert frames[0] == {"response": "Success", "actionid": "login-1", "message": "Authentication accepted"}
    names = [f.get("event") for f in frames[1:]]
    assert names[:3] == ["FullyBooted", "Newchannel", "VarSet"]
    assert names[-1] == "Hangup"
    newchannel = frames[2]
    assert newchannel["linkedid"] == "1732200000.1"
    assert newchannel["accountcode"] == "acct7"


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1000])
def test_partial_chunks_give_the_same_frames(chunk: int) -> None:
    data = crlf((TRANSCRIPTS / "basic_call.txt").read_bytes())
    whole = parse_transcript(data)
    parser = FrameParser()
    got = []
    for i in range(0, len(data), chunk):
        got.extend(parser.feed(data[i : i + chunk]))
    got.extend(parser.close())
    assert got == whole
    assert parser.version == "5.0.1"


def test_multibyte_utf8_split_across_chunks() -> None:
    data = render_frame([("Event", "Newchannel"), ("CallerIDName", "Zoë Ünal")])
    parser = FrameParser()
    cut = data.index("ë".encode()) + 1
    frames = parser.feed(data[:cut]) + parser.feed(data[cut:])
    assert frames == [{"event": "Newchannel", "calleridname": "Zoë Ünal"}]


def test_follows_body_and_lines_without_colon() -> None:
    frames = parse_transcript((TRANSCRIPTS / "transfers_and_junk.txt").read_bytes())
    follows = frames[0]
    assert follows["response"] == "Follows"
    assert follows["actionid"] == "cmd-1"
    assert "1 active channel" in follows[BODY_KEY]
    assert "--END COMMAND--" not in follows[BODY_KEY]
    junk = [f for f in frames if f.get(BODY_KEY) == "this line has no colon at all"]
    assert junk and junk[0]["event"] == "Hangup"


def test_repeated_headers_become_lists_and_empty_values_survive() -> None:
    frame = parse_block("Response: Success\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nAccountCode:\r\n")
    assert frame == {"response": "Success", "chanvariable": ["A=1", "B=2"], "accountcode": ""}


def test_empty_input_gives_nothing() -> None:
    assert parse_transcript(b"") == []
    assert parse_transcript(b"\r\n\r\n\r\n") == []


def test_core_fixture_transcripts_parse() -> None:
    files = sorted(CORE_FIXTURES.glob("*.txt")) + sorted(TRANSCRIPTS.glob("*.txt"))
    assert files
    for path in files:
        frames = parse_transcript(path.read_bytes())
        assert frames, path
        assert all(isinstance(f, dict) and f for f in frames)
