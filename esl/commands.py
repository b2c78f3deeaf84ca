"""Command lines for ESL (sans-IO).  Every line the recorder sends is built here.

A CR or LF in a command would end it and start another (``api uuid_kill ...`` injected
through a caller name), so every piece is checked and refused with :class:`EslError` naming
the call, never escaped:

* uuids: ``[0-9A-Za-z-]{1,64}`` (FreeSWITCH makes RFC 4122 ones);
* paths: absolute, ``[A-Za-z0-9._/-]`` only, no ``..`` component (naming.recording_paths
  makes such paths); FreeSWITCH would also expand ``${...}`` and split on spaces;
* variable names: ``[A-Za-z_][A-Za-z0-9_]{0,79}``; values: no control characters, no
  ``{ } , ' "`` or spaces when they go into a ``{var=value}`` block, at most 1024 chars;
* application names: ``[a-z_]+``; application arguments: no control characters.

Core commands -> api lines (:func:`api_lines`): ``StartRecording`` -> ``uuid_record <uuid> start
<path> 0 {vars}`` (stereo: ``RECORD_STEREO=true`` and ``record_sample_rate=8000`` so the ``.raw``
file is interleaved 16-bit 8 kHz like Asterisk's; dual: two more recordings with
``RECORD_READ_ONLY`` / ``RECORD_WRITE_ONLY`` to the leg paths), ``StopRecording`` -> ``stop``
of each path (refused without one: no ``stop all``, which would stop every recording of the
channel), ``MuteRecording`` -> ``mask`` / ``unmask`` of each path (the timeline is kept, the
masked stretch is silence), ``SetChannelVar`` -> ``uuid_setvar``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from pbx_recorder.core import commands as cmds
from pbx_recorder.core import constants as C
from pbx_recorder.errors import EslError

MAX_VALUE = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_UUID = re.compile(r"[0-9A-Za-z-]{1,64}")
_PATH = re.compile(r"/[A-Za-z0-9._/-]{1,1000}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")
_APP = re.compile(r"[a-z_]{1,40}")
_BLOCK_VALUE = re.compile(r"[A-Za-z0-9._/:+@-]{0,200}")
_EVENT_NAME = re.compile(r"[A-Z_]{1,40}|CUSTOM|[a-z_]{1,40}::[a-z_]{1,40}")
_CAUSE = re.compile(r"[A-Z_]{1,40}")

#: what the recorder subscribes to (CONTRACT.md section 2)
EVENTS = (
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_HANGUP_COMPLETE",
    "RECORD_START",
    "RECORD_STOP",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
    "DTMF",
    "BACKGROUND_JOB",
    "HEARTBEAT",
    "CUSTOM",
    "callcenter::info",
    "pbxrec::mask",
)
MASK_SUBCLASS = "pbxrec::mask"  # sent by ``calls pause/resume`` after uuid_record mask/unmask

#: core channel-variable names that FreeSWITCH spells differently (no CDR() function there)
VAR_NAMES = {C.VAR_CDR_RECORDINGFILE: "PBXREC_RECORDING_FILE"}


def _refuse(what: str, call_id: str) -> EslError:
    return EslError(f"refused ESL command: {what}", call_id=call_id or None)


def check_value(value: object, *, what: str, call_id: str = "") -> str:
    text = str(value)
    if _CONTROL.search(text):
        raise _refuse(f"control character in {what} (ESL command injection)", call_id)
    if len(text) > MAX_VALUE:
        raise _refuse(f"{what} longer than {MAX_VALUE}", call_id)
    return text


def check_uuid(uuid: str, call_id: str = "") -> str:
    if not _UUID.fullmatch(str(uuid)):
        raise _refuse(f"bad channel uuid {str(uuid)[:80]!r}", call_id)
    return uuid


def check_path(path: str, call_id: str = "") -> str:
    if not _PATH.fullmatch(str(path)) or "/../" in path + "/" or "/./" in path or "//" in path:
        raise _refuse(f"unsafe path {str(path)[:120]!r}", call_id)
    return path


def check_name(name: str, call_id: str = "") -> str:
    if not _NAME.fullmatch(str(name)):
        raise _refuse(f"unsafe variable name {str(name)[:80]!r}", call_id)
    return name


def var_block(variables: Mapping[str, str], call_id: str = "") -> str:
    """``{a=1,b=2}`` for ``uuid_record``'s recording variables (values from a small alphabet)."""
    parts = []
    for name, value in variables.items():
        if not _BLOCK_VALUE.fullmatch(value):
            raise _refuse(f"unsafe value for {name}", call_id)
        parts.append(f"{check_name(name, call_id)}={value}")
    return "{" + ",".join(parts) + "}"


