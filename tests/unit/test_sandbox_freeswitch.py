"""The FreeSWITCH test bed's pure parts: the caller pcap (continuous RTP with RFC 2833 digits)
and the configuration builder (the shipped event socket example rendered, never reshaped)."""

from __future__ import annotations

import re
import struct
import xml.dom.minidom
from pathlib import Path

import pytest

from pbx_recorder.testbed import freeswitch_conf
from pbx_recorder.testbed.freeswitch_pcap import PTIME_MS, _pcap_records, caller_pcap, rtp_packets

REPO = Path(__file__).resolve().parents[2]


def _rtp(packet: bytes) -> tuple[int, int, int, int]:
    b1, seq, stamp = packet[1], *struct.unpack("!HI", packet[2:8])
    return b1 & 0x7F, b1 >> 7, seq, stamp


def test_audio_is_one_continuous_30ms_stream() -> None:
    packets = rtp_packets(3000)
    assert len(packets) == 100
    assert [at for at, _ in packets] == list(range(0, 3000, PTIME_MS))
    fields = [_rtp(p) for _, p in packets]
    assert {pt for pt, *_ in fields} == {8}
    assert [seq for *_, seq, _ in fields] == list(range(fields[0][2], fields[0][2] + 100))
    assert [stamp for *_, stamp in fields] == list(range(0, 24000, 240))
    assert {len(p) for _, p in packets} == {12 + 240}
    assert len({p[8:12] for _, p in packets}) == 1  # one SSRC


def test_digit_replaces_audio_with_rfc2833_events_then_audio_resumes() -> None:
    packets = rtp_packets(2000, [(600, "7")])
    events = [(at, p) for at, p in packets if _rtp(p)[0] == 101]
    assert len(events) == 8 + 2  # 240 ms of 30 ms updates, the end packet sent three times
    assert _rtp(events[0][1])[1] == 1 and all(_rtp(p)[1] == 0 for _, p in events[1:])  # marker first
    assert {_rtp(p)[3] for _, p in events} == {600 * 8}  # one event, one timestamp
    codes = [struct.unpack("!BBH", p[12:16]) for _, p in events]
    assert {c for c, _, _ in codes} == {7}
    assert [bool(flags & 0x80) for _, flags, _ in codes] == [False] * 7 + [True] * 3
    assert codes[-1][2] == 8 * 240
    audio_after = [at for at, p in packets if _rtp(p)[0] == 8 and at > 600]
    assert audio_after[0] == 840 and audio_after[-1] == 1980
    seqs = [_rtp(p)[2] for _, p in packets]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_caller_pcap_round_trips_and_is_cached(tmp_path: Path) -> None:
    path = caller_pcap(tmp_path, 1500, [(300, "#")])
    assert path.is_absolute() and caller_pcap(tmp_path, 1500, [(300, "#")]) == path
    assert [r for r in _pcap_records(path.read_bytes())] == [p for _, p in rtp_packets(1500, [(300, "#")])]


def test_event_socket_example_is_rendered_not_rewritten() -> None:
    example = (REPO / "etc" / "freeswitch" / "event_socket.conf.xml").read_text()
    out = freeswitch_conf.render_event_socket(example, 18999, "/tmp/x/esl.password")
    assert 'name="listen-port" value="18999"' in out and "cat /tmp/x/esl.password" in out
    assert 'name="listen-ip" value="127.0.0.1"' in out
    assert 'name="apply-inbound-acl" value="pbxrec_esl"' in out
    assert out.replace("18999", "8021").replace("cat /tmp/x/esl.password",
                                                "cat /etc/freeswitch/pbx-recorder-esl.password") == example
    with pytest.raises(ValueError, match="changed shape"):
        freeswitch_conf.render_event_socket(example.replace("listen-port", "port"), 1, "/x")


def test_sandbox_config_is_well_formed_and_includes_the_product_files(tmp_path: Path) -> None:
    lay = freeswitch_conf.FsLayout(
        workdir=str(tmp_path), sip_port=5080, esl_port=8021, socket_host="127.0.0.1", socket_port=8084,
        rtp_range=(30000, 30399), dialplan_snippet="/repo/dialplan/freeswitch/pbx-recorder.xml",
        acl_snippet="/repo/etc/freeswitch/acl-pbx-recorder.xml",
        cdr_csv_conf="/repo/etc/freeswitch/cdr_csv.conf.xml",
        event_socket_conf="/w/conf/event_socket.conf.xml",
        agent_ports=(5070,))
    text = freeswitch_conf.freeswitch_xml(lay)
    xml.dom.minidom.parseString(text)  # raises on malformed XML
    for path in (lay.dialplan_snippet, lay.acl_snippet, lay.cdr_csv_conf, lay.event_socket_conf):
        assert f'cmd="include" data="{path}"' in text
    assert 'data="pbxrec_socket=127.0.0.1:8084"' in text
    assert "sofia/internal/agent1@127.0.0.1:5070" in text


@pytest.mark.parametrize("name", ["event_socket.conf.xml", "acl-pbx-recorder.xml", "cdr_csv.conf.xml"])
def test_shipped_freeswitch_files_are_well_formed(name: str) -> None:
    xml.dom.minidom.parse(str(REPO / "etc" / "freeswitch" / name))


def test_shipped_dialplan_is_well_formed() -> None:
    doc = xml.dom.minidom.parse(str(REPO / "dialplan" / "freeswitch" / "pbx-recorder.xml"))
    apps = [a.getAttribute("application") for a in doc.getElementsByTagName("action")]
    assert apps.index("set") < apps.index("socket") < apps.index("execute_extension")


@pytest.mark.parametrize("path", ["dialplan/freeswitch/pbx-recorder.xml",
                                  "etc/freeswitch/event_socket.conf.xml",
                                  "etc/freeswitch/acl-pbx-recorder.xml", "etc/freeswitch/cdr_csv.conf.xml"])
def test_no_preprocess_line_hides_in_a_comment(path: str) -> None:
    """FreeSWITCH's pre-processor is line-based: an X-PRE-PROCESS inside an XML comment still runs
    (a documented example ``set`` in a comment once overrode the real socket address)."""
    text = (REPO / path).read_text()
    comments = re.findall(r"<!--.*?-->", text, flags=re.S)
    assert not [c for c in comments if "X-PRE-PROCESS" in c], path


def test_sip_port_is_free_for_tcp_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """sofia binds UDP and TCP on the SIP port: a port whose TCP twin is taken made the profile fail
    ("Error Creating SIP UA") on a machine shared with other test beds."""
    import socket

    from pbx_recorder.testbed import freeswitch

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        other = _free_for_both()  # checked for both protocols: with parallel test workers a
        offers = iter([taken, other])  # port freed for UDP alone may have a busy TCP twin
        monkeypatch.setattr(freeswitch, "free_udp_port", lambda: next(offers))
        assert freeswitch.free_sip_port() == other


def _free_for_both() -> int:
    import socket

    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
