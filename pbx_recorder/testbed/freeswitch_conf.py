"""The configuration of a private FreeSWITCH 1.11 (text builders, no I/O).

One ``freeswitch.xml`` that ``X-PRE-PROCESS include``s the product's files VERBATIM where it
can (``dialplan/freeswitch/pbx-recorder.xml``, ``etc/freeswitch/acl-pbx-recorder.xml``,
``etc/freeswitch/cdr_csv.conf.xml``) and a rendered copy of ``etc/freeswitch/event_socket.conf.xml``
(only its port and password-file path changed), so the tests prove the shipped files.

DIDs of the sandbox dialplan (context ``public``, where the SIP profile delivers calls):

=========  ===============================================================
7001       self-test: answer, ``record_session`` to ``<selftest_dir>/<X-Test-Tag>-<uuid>.wav``, echo
7002       self-test: answer, ``play_and_get_digits`` one digit, CUSTOM ``pbxrec::selftest`` event
8001       notify DID           -> pbx-recorder hand-off, then echo
8002       explicit-consent DID -> same
8003       no-record DID        -> same (the recorder's rules say "never record")
8004       queue DID            -> hand-off with PBXREC_QUEUE=support, then callcenter support@default
8005       like 8002, with PBXREC_FAILMODE=hangup
8006       like 8002, with PBXREC_LANG=zh
8008       consent "none" DID   -> hand-off (recorded, nothing played), then echo
8009       like 8008, with PBXREC_EARLY_START=no (the recorder answers and starts in band)
8010       consent "none", stereo -> hand-off, then the 1 kHz tone as for 8007
8007       stereo DID           -> hand-off, then FreeSWITCH plays a 1 kHz tone (channel 2) while the
                                   caller talks (channel 1)
=========  ===============================================================

``s XML pbxrec-unrecorded`` is the refusal route (a CUSTOM ``pbxrec::unrecorded`` event, then
echo); ``pbxrec-transfer`` holds transfer targets: ``9001`` rings agent 1 (a colleague),
``9002`` answers and echoes.  Every call may carry an ``X-Test-Tag`` header (``[A-Za-z0-9_]``
only, else ignored); the events carry it as ``TestTag``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

MODULES = (
    "mod_console", "mod_logfile", "mod_event_socket", "mod_sofia", "mod_loopback", "mod_commands",
    "mod_dptools", "mod_hash", "mod_db", "mod_callcenter", "mod_dialplan_xml", "mod_cdr_csv",
    "mod_sndfile", "mod_native_file", "mod_tone_stream", "mod_say_en",
)


@dataclass(frozen=True)
class FsLayout:
    workdir: str
    sip_port: int
    esl_port: int
    socket_host: str  # the recorder's outbound-socket server (pbx.esl.outbound.host / port)
    socket_port: int
    rtp_range: tuple[int, int]
    dialplan_snippet: str  # absolute path of dialplan/freeswitch/pbx-recorder.xml
    acl_snippet: str  # absolute path of etc/freeswitch/acl-pbx-recorder.xml
    cdr_csv_conf: str  # absolute path of etc/freeswitch/cdr_csv.conf.xml
    event_socket_conf: str  # path of the RENDERED event_socket.conf.xml (see render_event_socket)
    agent_ports: tuple[int, ...] = ()
    unavailable_prompt: str = "tone_stream://%(300,100,480,620);loops=3"
    extra_globals: dict[str, str] = field(default_factory=dict)

    @property
    def recordings_dir(self) -> str:
        return f"{self.workdir}/recordings"

    @property
    def selftest_dir(self) -> str:
        return f"{self.workdir}/selftest"


def render_event_socket(example: str, port: int, password_file: str) -> str:
    """``etc/freeswitch/event_socket.conf.xml`` with another port and password file; nothing else."""
    out, n_port = re.subn(r'(name="listen-port" value=")\d+(")', rf"\g<1>{port}\g<2>", example)
    out, n_file = re.subn(r"(exec-set\" data=\"pbxrec_esl_password=cat )"
                          r"/etc/freeswitch/pbx-recorder-esl\.password",
                         lambda m: m.group(1) + password_file, out)
    if n_port != 1 or n_file != 1:
        raise ValueError("event_socket.conf.xml example changed shape (listen-port / password file)")
    return out


def _hand_off(did: str, **inputs: str) -> str:
    sets = {"PBXREC_DIRECTION": "inbound", "PBXREC_DIALED": did, **inputs}
    lines = [f'<action application="set" data="{k}={v}"/>' for k, v in sets.items()]
    lines.append('<action application="execute_extension" data="pbx-recorder XML pbx-recorder"/>')
    return "\n          ".join(lines)


def _did(did: str, body: str, tail: str = '<action application="echo"/>') -> str:
    return f"""
      <extension name="did-{did}">
        <condition field="destination_number" expression="^{did}$">
          {body}
          {tail}
        </condition>
      </extension>"""


def dialplan(lay: FsLayout) -> str:
    tag_event = "Event-Name=CUSTOM,Event-Subclass=pbxrec::{sub},TestTag=${{pbxrec_test_tag}}"
    dids = "".join([
        _did("7001", '<action application="answer"/>\n          <action application="record_session" '
             f'data="{lay.selftest_dir}/${{pbxrec_test_tag}}-${{uuid}}.wav"/>'),
        _did("7002", '<action application="answer"/>\n          <action application="play_and_get_digits" '
             'data="1 1 1 8000 # tone_stream://%(200,0,800) silence_stream://250 pagd_digits \\d"/>\n'
             '          <action application="event" data="'
             + tag_event.format(sub="selftest") + ',Digits=${pagd_digits}"/>'),
        _did("8001", _hand_off("8001")),
        _did("8002", _hand_off("8002")),
        _did("8003", _hand_off("8003")),
        _did("8004", _hand_off("8004", PBXREC_QUEUE="support"),
             '<action application="callcenter" data="support@default"/>'),
        _did("8005", _hand_off("8005", PBXREC_FAILMODE="hangup",
                               PBXREC_UNAVAILABLE_PROMPT=lay.unavailable_prompt)),
        _did("8006", _hand_off("8006", PBXREC_LANG="zh")),
        _did("8008", _hand_off("8008")),
        _did("8009", _hand_off("8009", PBXREC_EARLY_START="no")),
        _did("8010", _hand_off("8010"),
             '<action application="playback" data="tone_stream://%(1000,0,1000);loops=-1"/>'),
        _did("8007", _hand_off("8007"),
             '<action application="playback" data="tone_stream://%(1000,0,1000);loops=-1"/>'),
    ])
    agent1 = f"sofia/internal/agent1@127.0.0.1:{lay.agent_ports[0]}" if lay.agent_ports else "error/no_agent"
    return f"""<section name="dialplan" description="sandbox">
    <X-PRE-PROCESS cmd="include" data="{lay.dialplan_snippet}"/>
    <context name="public">
      <extension name="test-tag" continue="true">
        <condition field="${{sip_h_X-Test-Tag}}" expression="^([A-Za-z0-9_]{{1,64}})$">
          <action application="set" data="pbxrec_test_tag=$1"/>
        </condition>
      </extension>{dids}
    </context>
    <context name="pbxrec-unrecorded">
      <extension name="s">
        <condition field="destination_number" expression="^s$">
          <action application="event" data="{tag_event.format(sub="unrecorded")}"/>
          <action application="echo"/>
        </condition>
      </extension>
    </context>
    <context name="pbxrec-transfer">
      <extension name="9001">
        <condition field="destination_number" expression="^9001$">
          <action application="event" data="{tag_event.format(sub="transfer")},Target=9001"/>
          <action application="bridge" data="{{leg_timeout=20}}{agent1}"/>
        </condition>
      </extension>
      <extension name="9002">
        <condition field="destination_number" expression="^9002$">
          <action application="event" data="{tag_event.format(sub="transfer")},Target=9002"/>
          <action application="answer"/>
          <action application="echo"/>
        </condition>
      </extension>
    </context>
  </section>"""


def callcenter_conf(lay: FsLayout) -> str:
    contact = "[leg_timeout=15]sofia/internal/agent{n}@127.0.0.1:{port}"
    agents = "".join(
        f'<agent name="agent{n}@default" type="callback" contact={quoteattr(contact.format(n=n, port=port))} '
        'status="Available" max-no-answer="0" wrap-up-time="0" reject-delay-time="0" busy-delay-time="0" '
        'no-answer-delay-time="0"/>\n'
        for n, port in enumerate(lay.agent_ports, start=1))
    tiers = "".join(f'<tier agent="agent{n}@default" queue="support@default" level="1" position="{n}"/>\n'
                    for n in range(1, len(lay.agent_ports) + 1))
    return f"""<configuration name="callcenter.conf" description="queues">
      <settings/>
      <queues>
        <queue name="support@default">
          <param name="strategy" value="longest-idle-agent"/>
          <param name="moh-sound" value="tone_stream://%(1000,4000,440)"/>
          <param name="time-base-score" value="system"/>
          <param name="max-wait-time" value="0"/>
          <param name="tier-rules-apply" value="false"/>
          <param name="discard-abandoned-after" value="60"/>
          <param name="abandoned-resume-allowed" value="false"/>
        </queue>
      </queues>
      <agents>{agents}</agents>
      <tiers>{tiers}</tiers>
    </configuration>"""


def freeswitch_xml(lay: FsLayout) -> str:
    extra = "".join(f'  <X-PRE-PROCESS cmd="set" data="{k}={v}"/>\n' for k, v in lay.extra_globals.items())
    modules = "".join(f'<load module="{m}"/>' for m in MODULES)
    return f"""<?xml version="1.0"?>
