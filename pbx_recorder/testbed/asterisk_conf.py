"""Config files for a private Asterisk 16 or 22 (text builders, no I/O).

DIDs the sandbox dialplan answers (``from-sipp`` context):

=========  ===============================================================
7001       self-test: Answer, MixMonitor to ``<selftest_dir>/<tag>.wav``, Echo
7002       self-test: Answer, Read one digit, ``UserEvent(PbxrecSelftest)`` with it
8001       notify DID          -> Gosub(pbx-recorder-consent) then Echo
8002       explicit-consent DID -> same
8003       no-record DID       -> same (the recorder's rules say "never record")
8004       queue DID           -> Gosub with queue=support, then Queue(support)
8005       like 8002, but with PBXREC_FAILMODE=hangup on the channel
8006       like 8002, with the channel language set to ``zh``
8007       like 8001, after a MixMonitor of the PBX's own to ``<selftest_dir>/pbx_own_<tag>.wav``
=========  ===============================================================

``pbxrec-unrecorded,s,1`` is the unrecorded destination a refusal routes to.
``pbxrec-transfer`` holds transfer targets (AMI ``BlindTransfer``/``Redirect`` destinations, not
DIDs): ``9001`` rings the first agent (a colleague taking the call; a ``SippUas`` answering two
calls plays both agents), ``9002`` answers and echoes.  Both send ``UserEvent(PbxrecTransferTarget)``.  Every
call may carry an ``X-Test-Tag`` SIP header; its value reduced to [A-Za-z0-9_] is ``TEST_TAG``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODULES = [
    # core plumbing
    "res_sorcery_config", "res_sorcery_memory", "res_sorcery_astdb", "res_timing_timerfd",
    "res_musiconhold", "res_rtp_asterisk", "res_speech", "res_agi",
    # SIP (chan_pjsip needs res_pjsip_pubsub, which the loader does not say)
    "res_pjproject", "res_pjsip", "res_pjsip_session", "res_pjsip_pubsub", "res_pjsip_sdp_rtp",
    "res_pjsip_endpoint_identifier_ip", "res_pjsip_caller_id", "res_pjsip_header_funcs",
    "res_pjsip_authenticator_digest", "res_pjsip_outbound_authenticator_digest",
    "res_pjsip_dtmf_info", "res_pjsip_rfc3326", "chan_pjsip",
    # SIP transfers (REFER): needs res_pjsip, res_pjsip_session, res_pjsip_pubsub (above)
    "res_pjsip_refer",
    # bridges, codecs, formats
    "bridge_simple", "bridge_native_rtp", "bridge_holding", "bridge_builtin_features",
    "chan_bridge_media", "codec_alaw", "codec_ulaw", "codec_a_mu", "codec_gsm",
    "format_wav", "format_gsm", "format_pcm", "format_sln",
    # recording: app_mixmonitor needs func_periodic_hook -> app_chanspy, func_cut, func_groupcount, func_uri
    "func_periodic_hook", "app_chanspy", "func_cut", "func_groupcount", "func_uri", "app_mixmonitor",
    # dialplan apps and functions
    "pbx_config", "app_stack", "app_exec", "app_dial", "app_queue", "app_playback", "app_read",
    "app_echo", "app_userevent", "app_verbose", "app_senddtmf", "func_channel", "func_cdr",
    "func_strings", "func_logic", "func_callerid", "func_global", "func_db",
    # CDR over AMI
    "cdr_manager",
]
#: res_monitor (Monitor/PauseMonitor) was removed in Asterisk 21
MODULES_BEFORE_21 = ["res_monitor"]


def modules_for(major: int) -> list[str]:
    """The modules the sandbox loads (and checks are running) on Asterisk ``major``."""
    return MODULES + (MODULES_BEFORE_21 if major < 21 else [])


@dataclass(frozen=True)
class SandboxLayout:
    workdir: str
    systemname: str
    ami_port: int
    ami_user: str
    ami_secret: str
    sip_port: int
    agi_host: str
    agi_port: int
    dialplan_snippet: str  # absolute path of dialplan/asterisk/pbx-recorder.conf
    globals_snippet: str  # absolute path of dialplan/asterisk/pbx-recorder-globals.conf
    agent_ports: tuple[int, ...] = ()
    daemon_user: str = "recorder"
    daemon_secret: str = ""
    rtp_range: tuple[int, int] = (20000, 29999)
    unrecorded_prompt: str = "demo-thanks"
    extra_globals: dict[str, str] = field(default_factory=dict)
    module_dir: str = "/usr/lib/asterisk/modules"  # as Asterisk sees it (see installs.module_dir)
    major: int = 16

    @property
    def monitor_dir(self) -> str:
        return f"{self.workdir}/monitor"

    @property
    def selftest_dir(self) -> str:
        return f"{self.workdir}/selftest"


def asterisk_conf(lay: SandboxLayout) -> str:
    w = lay.workdir
    return f"""[directories]