# --- plain commands ---------------------------------------------------------------------


def auth(password: str) -> str:
    if _CONTROL.search(password) or not password or len(password) > MAX_VALUE:
        raise EslError("ESL password is empty, too long or has control characters")
    return f"auth {password}"


def event_plain(names: Iterable[str] = EVENTS) -> str:
    names = list(names)
    for name in names:
        if not _EVENT_NAME.fullmatch(name):
            raise _refuse(f"bad event name {name[:40]!r}", "")
    return "event plain " + " ".join(names)


def api(command: str, *args: str, call_id: str = "") -> str:
    line = " ".join((command, *args))
    return "api " + check_value(line, what="api command", call_id=call_id)


def bgapi(command: str, *args: str, job_uuid: str = "", call_id: str = "") -> str:
    line = "bgapi " + check_value(" ".join((command, *args)), what="bgapi command", call_id=call_id)
    if job_uuid:
        return line + "\nJob-UUID: " + check_uuid(job_uuid, call_id)
    return line


def mask_event(uuid: str, muted: bool, call_id: str) -> str:
    """``sendevent CUSTOM pbxrec::mask``: FreeSWITCH sends no event for ``uuid_record mask``, so the
    operator's CLI announces the pause to the daemon (which records the interval) this way."""
    return "\n".join(
        [
            "sendevent CUSTOM",
            f"Event-Subclass: {MASK_SUBCLASS}",
            f"PBXREC-Channel: {check_uuid(uuid, call_id)}",
            f"PBXREC-Muted: {'true' if muted else 'false'}",
        ]
    )


def show_channels_json() -> str:
    return "api show channels as json"


def uuid_getvar(uuid: str, name: str, call_id: str = "") -> str:
    return api("uuid_getvar", check_uuid(uuid, call_id), check_name(name, call_id), call_id=call_id)


def uuid_setvar(uuid: str, name: str, value: str, call_id: str = "") -> str:
    name = VAR_NAMES.get(name, name)
    value = check_value(value, what=name, call_id=call_id)
    if any(ch in value for ch in " \t"):  # uuid_setvar takes the rest of the line: keep it one token
        raise _refuse(f"whitespace in the value of {name}", call_id)
    return api("uuid_setvar", check_uuid(uuid, call_id), check_name(name, call_id), value, call_id=call_id)


def _multi_value(name: str, value: str, call_id: str) -> str:
    value = check_value(value, what=name, call_id=call_id)
    if any(ch in value for ch in " \t;"):
        raise _refuse(f"whitespace or ';' in the value of {name}", call_id)
    return value


def uuid_setvar_multi(uuid: str, variables: Mapping[str, str], call_id: str = "", *,
                      check: Callable[[str, str, str], str] = _multi_value) -> str:
    """Several variables in one api call (``name=value;name=value``): no ``;`` or whitespace in
    values; ``check(name, value, call_id)`` may allow a stricter alphabet with inner spaces."""
    pairs = []
    for name, value in variables.items():
        name = check_name(VAR_NAMES.get(name, name), call_id)
        pairs.append(f"{name}={check(name, value, call_id)}")
    if not pairs:
        raise _refuse("uuid_setvar_multi without variables", call_id)
    return api("uuid_setvar_multi", check_uuid(uuid, call_id), ";".join(pairs), call_id=call_id)