<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="set" data="pbxrec_socket={lay.socket_host}:{lay.socket_port}"/>
{extra}  <section name="configuration" description="sandbox">
    <configuration name="switch.conf" description="core">
      <settings>
        <param name="colorize-console" value="false"/>
        <param name="loglevel" value="debug"/>
        <param name="max-sessions" value="400"/>
        <param name="sessions-per-second" value="100"/>
        <param name="rtp-start-port" value="{lay.rtp_range[0]}"/>
        <param name="rtp-end-port" value="{lay.rtp_range[1]}"/>
        <param name="dump-cores" value="no"/>
      </settings>
    </configuration>
    <configuration name="modules.conf" description="modules"><modules>{modules}</modules></configuration>
    <configuration name="console.conf" description="console">
      <mappings><map name="all" value="console,debug,info,notice,warning,err,crit,alert"/></mappings>
      <settings><param name="colorize" value="false"/><param name="loglevel" value="info"/></settings>
    </configuration>
    <configuration name="logfile.conf" description="log file">
      <settings><param name="rotate-on-hup" value="true"/></settings>
      <profiles><profile name="default">
        <settings><param name="rollover" value="10485760"/></settings>
        <mappings><map name="all" value="debug,info,notice,warning,err,crit,alert"/></mappings>
      </profile></profiles>
    </configuration>
    <configuration name="acl.conf" description="network lists">
      <network-lists>
        <X-PRE-PROCESS cmd="include" data="{lay.acl_snippet}"/>
      </network-lists>
    </configuration>
    <X-PRE-PROCESS cmd="include" data="{lay.event_socket_conf}"/>
    <X-PRE-PROCESS cmd="include" data="{lay.cdr_csv_conf}"/>
    {callcenter_conf(lay)}
    <configuration name="db.conf" description="mod_db"><settings/></configuration>
    <configuration name="hash.conf" description="mod_hash"><remotes/></configuration>
    <configuration name="sofia.conf" description="one SIP profile, no auth">
      <global_settings><param name="log-level" value="0"/></global_settings>
      <profiles>
        <profile name="internal">
          <settings>
            <param name="sip-ip" value="127.0.0.1"/>
            <param name="rtp-ip" value="127.0.0.1"/>
            <param name="sip-port" value="{lay.sip_port}"/>
            <param name="context" value="public"/>
            <param name="dialplan" value="XML"/>
            <param name="auth-calls" value="false"/>
            <param name="manage-presence" value="false"/>
            <param name="inbound-codec-prefs" value="PCMA,PCMU"/>
            <param name="outbound-codec-prefs" value="PCMA,PCMU"/>
            <param name="dtmf-type" value="rfc2833"/>
            <param name="rfc2833-pt" value="101"/>
            <param name="liberal-dtmf" value="true"/>
            <param name="rtp-timer-name" value="soft"/>
            <param name="user-agent-string" value="FreeSWITCH"/>
          </settings>
        </profile>
      </profiles>
    </configuration>
  </section>
  {dialplan(lay)}
</document>
"""