astetcdir => {w}/etc
astmoddir => {lay.module_dir}
astvarlibdir => {w}/lib
astdbdir => {w}/lib
astkeydir => {w}/lib
astdatadir => {w}/data
astagidir => {w}/data/agi-bin
astspooldir => {w}/spool
astrundir => {w}/run
astlogdir => {w}/log
astsbindir => /usr/sbin

[options]
systemname = {lay.systemname}
verbose = 3
maxload = 0
transmit_silence = yes
"""


def modules_conf(lay: SandboxLayout) -> str:
    lines = ["[modules]", "autoload = no"] + [f"load => {m}.so" for m in modules_for(lay.major)]
    return "\n".join(lines) + "\n"


def manager_conf(lay: SandboxLayout) -> str:
    return f"""[general]
enabled = yes
webenabled = no
port = {lay.ami_port}
bindaddr = 127.0.0.1
displayconnects = no
timestampevents = yes

[{lay.ami_user}]
secret = {lay.ami_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all
writetimeout = 5000

[{lay.daemon_user}]
secret = {lay.daemon_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all
writetimeout = 5000
"""


def cdr_confs() -> dict[str, str]:
    return {
        "cdr.conf": "[general]\nenable = yes\nunanswered = yes\n",
        "cdr_manager.conf": "[general]\nenabled = yes\n\n[mappings]\nlinkedid => Linkedid\n"
                            "pbxrec_dnid => PbxrecDnid\n",
    }


def pjsip_conf(lay: SandboxLayout) -> str:
    media = """disallow = all
allow = alaw,ulaw
dtmf_mode = rfc4733
direct_media = no
rtp_symmetric = yes
language = en
"""
    out = [f"""[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:{lay.sip_port}

[caller]
type = endpoint
transport = transport-udp
context = from-sipp
{media}
[caller-identify]
type = identify
endpoint = caller
match = 127.0.0.1
"""]
    for n, port in enumerate(lay.agent_ports, start=1):
        out.append(f"""[agent{n}]
type = endpoint
transport = transport-udp
context = agents
aors = agent{n}
{media}
[agent{n}]
type = aor
contact = sip:agent{n}@127.0.0.1:{port}
""")
    return "\n".join(out)


def queues_conf(lay: SandboxLayout) -> str:
    members = "".join(f"member => PJSIP/agent{n}\n" for n in range(1, len(lay.agent_ports) + 1))
    return f"""[general]
persistentmembers = no

[support]
strategy = ringall
timeout = 15
retry = 1
wrapuptime = 0
joinempty = yes
leavewhenempty = no
ringinuse = yes
announce-frequency = 0
{members}"""


def extensions_conf(lay: SandboxLayout) -> str:
    extra = "".join(f"{k}={v}\n" for k, v in lay.extra_globals.items())
    gosub = "Gosub(pbx-recorder-consent,s,1(inbound,${EXTEN},{queue},eu))"
    return f"""[general]
static = yes
writeprotect = yes

[globals]
#include "{lay.globals_snippet}"
PBXREC_AGI_HOST={lay.agi_host}
PBXREC_AGI_PORT={lay.agi_port}
SANDBOX_SELFTEST_DIR={lay.selftest_dir}
{extra}
#include "{lay.dialplan_snippet}"

[from-sipp]
exten => _X.,1,Set(__TEST_TAG=${{FILTER(A-Za-z0-9_,${{PJSIP_HEADER(read,X-Test-Tag)}})}})
 same => n,Goto(did-${{EXTEN}},1,1)
exten => i,1,Hangup(1)

[did-7001]
exten => 1,1,Answer()
 same => n,MixMonitor(${{SANDBOX_SELFTEST_DIR}}/${{TEST_TAG}}.wav)
 same => n,Echo()

[did-7002]
exten => 1,1,Answer()
 same => n,Read(DIGITS,beep,1,,1,15)
 same => n,UserEvent(PbxrecSelftest,TestTag: ${{TEST_TAG}},Digits: ${{DIGITS}})
 same => n,Echo()

[did-8001]
exten => 1,1,{gosub.replace("${EXTEN}", "8001").format(queue="")}
 same => n,Echo()

[did-8002]
exten => 1,1,{gosub.replace("${EXTEN}", "8002").format(queue="")}
 same => n,Echo()

[did-8003]
exten => 1,1,{gosub.replace("${EXTEN}", "8003").format(queue="")}
 same => n,Echo()

[did-8004]
exten => 1,1,{gosub.replace("${EXTEN}", "8004").format(queue="support")}
 same => n,Queue(support,t,,,120)
 same => n,Hangup()

[did-8005]
exten => 1,1,Set(PBXREC_FAILMODE=hangup)
 same => n,{gosub.replace("${EXTEN}", "8005").format(queue="")}
 same => n,Echo()

[did-8006]
exten => 1,1,Set(CHANNEL(language)=zh)
 same => n,{gosub.replace("${EXTEN}", "8006").format(queue="")}
 same => n,Echo()

[did-8007]
exten => 1,1,MixMonitor(${{SANDBOX_SELFTEST_DIR}}/pbx_own_${{TEST_TAG}}.wav)
 same => n,{gosub.replace("${EXTEN}", "8007").format(queue="")}
 same => n,Echo()

[pbxrec-unrecorded]
exten => s,1,UserEvent(PbxrecUnrecorded,TestTag: ${{TEST_TAG}})
 same => n,Playback({lay.unrecorded_prompt})
 same => n,Echo()

[pbxrec-transfer]
exten => 9001,1,UserEvent(PbxrecTransferTarget,TestTag: ${{TEST_TAG}},Target: 9001)
 same => n,Dial(PJSIP/agent1,20)
 same => n,Hangup()
exten => 9002,1,UserEvent(PbxrecTransferTarget,TestTag: ${{TEST_TAG}},Target: 9002)
 same => n,Answer()
 same => n,Echo()

[agents]
exten => _900X,1,Goto(pbxrec-transfer,${{EXTEN}},1)
exten => _X.,1,Hangup()
"""


def rtp_conf(lay: SandboxLayout) -> str:
    return f"[general]\nrtpstart = {lay.rtp_range[0]}\nrtpend = {lay.rtp_range[1]}\n"


def logger_conf() -> str:
    return "[general]\n\n[logfiles]\nmessages => notice,warning,error,verbose\n"


def all_files(lay: SandboxLayout) -> dict[str, str]:
    files = {
        "asterisk.conf": asterisk_conf(lay),
        "modules.conf": modules_conf(lay),
        "manager.conf": manager_conf(lay),
        "pjsip.conf": pjsip_conf(lay),
        "queues.conf": queues_conf(lay),
        "extensions.conf": extensions_conf(lay),
        "rtp.conf": rtp_conf(lay),
        "logger.conf": logger_conf(),
        "musiconhold.conf": "[general]\n",
        "ccss.conf": "[general]\n",
        "cel.conf": "[general]\nenable = no\n",
        "acl.conf": "",
        "udptl.conf": "[general]\n",
        "pjproject.conf": "",
        "features.conf": "[general]\n",
        "indications.conf": "[general]\ncountry = us\n\n[us]\ndescription = United States\n"
                            "ringcous = 2000/4000\ndial = 350+440\nbusy = 480+620/500,0/500\n"
                            "ring = 440+480/2000,0/4000\ncongestion = 480+620/250,0/250\n",
    }
    files.update(cdr_confs())
    return files
