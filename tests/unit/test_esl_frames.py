"""ESL framing (esl/frames.py): every frame type, split at every byte boundary, hostile values."""

from __future__ import annotations

import pytest

from esl.frames import (
    API_RESPONSE,
    AUTH_REQUEST,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    EslParser,
    parse_event_plain,
    render_event_plain,
    render_frame,
)
from pbx_recorder.errors import EslError
from tests.unit.esl_samples import A_LEG, T0, api_response, command_reply, ev

CHINESE = "张伟（客户）"
HOSTILE_NAME = "Eve%0D%0AEvent-Name: CHANNEL_HANGUP_COMPLETE%0A%0AContent-Type: api/response"

_BG_BODY = (
    b"Job-UUID: 7f4db78a-17d7-11dd-b7a0-db4edd065621\nJob-Command: originate\n"
    b"Job-Command-Arg: sofia/default/1005%20%27%26park%27\nEvent-Name: BACKGROUND_JOB\n"
    b"Content-Length: 41\n\n+OK 7f4de4bc-17d7-11dd-b7a0-db4edd065621\n"
)
# the documented shape (mod_event_socket docs): Content-Length first, then Content-Type
BG_JOB = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(_BG_BODY) + _BG_BODY


def session_bytes(repeat: int = 20) -> bytes:
    """A whole inbound session: auth, replies, events (one with a nested body), disconnect."""
    hostile = ev("CHANNEL_CREATE", A_LEG, T0, {"Caller-Caller-ID-Name": CHINESE * repeat})
    return b"".join(
        [
            render_frame([("Content-Type", AUTH_REQUEST)]),
            command_reply("+OK accepted"),
            command_reply("+OK event listener enabled plain"),
            render_event_plain(ev("CHANNEL_ANSWER", A_LEG, T0)),
            render_event_plain(hostile),
            api_response("+OK Success\n"),
            render_event_plain(ev("BACKGROUND_JOB", A_LEG, T0), inner="+OK 42\nsecond line\n"),
            render_frame([("Content-Type", DISCONNECT_NOTICE)], b"Disconnected, goodbye.\n"),
        ]
    )


def kinds(frames: list) -> list[str]:
    return [f.content_type for f in frames]


EXPECTED = [
    AUTH_REQUEST,
    COMMAND_REPLY,
    COMMAND_REPLY,
    "text/event-plain",
    "text/event-plain",
    API_RESPONSE,
    "text/event-plain",
    DISCONNECT_NOTICE,
]


def test_whole_session_in_one_chunk() -> None:
    frames = EslParser().feed(session_bytes())
    assert kinds(frames) == EXPECTED
    assert frames[1].reply_text == "+OK accepted"
    assert frames[5].text() == "+OK Success\n"
    answer = frames[3].event()
    assert answer is not None and answer.name == "CHANNEL_ANSWER" and answer.get("Unique-ID") == A_LEG
    job = frames[6].event()
    assert job is not None and job.body == "+OK 42\nsecond line\n"


def test_split_at_every_byte_boundary() -> None:
    data = session_bytes()
    whole = [(f.headers, f.body) for f in EslParser().feed(data)]
    for cut in range(1, len(data)):
        parser = EslParser()
        frames = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert [(f.headers, f.body) for f in frames] == whole, cut
        assert parser.pending == 0


def test_byte_at_a_time() -> None:
    parser, data = EslParser(), session_bytes()
    frames = [f for i in range(len(data)) for f in parser.feed(data[i : i + 1])]
    assert kinds(frames) == EXPECTED


def test_content_length_counts_bytes_not_characters() -> None:
    frames = EslParser().feed(session_bytes(repeat=350))  # a 2,100-character Chinese name
    hostile = frames[4].event()
    assert hostile is not None and hostile.get("Caller-Caller-ID-Name") == CHINESE * 350
    assert len(hostile.get("Caller-Caller-ID-Name").encode()) > len(CHINESE * 350)
    assert kinds(frames) == EXPECTED


def test_documented_background_job_with_nested_content_length() -> None:
    frame = EslParser().feed(BG_JOB)[0]
    event = frame.event()
    assert event is not None and event.name == "BACKGROUND_JOB"
    assert event.get("Job-Command-Arg") == "sofia/default/1005 '&park'"
    assert event.body == "+OK 7f4de4bc-17d7-11dd-b7a0-db4edd065621\n"


def test_percent_encoded_crlf_stays_inside_one_value() -> None:
    headers = ev("CHANNEL_CREATE", A_LEG, T0)
    body = b"".join(f"{k}: {v}\n".encode() for k, v in headers if k != "Caller-Caller-ID-Name")
    body += f"Caller-Caller-ID-Name: {HOSTILE_NAME}\n".encode() + b"\n"
    data = render_frame([("Content-Type", "text/event-plain")], body) + api_response("+OK\n")
    frames = EslParser().feed(data)
    assert kinds(frames) == ["text/event-plain", API_RESPONSE]
    event = frames[0].event()
    assert event is not None
    assert event.name == "CHANNEL_CREATE"  # the injected Event-Name did not replace the real one
    assert event.get("Caller-Caller-ID-Name").startswith("Eve\r\nEvent-Name: CHANNEL_HANGUP_COMPLETE")
    assert "Content-Type" not in event.headers


def test_repeated_header_keeps_the_first_value() -> None:
    event = parse_event_plain(b"Event-Name: CHANNEL_ANSWER\nEvent-Name: CHANNEL_HANGUP\n\n")
    assert event.name == "CHANNEL_ANSWER"


def test_crlf_line_ends_are_tolerated() -> None:
    data = b"Content-Type: api/response\r\nContent-Length: 3\r\n\r\n+OK"
    frame = EslParser().feed(data)[0]
    assert frame.content_type == API_RESPONSE and frame.body == b"+OK"


def test_json_event() -> None:
    data = render_frame(
        [("Content-Type", "text/event-json")],
        b'{"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "abc", "_body": "x"}',
    )
    event = EslParser().feed(data)[0].event()
    assert event is not None and event.name == "CHANNEL_ANSWER" and event.body == "x"


def test_malformed_json_is_an_esl_error() -> None:
    frame = EslParser().feed(render_frame([("Content-Type", "text/event-json")], b"{nope"))[0]
    with pytest.raises(EslError):
        frame.event()


@pytest.mark.parametrize(
    "data", [b"Content-Length: -1\n\n", b"Content-Length: 12x\n\n", b"Content-Length: 99999999999\n\n"]
)
def test_bad_content_length_raises(data: bytes) -> None:
    with pytest.raises(EslError):
        EslParser().feed(data)


def test_header_block_is_bounded() -> None:
    parser = EslParser(max_head=1024)
    with pytest.raises(EslError):
        parser.feed(b"X-Long: " + b"a" * 2000)


def test_header_lookup_is_exact() -> None:
    event = parse_event_plain(b"Caller-ID-Name-Extra: x\nCaller-ID-Name: Jane%20Doe\nEmpty:\nBlank: \n\n")
    assert event.get("Caller-ID-Name") == "Jane Doe" and event.get("Caller-ID") == ""
    assert event.get("Empty", "?") == "" and event.get("Blank", "?") == "" and event.get("Nope", "?") == "?"
    assert "Caller-ID-Name" in event.headers and "Caller" not in event.headers
    assert dict(event.headers)["Caller-ID-Name"] == "Jane Doe" and len(event.headers) == 4
