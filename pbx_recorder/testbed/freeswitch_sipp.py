"""sipp against a private FreeSWITCH: a UAC with continuous caller audio and RFC 2833 digits,
and a UAS (queue agent) that answers and talks until the BYE.

Both offer ``PCMA/8000`` with ``a=ptime:30`` (the packets of the caller pcap are 30 ms: offering
20 ms makes FreeSWITCH record a shorter file) and ``telephone-event/8000`` as PT 101.  The
caller's audio is ONE pcap for the whole call (:mod:`freeswitch_pcap`), started right after
the ACK, so digits never interrupt the stream.  The UAC sends its BYE after
``hangup_after_s`` unless FreeSWITCH hangs up first (both count as success).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

from pbx_recorder.testbed.freeswitch_pcap import caller_pcap
from pbx_recorder.testbed.ports import DEFAULT_ALLOCATOR, PortAllocator
from pbx_recorder.testbed.sipp import SippResult, _SippProcess
from pbx_recorder.testbed.sipp_scenarios import uac_scenario

SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:30
a=sendrecv
"""

_OK_TO_BYE = """<send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:{user}@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>"""


def fs_uac_scenario(did: str, from_user: str, from_display: str, hangup_after_ms: int, pcap: Path | None,
                    headers: dict[str, str] | None = None) -> str:
    """A UAC: INVITE ``did``, play ``pcap`` from the ACK on (none: no RTP at all), BYE at
    ``hangup_after_ms`` (> 0): the Asterisk tests' scenario with FreeSWITCH's offer (ptime 30)."""
    if hangup_after_ms <= 0:
        raise ValueError("hangup_after_ms must be > 0 (the caller hangs up then unless FreeSWITCH did)")
    return uac_scenario(did, from_user, from_display, hangup_after_ms, str(pcap) if pcap else "", headers,
                        sdp=SDP, name="pbx-recorder freeswitch uac")


def fs_uas_scenario(pcap: Path, answer_after_ms: int = 300, talk_ms: int = 120_000) -> str:
    """An agent phone: answer every INVITE, talk (``pcap``) until FreeSWITCH sends BYE."""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="pbx-recorder freeswitch uas agent">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="{answer_after_ms}"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

{SDP}
    ]]>
  </send>
  <recv request="ACK" rtd="true" crlf="true"/>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <recv request="BYE" timeout="{talk_ms}"/>
  {_OK_TO_BYE.format(user="agent")}
  <timewait milliseconds="500"/>
</scenario>
"""


class FsSippCall(_SippProcess):
    """UAC: ``calls`` calls (``concurrent`` at once) to ``did`` on FreeSWITCH's SIP port.

    ``dtmf``: ``[(ms_after_answer, digit)]`` sent as RFC 2833 inside the caller's continuous audio;
    ``mute``: the caller sends no RTP at all.
    """

    def __init__(self, workdir: str | Path, sip_port: int, did: str, *, hangup_after_s: float = 5.0,
                 dtmf: Sequence[tuple[int, str]] = (), from_user: str = "5551234", from_display: str = "",
                 test_tag: str = "", calls: int = 1, concurrent: int | None = None, rate_per_s: float = 10.0,
                 timeout_s: float | None = None, mute: bool = False,
                 ports: PortAllocator = DEFAULT_ALLOCATOR) -> None:
        if mute and dtmf:
            raise ValueError("a mute caller sends no RTP, so no RFC 2833 digits either")
        hang_ms = int(hangup_after_s * 1000)
        pcap = None if mute else caller_pcap(Path(workdir) / "pcaps", hang_ms + 2000, dtmf)
        headers = {"X-Test-Tag": test_tag} if test_tag else {}
        scenario = fs_uac_scenario(did, from_user, from_display, hang_ms, pcap, headers)
        args = [f"127.0.0.1:{sip_port}", "-l", str(concurrent or calls), "-r", str(rate_per_s)]
        bound = timeout_s or (hangup_after_s + calls / max(rate_per_s, 0.1) + 20)
        super().__init__(Path(workdir), f"fs-uac-{did}", scenario, args, calls, bound, ports)


class FsSippUas(_SippProcess):
    """A queue agent on ``sip_port`` that answers up to ``calls`` calls and talks until the BYE.

    sipp writes its statistics every second to ``stats.csv`` (``-trace_stat``): :meth:`counts`
    reads the successful and failed calls from it.  With ``calls`` above what a test needs (a queue
    may retry its agent after a failed first bridge), end it with :meth:`finish`.
    """

    def __init__(self, workdir: str | Path, sip_port: int, *, calls: int = 1, timeout_s: float = 120.0,
                 answer_after_ms: int = 300, ports: PortAllocator = DEFAULT_ALLOCATOR) -> None:
        talk_ms = int(timeout_s * 1000)
        pcap = caller_pcap(Path(workdir) / "pcaps", talk_ms)
        super().__init__(Path(workdir), "fs-uas", fs_uas_scenario(pcap, answer_after_ms, talk_ms),
                         ["-l", str(calls), "-trace_stat", "-stf", "stats.csv", "-fd", "1"], calls,
                         timeout_s, ports)
        self.sip_port = sip_port
        self.cmd[self.cmd.index("-p") + 1] = str(sip_port)

    def finish(self, timeout: float = 20.0) -> SippResult:
        """A soft exit (SIGUSR1: no new call is taken, the calls in progress end normally), then
        collect.  The return code then says nothing about ``calls``: judge by :meth:`counts`."""
        if self.running:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGUSR1)
        return self.wait(timeout)

    def counts(self) -> tuple[int, int]:
        """``(successful, failed)`` calls so far, from sipp's own statistics file."""
        path = self.workdir / "stats.csv"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        if len(lines) < 2:
            return 0, 0
        row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
        return int(row["SuccessfulCall(C)"]), int(row["FailedCall(C)"])
