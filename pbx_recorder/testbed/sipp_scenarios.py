"""sipp scenario XML builders: a UAC that plays one continuous RTP stream (A-law audio with
RFC 2833 digits in it) and a UAS (queue agent) that answers and plays audio until the BYE.

The media of a call is one pcap made by :mod:`pbx_recorder.testbed.rtp_pcap` and played once
from the answer: replaying a short pcap repeats its RTP sequence numbers, which Asterisk 22
drops (its recording stopped growing at the first replay).  The UAC waits for a BYE from
Asterisk; if none comes by ``hangup_after_ms`` it sends its own BYE.
"""

from __future__ import annotations

SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
"""


def digits_of(timeline: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """``[(at_ms, "dtmf:<d>")]`` steps -> ``[(at_ms, d)]``.  ``"audio"`` steps are accepted and
    need nothing: the caller's audio runs for the whole call."""
    digits = []
    for at_ms, action in timeline:
        if action.startswith("dtmf:") and len(action) == 6:
            digits.append((at_ms, action[5]))
        elif action != "audio":
            raise ValueError(f"unknown sipp action {action!r}")
    return digits


def _play(pcap: str) -> str:
    if '"' in pcap or "<" in pcap or "&" in pcap:
        raise ValueError(f"pcap path not usable in a scenario: {pcap!r}")
    return f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'


def uac_scenario(did: str, from_user: str, from_display: str, hangup_after_ms: int, pcap: str,
                 headers: dict[str, str] | None = None, *, sdp: str = SDP,
                 name: str = "pbx-recorder uac") -> str:
    """The XML of a one-call UAC scenario (use ``-m N`` for N such calls) playing ``pcap``
    (``""``: the caller sends no RTP at all); ``sdp``: the offer (FreeSWITCH's has its own
    ptime, ``freeswitch_sipp``)."""
    for value in (did, from_user, from_display, *(headers or {}).values()):
        if "\r" in value or "\n" in value or "]]>" in value:
            raise ValueError("raw CR/LF or ']]>' cannot travel in a SIP header; percent-encode it")
    extra = "".join(f"{k}: {v}\n      " for k, v in (headers or {}).items())
    display = from_display.replace("\\", "\\\\").replace('"', '\\"')
    uri = f"sip:{from_user}@[local_ip]:[local_port]" if from_user else "sip:[local_ip]:[local_port]"
    from_hdr = f'"{display}" <{uri}>' if from_display else f"<{uri}>"
    body = [_play(pcap)] if pcap else []
    if hangup_after_ms > 0:
        body.append(f'<recv request="BYE" timeout="{hangup_after_ms}" ontimeout="1" next="98"/>\n'
                    '<label id="1"/>\n')
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="{name}">
  <send retrans="500">
    <![CDATA[
      INVITE sip:{did}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from_hdr};tag=[pid]SIPpTag00[call_number]
      To: <sip:{did}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      {extra}Content-Type: application/sdp
      Content-Length: [len]

{sdp}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:{did}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from_hdr};tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  {"".join(body)}
  <send retrans="500">
    <![CDATA[
      BYE sip:{did}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from_hdr};tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true" next="99"/>
  <label id="98"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <label id="99"/>
  <timewait milliseconds="200"/>
</scenario>
"""


_CAPTURE_DIALOG = """<action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="peer_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="own_to"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" check_it="true" assign_to="peer_contact"/>
    </action>"""

_OK_LAST = """<send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>"""


def _in_dialog(method: str, cseq: int, extra: str = "") -> str:
    """A request from the agent inside the dialog Asterisk opened (From/To swapped)."""
    return f"""<send retrans="500">
    <![CDATA[
      {method} [$peer_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From:[$own_to];tag=[pid]SIPpTag01[call_number]
      To:[$peer_from]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:agent@[local_ip]:[local_port]>
      {extra}Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>"""


def _refer(refer_to: str, after_ms: int) -> str:
    """The agent blind-transfers the caller with a SIP REFER (``Refer-To: <sip:refer_to@...>``),
    answers Asterisk's two NOTIFYs (``100 Trying``, then the final ``200 OK``), then hangs up
    its own leg (RFC 5589: the transferor sends the BYE; Asterisk 16 and 22 send none)."""
    if not refer_to.isalnum():
        raise ValueError(f"refer target must be an extension: {refer_to!r}")
    refer = _in_dialog("REFER", 2, f"Refer-To: <sip:{refer_to}@127.0.0.1>\n      "
                                   "Referred-By: <sip:agent@[local_ip]:[local_port]>\n      ")
    return f"""<pause milliseconds="{after_ms}"/>
  {refer}
  <recv response="202"/>
  <recv request="NOTIFY"/>
  {_OK_LAST}
  <recv request="NOTIFY"/>
  {_OK_LAST}
  {_in_dialog("BYE", 3)}
  <recv response="200" crlf="true"/>
  <timewait milliseconds="500"/>
"""


def uas_scenario(pcap: str, answer_after_ms: int = 300, refer_to: str = "", refer_after_ms: int = 0) -> str:
    """Answer every INVITE, play ``pcap`` (make it as long as the call can last) until Asterisk
    sends BYE; with ``refer_to``, blind-transfer the caller there by SIP REFER ``refer_after_ms``
    after the answer."""
    capture = _CAPTURE_DIALOG if refer_to else ""
    tail = _refer(refer_to, refer_after_ms) if refer_to else f"""<recv request="BYE"/>
  {_OK_LAST}
  <timewait milliseconds="500"/>"""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="pbx-recorder uas agent">
  <recv request="INVITE" crlf="true">{capture}</recv>
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
  {_play(pcap)}
  {tail}
</scenario>
"""
