"""Commands -> AMI action dicts (sans-IO).

Every header value is checked: a CR or LF would let a hostile caller ID or channel name
inject extra AMI headers or whole actions, so any control character is refused with an
:class:`AmiActionError` naming the call.  Values that Asterisk re-parses are held to
stricter alphabets:

* ``MixMonitor`` joins ``File``, ``Options`` and ``Command`` with ``,`` and re-splits them
  as application arguments, substitutes ``${...}`` (and ``^{...}``) in them and runs the
  command through ``/bin/sh``: paths must be absolute and made of ``[A-Za-z0-9._/-]`` only
  (naming.recording_paths produces such paths; anything else is refused, never escaped).
* variable names are ``[A-Za-z0-9_]`` only, or ``FUNC(arg)`` like ``CDR(recordingfile)``.

``StartRecording`` -> ``MixMonitor`` with ``Options`` ``i(PBXREC_MMID_<n>)`` so the response
carries ``MixMonitorID``; mode ``dual`` adds ``r(leg)t(leg)`` (the mixed ``File`` is kept: the
core lists it among the recording's paths); mode ``stereo`` adds ``D`` (Asterisk 22; 16 ignores
it).  The post-command touches ``<file>.closed`` for every file written: the closure markers
that tell the pipeline a file is complete (Asterisk sends no MixMonitorStop on hang-up).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ami.unavailable_event import UNAVAILABLE_FILTER
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import constants as C
from pbx_recorder.errors import AmiActionError

CLOSED_SUFFIX = ".closed"
MMID_VAR_PREFIX = "PBXREC_MMID_"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]+")
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}(\([A-Za-z0-9_]{1,40}\))?")  # VAR or FUNC(arg)
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_]")
_MMID = re.compile(r"[A-Za-z0-9_]{1,40}")  # MixMonitor IDs as Asterisk makes them ("0x55d0...")
MAX_VALUE = 1024


def check_value(value: object, *, header: str, action: str, call_id: str) -> str:
    """A header value as text, or AmiActionError if it could inject headers."""
    text = str(value)
    if _CONTROL.search(text):
        raise AmiActionError(f"refused {action}: control character in {header} (AMI header injection)",
                             action=action, call_id=call_id)
    if len(text) > MAX_VALUE:
        raise AmiActionError(f"refused {action}: {header} longer than {MAX_VALUE}", action=action,
                             call_id=call_id)
    return text


def check_path(path: str, *, action: str, call_id: str) -> str:
    check_value(path, header="path", action=action, call_id=call_id)
    if not _SAFE_PATH.fullmatch(path) or "/../" in path + "/" or "/./" in path:
        raise AmiActionError(f"refused {action}: unsafe recording path {path[:120]!r}", action=action,
                             call_id=call_id)
    return path


def check_name(name: str, *, action: str, call_id: str) -> str:
    check_value(name, header="Variable", action=action, call_id=call_id)
    if not _SAFE_NAME.fullmatch(name):
        raise AmiActionError(f"refused {action}: unsafe variable name {name[:80]!r}", action=action,
                             call_id=call_id)
    return name


def mmid_variable(recording_id: str) -> str:
    """Channel variable MixMonitor stores its ID in (``i(VAR)``): unique per recording."""
    return MMID_VAR_PREFIX + _UNSAFE_ID_CHARS.sub("_", recording_id)[:60]


def mmid_variable_of(c: cmds.StartRecording) -> str:
    """The variable a StartRecording's MixMonitor keeps its ID in: a recording started before
    the consent dialogue uses the fixed ``PBXREC_DIALOGUE_MMID`` (the snippet's fail direction
    stops it with ``StopMixMonitor(${PBXREC_DIALOGUE_MMID})``), any other its own variable."""
    return C.VAR_DIALOGUE_MMID if c.dialogue else mmid_variable(c.recording_id)


def closed_marker(path: str) -> str:
    return path + CLOSED_SUFFIX


def _headers(action: str, call_id: str, **headers: str) -> dict[str, str]:
    out = {"Action": action}
    for key, value in headers.items():
        out[key] = check_value(value, header=key, action=action, call_id=call_id)
    return out


def start_recording(c: cmds.StartRecording) -> dict[str, str]:
    action = "MixMonitor"
    path = check_path(c.path, action=action, call_id=c.call_id)
    options = f"i({mmid_variable_of(c)})"
    written = [path]
    if c.mode == "dual":
        if len(c.leg_paths) != 2:
            raise AmiActionError("refused MixMonitor: dual mode needs two leg paths", action=action,
                                 call_id=c.call_id)
        read_leg, write_leg = (check_path(p, action=action, call_id=c.call_id) for p in c.leg_paths)
        options += f"r({read_leg})t({write_leg})"
        written += [read_leg, write_leg]  # the mixed file is written too: the pipeline waits for all
    elif c.mode == "stereo":
        options += "D"
    elif c.mode != "mixed":
        raise AmiActionError(f"refused MixMonitor: unknown mode {c.mode[:20]!r}", action=action,
                             call_id=c.call_id)
    command = "touch " + " ".join(closed_marker(p) for p in written)
    return _headers(action, c.call_id, Channel=c.channel, File=path, Options=options, Command=command)


def mixmonitor_id(value: object) -> str:
    """``value`` if it looks like an ID Asterisk makes for a MixMonitor (``0x55d0...``), else ""."""
    text = str(value).strip()
    return text if _MMID.fullmatch(text) else ""


def stop_recording(c: cmds.StopRecording) -> dict[str, str]:
    """``StopMixMonitor`` of exactly one MixMonitor.  Without ``MixMonitorID`` Asterisk stops
    whichever MixMonitor of the channel it finds first (another recording of the same channel, an
    admin's own): refused, as is an ID Asterisk would not have made."""
    mmid = mixmonitor_id(c.pbx_ref)
    if not mmid:
        raise AmiActionError("refused StopMixMonitor: no usable MixMonitorID (it would stop any "
                             "MixMonitor of the channel)", action="StopMixMonitor", call_id=c.call_id)
    return _headers("StopMixMonitor", c.call_id, Channel=c.channel, MixMonitorID=mmid)


def stop_lookup_variables(c: cmds.StopRecording) -> tuple[str, ...]:
    """The channel variables (``Getvar``) that may hold the MixMonitorID of a recording whose ID the
    recorder does not know: the recording's own ``i(PBXREC_MMID_<n>)`` (no other MixMonitor ever
    sets it), then, for one the snippet was to start itself, ``PBXREC_EARLY_MMID`` (cleared on
    entry to the snippet).  Never ``PBXREC_DIALOGUE_MMID``: any dialogue recording of the channel
    sets it; the snippet's fail direction stops that one itself."""
    if not c.recording_id:
        return ()
    own = (mmid_variable(c.recording_id),)
    return (*own, C.VAR_EARLY_MMID) if c.handed_over else own


def mute_recording(c: cmds.MuteRecording) -> dict[str, str]:
    direction = c.direction if c.direction in ("read", "write", "both") else "both"
    return _headers("MixMonitorMute", c.call_id, Channel=c.channel, Direction=direction,
                    State="1" if c.muted else "0")


def set_channel_var(c: cmds.SetChannelVar) -> dict[str, str]:
    name = check_name(c.name, action="Setvar", call_id=c.call_id)
    return _headers("Setvar", c.call_id, Channel=c.channel, Variable=name, Value=c.value)


def getvar(channel: str, name: str, *, call_id: str = "") -> dict[str, str]:
    name = check_name(name, action="Getvar", call_id=call_id)
    return _headers("Getvar", call_id, Channel=channel, Variable=name)


#: AMI ``Filter`` whitelist (POSIX extended regex over the event text): the events
#: ami/normalize.py handles and the core uses.  Not VarSet: the normalizer turns PBXREC_* ones
#: into ``VariableSet``, which no part of the core handles, and under load they were a fifth of
#: the stream (each in-band SET VARIABLE echoes one).  Whoever gives the core a VariableSet
#: handler adds ``VARSET_FILTER`` here (tests/unit/test_ami_actions.py fails until then).
#: Replies to actions (CoreShowChannel lists, Getvar) are not events and are never filtered.
HANDLED_EVENTS = ("Newchannel", "Newstate", "Hangup", "BridgeEnter", "BridgeLeave", "Cdr", "MixMonitorStart",
                  "MixMonitorStop", "MixMonitorMute", "QueueCallerJoin", "AgentConnect", "BlindTransfer",
                  "AttendedTransfer", "FullyBooted")
VARSET_FILTER = "Event: VarSet[[:space:]].*Variable: PBXREC_"
#: the snippet's report of a MixMonitor it started itself (ami/normalize.py ``on_user_event``)
EARLY_START_FILTER = "Event: UserEvent[[:space:]].*UserEvent: PbxrecEarlyStart[[:space:]]"
EVENT_FILTERS = ("Event: (" + "|".join(HANDLED_EVENTS) + ")[[:space:]]", EARLY_START_FILTER,
                 UNAVAILABLE_FILTER)


def event_filter(regex: str) -> dict[str, str]:
    return _headers("Filter", "", Operation="Add", Filter=regex)


def core_show_channels() -> dict[str, str]:
    return {"Action": "CoreShowChannels"}


BUILDERS: dict[type, Callable[[Any], dict[str, str]]] = {
    cmds.StartRecording: start_recording,
    cmds.StopRecording: stop_recording,
    cmds.MuteRecording: mute_recording,
    cmds.SetChannelVar: set_channel_var,
}


def is_pbx_command(command: cmds.Command) -> bool:
    return type(command) in BUILDERS


def to_action(command: cmds.Command) -> dict[str, str]:
    """The AMI action for a PBX command; AmiActionError if refused or not a PBX command."""
    builder = BUILDERS.get(type(command))
    if builder is None:
        raise AmiActionError(f"{type(command).__name__} is not an AMI command", call_id=command.call_id)
    return builder(command)