def uuid_record(
    uuid: str, action: str, path: str, variables: Mapping[str, str] | None = None, call_id: str = ""
) -> str:
    """``uuid_record`` of one file, named by its absolute path.  Never ``stop all`` (nor an empty
    path): it would stop every recording of the channel, another recording's (an admin's own, a
    second recorder's) too, so ``all`` is refused like any path that is not a checked file path;
    a recording whose files are not known is not stopped from here (``EslClient._stop`` logs why)."""
    if action not in ("start", "stop", "mask", "unmask"):
        raise _refuse(f"bad uuid_record action {action[:20]!r}", call_id)
    if not str(path or "").strip() or str(path).strip().lower() == "all":
        raise _refuse(f"uuid_record {action} needs the recording's own file path, not {str(path)[:20]!r} "
                      "(it would reach every recording of the channel)", call_id)
    args = [check_uuid(uuid, call_id), action, check_path(path, call_id)]
    if variables:
        args += ["0", var_block(variables, call_id)]
    return api("uuid_record", *args, call_id=call_id)


# --- core commands ----------------------------------------------------------------------


def recorded_paths(c: cmds.StartRecording) -> list[tuple[str, dict[str, str]]]:
    """(path, recording variables) of every ``uuid_record start`` a StartRecording needs."""
    if c.mode == "mixed":
        return [(c.path, {})]
    if c.mode == "stereo":
        return [(c.path, {"RECORD_STEREO": "true", "record_sample_rate": "8000"})]
    if c.mode == "dual":
        if len(c.leg_paths) != 2:
            raise _refuse("dual mode needs two leg paths", c.call_id)
        return [
            (c.path, {}),
            (c.leg_paths[0], {"RECORD_READ_ONLY": "true"}),
            (c.leg_paths[1], {"RECORD_WRITE_ONLY": "true"}),
        ]
    raise _refuse(f"unknown recording mode {c.mode[:20]!r}", c.call_id)


def api_lines(command: cmds.Command, paths: tuple[str, ...] = ()) -> list[str]:
    """The api lines for a PBX command.  ``paths``: the files of the recording being stopped or
    masked (the ESL client knows them; FreeSWITCH addresses a recording by its path)."""
    if isinstance(command, cmds.StartRecording):
        return [
            uuid_record(command.channel, "start", p, v, command.call_id) for p, v in recorded_paths(command)
        ]
    if isinstance(command, cmds.StopRecording):
        if not paths:  # never a stop of every recording of the channel: a stop names its files
            raise _refuse("uuid_record stop without the recording's file paths", command.call_id)
        return [uuid_record(command.channel, "stop", p, call_id=command.call_id) for p in paths]
    if isinstance(command, cmds.MuteRecording):
        action = "mask" if command.muted else "unmask"
        return [uuid_record(command.channel, action, p, call_id=command.call_id) for p in paths]
    if isinstance(command, cmds.SetChannelVar):
        return [uuid_setvar(command.channel, command.name, command.value, command.call_id)]
    raise EslError(f"{type(command).__name__} is not an ESL command", call_id=command.call_id)


# --- outbound socket (one call) ---------------------------------------------------------


def sendmsg_execute(
    app: str, arg: str = "", *, event_uuid: str = "", lock: bool = True, call_id: str = ""
) -> str:
    if not _APP.fullmatch(app):
        raise _refuse(f"bad application name {app[:40]!r}", call_id)
    lines = ["sendmsg", "call-command: execute", f"execute-app-name: {app}"]
    if arg:
        lines.append("execute-app-arg: " + check_value(arg, what=f"{app} argument", call_id=call_id))
    if event_uuid:
        lines.append("Event-UUID: " + check_uuid(event_uuid, call_id))
    if lock:
        lines.append("event-lock: true")
    return "\n".join(lines)


def sendmsg_set(name: str, value: str, call_id: str = "") -> str:
    name = VAR_NAMES.get(name, name)
    value = check_value(value, what=name, call_id=call_id)
    return sendmsg_execute("set", f"{check_name(name, call_id)}={value}", call_id=call_id)


def sendmsg_hangup(cause: str = "NORMAL_CLEARING", call_id: str = "") -> str:
    if not _CAUSE.fullmatch(cause):
        raise _refuse(f"bad hangup cause {cause[:40]!r}", call_id)
    return f"sendmsg\ncall-command: hangup\nhangup-cause: {cause}"


def wire(line: str) -> bytes:
    """A command as bytes on the wire (ended by the blank line)."""
    return line.encode("utf-8") + b"\n\n"
