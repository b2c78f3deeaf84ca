"""The FreeSWITCH test bed's agent phones, without a FreeSWITCH: sipp's statistics file read by
``FsSippUas.counts`` (the header is sipp 3.6.1's own), and the REFER/Replaces scenario's shape."""

from __future__ import annotations

import xml.dom.minidom
from pathlib import Path

from pbx_recorder.testbed.freeswitch_replaces import replaces_uas_scenario
from pbx_recorder.testbed.freeswitch_sipp import FsSippUas

HEADER = ("StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);TargetRate;CallRate(P);"
          "CallRate(C);IncomingCall(P);IncomingCall(C);OutgoingCall(P);OutgoingCall(C);TotalCallCreated;"
          "CurrentCall;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C)")


def _row(ok: int, failed: int) -> str:
    return f"t0;t1;t2;00:00:01;00:00:09;10;0;0;0;3;0;0;3;0;0;{ok};0;{failed}"


def test_counts_reads_the_last_line_of_sipps_statistics(tmp_path: Path) -> None:
    uas = FsSippUas(tmp_path, 5999, calls=6, timeout_s=2)
    assert uas.counts() == (0, 0)  # sipp has written nothing yet
    assert "-trace_stat" in uas.cmd and uas.cmd[uas.cmd.index("-stf") + 1] == "stats.csv"
    (uas.workdir / "stats.csv").write_text("\n".join([HEADER, _row(0, 0), _row(1, 0), _row(2, 1)]) + "\n")
    assert uas.counts() == (2, 1)


def test_replaces_scenario_is_wellformed_and_refers_the_consultation_dialog(tmp_path: Path) -> None:
    text = replaces_uas_scenario(tmp_path / "talk.pcap", 15080, refer_after_ms=9000, talk_ms=60_000)
    dom = xml.dom.minidom.parseString(text.encode())
    assert [g.getAttribute("variables") for g in dom.getElementsByTagName("Global")] == \
        ["consult_callid,consult_fs_tag"]
    sends = ["".join(c.data for c in s.childNodes if c.nodeType in (c.TEXT_NODE, c.CDATA_SECTION_NODE))
             for s in dom.getElementsByTagName("send")]
    refer = next(s for s in sends if "CSeq: 2 REFER" in s)
    assert ("Refer-To: <sip:consult@127.0.0.1:15080?Replaces=[$consult_callid]%3Bto-tag%3D[$consult_fs_tag]"
            "%3Bfrom-tag%3Dconsult[pid]>") in refer
    # the consultation answers with the tag the REFER names as the phone's own
    assert any("[last_To:];tag=consult[pid]" in s for s in sends)
