"""An agent phone that completes an attended transfer with SIP REFER + Replaces (RFC 3891).

One sipp UAS on the agent's port holds both of the phone's dialogs with FreeSWITCH:

* the queue call (no ``X-Consult`` header): answered, then ``refer_after_ms`` later a REFER in
  that dialog with ``Refer-To: <sip:consult@fs?Replaces=<consult call-id>;to-tag=..;from-tag=..>``,
  the 202, FreeSWITCH's NOTIFYs answered, and the dialog ends (FreeSWITCH's BYE, else the
  phone's own after 4 s, RFC 5589);
* the consultation (an INVITE carrying ``X-Consult: yes``): answered; its Call-ID and FreeSWITCH's
  tag are kept in sipp GLOBAL variables, which the queue call's REFER reads.  It ends with
  FreeSWITCH's BYE (the replaced dialog).

The consultation is placed by the test through ESL (``originate {sip_h_X-Consult=yes}<agent
phone> &bridge(<colleague>)``): the phone then has, as a real phone after its consult call, one
dialog to the held caller and one to the colleague, and joins them with REFER/Replaces.
"""

from __future__ import annotations

from pathlib import Path

from pbx_recorder.testbed.freeswitch_pcap import caller_pcap
from pbx_recorder.testbed.freeswitch_sipp import SDP
from pbx_recorder.testbed.ports import DEFAULT_ALLOCATOR, PortAllocator
from pbx_recorder.testbed.sipp import _SippProcess
from pbx_recorder.testbed.sipp_scenarios import _OK_LAST, _in_dialog  # the agent's 200 OK, requests


def _answer(tag: str) -> str:
    return f"""<send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag={tag}
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="300"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag={tag}
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

{SDP}
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>"""


def replaces_uas_scenario(pcap: Path, fs_sip_port: int, refer_after_ms: int, talk_ms: int) -> str:
    """The sipp scenario of the module docstring."""
    replaces = ("Replaces=[$consult_callid]%3Bto-tag%3D[$consult_fs_tag]%3Bfrom-tag%3Dconsult[pid]")
    refer = _in_dialog("REFER", 2, f"Refer-To: <sip:consult@127.0.0.1:{fs_sip_port}?{replaces}>\n      "
                                   "Referred-By: <sip:agent@[local_ip]:[local_port]>\n      ")
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="pbx-recorder freeswitch agent refer replaces">
  <Global variables="consult_callid,consult_fs_tag"/>
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="X-Consult: yes" search_in="msg" check_it="false" assign_to="is_consult"/>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="peer_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="own_to"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" check_it="true" assign_to="peer_contact"/>
      <!-- every INVITE sets them; the consultation's, which comes last, is the one the REFER reads -->
      <ereg regexp=".*" search_in="hdr" header="Call-ID:" check_it="true" assign_to="consult_callid"/>
      <ereg regexp="tag=([^;>[:space:]]*)" search_in="hdr" header="From:" check_it="true"
            assign_to="consult_from,consult_fs_tag"/>
    </action>
  </recv>
  <nop next="consult" test="is_consult"/>
  {_answer("[pid]SIPpTag01[call_number]")}
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="{refer_after_ms}"/>
  {refer}
  <recv response="202"/>
  <label id="wait"/>
  <recv request="NOTIFY" optional="true" next="notify"/>
  <recv request="BYE" timeout="4000" ontimeout="own_bye"/>
  {_OK_LAST}
  <nop next="end"/>
  <label id="notify"/>
  {_OK_LAST}
  <nop next="wait"/>
  <label id="own_bye"/>
  {_in_dialog("BYE", 3)}
  <recv response="200"/>
  <nop next="end"/>
  <label id="consult"/>
  {_answer("consult[pid]")}
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <recv request="BYE" timeout="{talk_ms}"/>
  {_OK_LAST}
  <label id="end"/>
  <timewait milliseconds="500"/>
  <Reference variables="consult_from"/>
</scenario>
"""


class FsReplacesAgent(_SippProcess):
    """The agent phone of the module docstring on ``sip_port``; ends on its own after two calls."""

    def __init__(self, workdir: str | Path, sip_port: int, fs_sip_port: int, *, refer_after_ms: int = 9000,
                 timeout_s: float = 120.0, ports: PortAllocator = DEFAULT_ALLOCATOR) -> None:
        talk_ms = int(timeout_s * 1000)
        pcap = caller_pcap(Path(workdir) / "pcaps", talk_ms)
        scenario = replaces_uas_scenario(pcap, fs_sip_port, refer_after_ms, talk_ms)
        super().__init__(Path(workdir), "fs-replaces", scenario,
                         ["-l", "2", "-trace_stat", "-stf", "stats.csv", "-fd", "1", "-trace_msg"], 2,
                         timeout_s, ports)
        self.sip_port = sip_port
        self.cmd[self.cmd.index("-p") + 1] = str(sip_port)
