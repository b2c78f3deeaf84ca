"""consent.agi_protocol: FastAGI framing and replies, sans-IO (bytes in, items out)."""

from __future__ import annotations

import pytest

from consent.agi_protocol import (
    MAX_LINE,
    AgiEnvironment,
    AgiHangup,
    AgiParser,
    AgiProtocolError,
    AgiReply,
    format_command,
    parse_reply,
)

NONCE = "n0nce"
SYNCED = f"200 result=1 ({NONCE})\n".encode()  # Asterisk's reply to the parser's resync command
ENV = ("agi_network: yes\nagi_network_script: consent\nagi_channel: PJSIP/caller-00000001\n"
       "agi_calleridname: 张三\nagi_arg_1: direction=inbound\n\n").encode() + SYNCED
REPLIES = b"200 result=1 (0x55d0) endpos=1234\nHANGUP\n511 Command Not Permitted on a dead channel\n"


def feed_all(parser: AgiParser, data: bytes, split: int) -> list[object]:
    return parser.feed(data[:split]) + parser.feed(data[split:])


@pytest.mark.parametrize("split", range(len(ENV + REPLIES) + 1))
def test_every_split_point_gives_the_same_items(split: int) -> None:
    items = feed_all(AgiParser(NONCE), ENV + REPLIES, split)
    assert items[0] == AgiEnvironment({
        "agi_network": "yes", "agi_network_script": "consent", "agi_channel": "PJSIP/caller-00000001",
        "agi_calleridname": "张三", "agi_arg_1": "direction=inbound"})  # a split UTF-8 character stays whole
    reply = items[1]
    assert isinstance(reply, AgiReply) and (reply.code, reply.result, reply.data) == (200, "1", "0x55d0")
    assert reply.fields == {"endpos": "1234"}
    assert items[2] == AgiHangup()
    assert isinstance(items[3], AgiReply) and items[3].code == 511
    assert len(items) == 4


def test_reply_kinds() -> None:
    timeout = parse_reply("200 result= (timeout)")
    assert timeout.ok and timeout.result == "" and timeout.data == "timeout" and not timeout.failed
    failed = parse_reply("200 result=-1")
    assert failed.failed  # hung up OR failed: the connection asks CHANNEL STATUS before deciding
    assert parse_reply("510 Invalid or unknown command").code == 510
    with pytest.raises(AgiProtocolError):
        parse_reply("hello")


def test_multi_line_usage_is_one_reply() -> None:
    parser = AgiParser(NONCE)
    parser.feed(b"\n" + SYNCED)  # empty environment
    items = parser.feed(b"520-Invalid command syntax.  Proper usage follows:\nUsage: GET DATA\n"
                        b"520 End of proper usage.\n200 result=0\n")
    assert [getattr(i, "code", None) for i in items] == [520, 200]
    assert "Usage: GET DATA" in items[0].text  # type: ignore[union-attr]


def test_hostile_peer_cannot_grow_the_buffers() -> None:
    with pytest.raises(AgiProtocolError):
        AgiParser().feed(b"x" * (MAX_LINE + 1))
    with pytest.raises(AgiProtocolError):
        AgiParser().feed(b"agi_x: y\n" * 300)


def test_commands_are_quoted_and_injection_is_refused() -> None:
    assert format_command("GET DATA", "/p/q", 3000, 1) == b"GET DATA /p/q 3000 1\n"
    assert format_command("STREAM FILE", "/p/n", "") == b'STREAM FILE /p/n ""\n'
    assert format_command("EXEC", "MixMonitor", "/m/a.wav,i(V),touch /m/a.wav.closed") == \
        b'EXEC MixMonitor "/m/a.wav,i(V),touch /m/a.wav.closed"\n'
    assert format_command("SET VARIABLE", "X", 'a"b\\c') == b'SET VARIABLE X "a\\"b\\\\c"\n'
    with pytest.raises(AgiProtocolError):
        format_command("SET VARIABLE", "PBXREC_RESULT", "record\nEXEC System rm")
