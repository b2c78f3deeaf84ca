"""sipp scenario XML builders: a UAC that plays real A-law RTP and RFC 2833 digits on a
timeline, and a UAS (queue agent) that answers and plays audio until the BYE.

Timeline steps are ``(at_ms, action)`` with action ``"audio"`` (g711a.pcap, ~7 s) or
``"dtmf:<d>"`` (``dtmf_2833_<d>.pcap``).  Between steps the UAC waits for a BYE from
Asterisk; if none comes by ``hangup_after_ms`` it sends its own BYE.
"""

from __future__ import annotations

from collections.abc import Sequence

PCAP_DIR = "/usr/share/sip-tester"
AUDIO_PCAP_MS = 7000

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

_DTMF_NAMES = {"*": "star", "#": "pound"}


def build_timeline(hangup_after_ms: int, dtmf: Sequence[tuple[int, str]] = ()) -> list[tuple[int, str]]:
    """Continuous caller audio with RFC 2833 ``dtmf`` digits ``[(at_ms, digit)]`` in between.

    sipp stops the running pcap when it starts another, so audio is resumed 300 ms after
    each digit and replayed every 7 s (the length of g711a.pcap) until the hang-up.
    """
    digits = sorted(dtmf)
    starts = [0] + [at + 300 for at, _ in digits]
    stops = [at for at, _ in digits] + [hangup_after_ms]
    timeline = [(at, f"dtmf:{digit}") for at, digit in digits]
    for start, stop in zip(starts, stops, strict=True):
        timeline += [(t, "audio") for t in range(start, stop, AUDIO_PCAP_MS)]
    return sorted(timeline)


def pcap_for(action: str) -> str:
    if action == "audio":
        return f"{PCAP_DIR}/g711a.pcap"
    if action.startswith("dtmf:") and len(action) == 6:
        digit = action[5]
        return f"{PCAP_DIR}/dtmf_2833_{_DTMF_NAMES.get(digit, digit)}.pcap"
    raise ValueError(f"unknown sipp action {action!r}")


def _play(action: str) -> str:
    return f'<nop><action><exec play_pcap_audio="{pcap_for(action)}"/></action></nop>\n'


def uac_scenario(did: str, from_user: str, from_display: str, hangup_after_ms: int,
                 timeline: list[tuple[int, str]], headers: dict[str, str] | None = None) -> str:
    """The XML of a one-call UAC scenario (use ``-m N`` for N such calls)."""
    for value in (did, from_user, from_display, *(headers or {}).values()):
        if "\r" in value or "\n" in value or "]]>" in value:
            raise ValueError("raw CR/LF or ']]>' cannot travel in a SIP header; percent-encode it")
    extra = "".join(f"{k}: {v}\n      " for k, v in (headers or {}).items())
    display = from_display.replace("\\", "\\\\").replace('"', '\\"')
    uri = f"sip:{from_user}@[local_ip]:[local_port]" if from_user else "sip:[local_ip]:[local_port]"
    from_hdr = f'"{display}" <{uri}>' if from_display else f"<{uri}>"
    steps = sorted(timeline) + [(hangup_after_ms, "hangup")]
    body, now, label = [], 0, 1
    for at_ms, action in steps:
        wait = max(0, at_ms - now)
        now = max(now, at_ms)
        if wait:
            body.append(f'<recv request="BYE" timeout="{wait}" ontimeout="{label}" next="98"/>\n'
                        f'<label id="{label}"/>\n')
            label += 1
        if action != "hangup":
            body.append(_play(action))
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="pbx-recorder uac">
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

{SDP}
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


def uas_scenario(answer_after_ms: int = 300) -> str:
    """Answer every INVITE, play audio in a loop until Asterisk sends BYE."""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="pbx-recorder uas agent">
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
  <label id="1"/>
  {_play("audio")}
  <recv request="BYE" timeout="{AUDIO_PCAP_MS}" ontimeout="1"/>
  <send>
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
  </send>
  <timewait milliseconds="500"/>
</scenario>
"""
