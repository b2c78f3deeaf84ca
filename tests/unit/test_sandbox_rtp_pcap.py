"""pbx_recorder.testbed.rtp_pcap: one continuous RTP stream per call (Asterisk 22 dropped the
replayed sequence numbers of the looped 7 s pcap and its recordings stopped growing)."""

from __future__ import annotations

import struct

import pytest

from pbx_recorder.testbed import rtp_pcap
from pbx_recorder.testbed.rtp_pcap import (
    PT_ALAW,
    PT_EVENT,
    SAMPLES,
    call_pcap,
    pcap_bytes,
    rtp_stream,
)
from pbx_recorder.testbed.sipp_scenarios import digits_of, uac_scenario, uas_scenario

AUDIO = bytes(range(256)) * 4  # 1024 "samples": not a multiple of 160, so the loop wraps mid-packet


def parse_pcap(data: bytes) -> list[tuple[int, dict[str, int], bytes]]:
    """(send time in ms, RTP header fields, payload) of each packet; checks the framing."""
    magic, major, minor, _, _, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1) and snaplen >= 1500
    out, pos = [], 24
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + incl]
        assert incl == orig == len(frame)
        assert frame[12:14] == b"\x08\x00"  # IPv4
        ip = frame[14:34]
        assert ip[0] == 0x45 and ip[9] == 17 and struct.unpack("!H", ip[2:4])[0] == len(frame) - 14
        total = sum(struct.unpack("!10H", ip))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        assert total == 0xFFFF  # header checksum valid
        udp_len = struct.unpack("!H", frame[38:40])[0]
        assert udp_len == len(frame) - 34
        rtp = frame[42:]
        b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", rtp[:12])
        assert b0 == 0x80
        out.append((sec * 1000 + usec // 1000,
                    {"marker": b1 >> 7, "pt": b1 & 0x7F, "seq": seq, "ts": ts, "ssrc": ssrc}, rtp[12:]))
        pos += 16 + incl
    return out


def test_audio_only_stream_is_continuous_for_the_whole_call() -> None:
    packets = parse_pcap(pcap_bytes(rtp_stream(30_000, AUDIO)))
    assert len(packets) == 1500
    assert [h["seq"] for _, h, _ in packets] == list(range(1500))
    assert [h["ts"] for _, h, _ in packets] == [n * SAMPLES for n in range(1500)]
    assert [at for at, _, _ in packets] == [n * 20 for n in range(1500)]
    assert {h["pt"] for _, h, _ in packets} == {PT_ALAW} and len({h["ssrc"] for _, h, _ in packets}) == 1
    payload = b"".join(p for _, _, p in packets)
    assert payload == (AUDIO * (len(payload) // len(AUDIO) + 1))[:len(payload)]  # the loop has no seam


def test_digit_is_an_rfc4733_event_inside_the_stream() -> None:
    packets = parse_pcap(pcap_bytes(rtp_stream(5_000, AUDIO, [(1_010, "1"), (3_000, "#")])))
    seqs = [h["seq"] for _, h, _ in packets]
    assert seqs == list(range(len(seqs)))  # one stream: never a repeated sequence number
    assert [at for at, _, _ in packets] == sorted(at for at, _, _ in packets)
    events = [(at, h, p) for at, h, p in packets if h["pt"] == PT_EVENT]
    first = [e for e in events if e[2][0] == 1]
    assert first[0][0] == 1_000 and first[0][1]["marker"] == 1
    assert {h["ts"] for _, h, _ in first} == {1_000 // 20 * SAMPLES}  # one timestamp per event
    durations = [struct.unpack("!H", p[2:4])[0] for _, _, p in first]
    assert durations == sorted(durations) and durations[-1] == 1600  # 200 ms held
    assert [p[1] >> 7 for _, _, p in first][-3:] == [1, 1, 1]  # the end, sent three times
    assert {p[0] for _, _, p in events} == {1, 11}
    # audio goes on after the digit, on the same clock
    after = next(h for at, h, _ in packets if at == 1_200)
    assert after["pt"] == PT_ALAW and after["ts"] == 1_200 // 20 * SAMPLES
    assert packets[-1][0] == 4_980


def test_bad_digits_are_refused() -> None:
    with pytest.raises(ValueError, match="not a DTMF digit"):
        rtp_stream(1_000, AUDIO, [(100, "x")])
    with pytest.raises(ValueError, match="overlap"):
        rtp_stream(5_000, AUDIO, [(1_000, "1"), (1_100, "2")])


def test_call_pcap_is_built_once_with_sox_audio(tmp_path) -> None:  # noqa: ANN001
    first = call_pcap(2_000, [(500, "5")], cache_dir=tmp_path)
    again = call_pcap(2_000, [(500, "5")], cache_dir=tmp_path)
    other = call_pcap(3_000, cache_dir=tmp_path)
    assert first == again != other
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({first.name, other.name})
    packets = parse_pcap(first.read_bytes())
    audio = b"".join(p for _, h, p in packets if h["pt"] == PT_ALAW)
    assert len(set(audio)) > 50  # real sox audio, not a constant
    assert len(rtp_pcap._sox_alaw()) == 8000


def test_scenarios_play_one_pcap_once() -> None:
    xml = uac_scenario("8001", "4930", "", 9_000, "/tmp/x/call-1.pcap")
    assert xml.count("play_pcap_audio") == 1 and 'play_pcap_audio="/tmp/x/call-1.pcap"' in xml
    assert '<recv request="BYE" timeout="9000"' in xml
    assert uas_scenario("/tmp/x/agent.pcap").count("play_pcap_audio") == 1
    with pytest.raises(ValueError):
        uac_scenario("8001", "4930", "", 1_000, '/tmp/"x.pcap')
    assert digits_of([(0, "audio"), (1_500, "dtmf:1"), (2_500, "dtmf:#")]) == [(1_500, "1"), (2_500, "#")]
    with pytest.raises(ValueError):
        digits_of([(0, "play:/etc/passwd")])


def test_a_cache_folder_others_can_write_is_refused(tmp_path) -> None:  # noqa: ANN001
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match="not ours alone"):
        call_pcap(1_000, cache_dir=shared)


def test_refer_scenario_transfers_then_hangs_up_its_own_leg() -> None:
    xml = uas_scenario("/tmp/x/agent.pcap", refer_to="9002", refer_after_ms=4_000)
    order = [xml.index(s) for s in ('<pause milliseconds="4000"/>', "REFER [$peer_contact]",
                                    "Refer-To: <sip:9002@127.0.0.1>", '<recv response="202"/>',
                                    "BYE [$peer_contact]", "<timewait")]
    assert order == sorted(order)
    assert xml.count('<recv request="NOTIFY"/>') == 2 and xml.count("<timewait") == 1
    with pytest.raises(ValueError):
        uas_scenario("/tmp/x/agent.pcap", refer_to="9002>\r\nX: y")
