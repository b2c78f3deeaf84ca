"""FastAGI, sans-IO: bytes in -> the environment, replies and hang-up notices out; commands -> bytes.

    parser = AgiParser()
    send(parser.sync_command())         # at connect, before anything is read (see below)
    for item in parser.feed(data):      # AgiEnvironment once, then AgiReply / AgiHangup
        ...
    wire = format_command("GET DATA", "/prompts/q", 3000, 1)

The environment does not end at the first blank line: a caller can put one (or whole forged
``agi_arg_N`` lines) into the caller id, which Asterisk writes raw.  The parser ends it at the
reply to its own ``GET FULL VARIABLE <nonce>`` (``200 result=1 (<nonce>)``, which the caller
cannot guess; Asterisk reads that command only after writing the whole environment, so sending
it at connect costs no round trip) and reads the lines before it with
:func:`consent.agi_environment.parse_environment` (which lines are genuine, ``tampered``).

The connection code only moves bytes (consent/agi_async.py).  Lines are framed on ``\\n``
first and decoded afterwards (a multi-byte character split across two reads stays whole);
a line longer than :data:`MAX_LINE` or an environment of more than :data:`MAX_ENV_LINES`
lines is an :class:`AgiProtocolError` (a hostile or broken peer cannot grow our buffers).

Replies (Asterisk ``res_agi``): ``200 result=<v> [(<data>)] [key=value ...]``; ``510`` invalid
command; ``511`` dead channel; ``520-`` ... ``520 End of proper usage.`` (usage, one reply);
a bare ``HANGUP`` line is Asterisk telling a FastAGI script that the channel hung up (it can
come before the reply of the command in flight).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from consent.agi_environment import AgiEnvironment, parse_environment
from pbx_recorder.errors import PbxError

__all__ = ["DIGITS", "MAX_ENV_LINES", "MAX_LINE", "PROMPT_RATE", "AgiEnvironment", "AgiHangup", "AgiItem",
           "AgiParser", "AgiProtocolError", "AgiReply", "digit_of", "format_command", "parse_reply"]

MAX_LINE = 4096
DIGITS = "0123456789*#"
PROMPT_RATE = 8000  # prompts are 8 kHz (consent/generate_prompts.py): STREAM FILE endpos / rate = seconds
MAX_ENV_LINES = 256
_CODE = re.compile(r"^(\d{3})(?:[ -](.*))?$")
_KV = re.compile(r"(?P<key>\w+)=(?P<value>\S*)\s*(?:\((?P<data>[^)]*)\))?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AgiProtocolError(PbxError):
    """The peer broke the FastAGI protocol (over-long line or environment, unparsable reply)."""


@dataclass(frozen=True, slots=True)
class AgiHangup:
    """Asterisk's in-band ``HANGUP`` notice: the channel is gone."""


@dataclass(frozen=True, slots=True)
class AgiReply:
    code: int
    result: str = ""
    data: str = ""  # the "(...)" after result=, e.g. "timeout"
    fields: dict[str, str] = field(default_factory=dict)  # endpos=..., etc.
    text: str = ""  # the raw line(s), for logs

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def failed(self) -> bool:
        """``200 result=-1``: Asterisk says the command failed *or* the channel hung up."""
        return self.code == 200 and self.result == "-1"


AgiItem = AgiEnvironment | AgiHangup | AgiReply


def parse_reply(line: str) -> AgiReply:
    match = _CODE.match(line)
    if match is None:
        raise AgiProtocolError(f"unparsable AGI reply {line[:80]!r}")
    code, rest = int(match.group(1)), match.group(2) or ""
    if code != 200:
        return AgiReply(code, text=line)
    result, data, fields = "", "", {}
    for m in _KV.finditer(rest):
        if m["key"] == "result" and not result:
            result, data = m["value"], m["data"] or ""
        else:
            fields[m["key"]] = m["value"]
    return AgiReply(200, result, data, fields, line)


class AgiParser:
    """``nonce``: for tests only (default: 128 random bits, new for every connection)."""

    SYNC = "GET FULL VARIABLE"

    def __init__(self, nonce: str | None = None) -> None:
        self._buffer = bytearray()
        self._nonce = nonce or "pbxrsync" + secrets.token_hex(16)
        self._sync_reply = f"200 result=1 ({self._nonce})"
        self._env: list[str] | None = []  # the environment's lines; None once it has been delivered
        self._usage: list[str] | None = None  # collecting a multi-line 520 reply

    @property
    def in_environment(self) -> bool:
        return self._env is not None

    def sync_command(self) -> bytes:
        """The command whose reply ends the environment: send it once, at connect."""
        return format_command(self.SYNC, self._nonce)

    def feed(self, data: bytes) -> list[AgiItem]:
        self._buffer += data
        items: list[AgiItem] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise AgiProtocolError(f"AGI line longer than {MAX_LINE} bytes")
                return items
            if end > MAX_LINE:
                raise AgiProtocolError(f"AGI line longer than {MAX_LINE} bytes")
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if self._env is not None:
                items += self._env_line(line, self._env)
                continue
            item = self._line(line)
            if item is not None:
                items.append(item)

    def _env_line(self, line: str, lines: list[str]) -> list[AgiItem]:
        if line != self._sync_reply:
            if len(lines) >= MAX_ENV_LINES:
                raise AgiProtocolError(f"AGI environment longer than {MAX_ENV_LINES} lines")
            lines.append(line)
            return []
        self._env = None
        # a real HANGUP comes after the final blank line and before our reply; one injected
        # into a value is followed by more environment (at least Asterisk's own blank line)
        hangup = len(lines) >= 2 and lines[-1].strip() == "HANGUP" and not lines[-2].strip()
        environment = parse_environment(lines[:-1] if hangup else lines)
        return [environment, AgiHangup()] if hangup else [environment]

    def _line(self, line: str) -> AgiItem | None:
        if self._usage is not None:
            self._usage.append(line)
            if line.startswith("520 "):
                text, self._usage = "\n".join(self._usage), None
                return AgiReply(520, text=text)
            if len(self._usage) > 64:
                raise AgiProtocolError("AGI usage reply longer than 64 lines")
            return None
        if line.strip() == "HANGUP":
            return AgiHangup()
        if not line.strip():
            return None
        if line.startswith("520-"):
            self._usage = [line]
            return None
        return parse_reply(line)


def digit_of(result: str) -> str:
    """``STREAM FILE`` / ``WAIT FOR DIGIT`` answer the ASCII code of the digit pressed
    (``result=49`` for '1'; 0 for none): the digit, or "" for none or anything else."""
    if not result.isdigit() or not 0 < int(result) < 128:
        return ""
    char = chr(int(result))
    return char if char in DIGITS else ""


def _quote(arg: str) -> str:
    if arg and not any(c in arg for c in ' "\\'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(command: str, *args: object) -> bytes:
    """One AGI command line.  A control character in any part is refused: a CR or LF in a
    value would let it append a second command (AGI injection)."""
    parts = [command, *(_quote(str(a)) for a in args)]
    for part in parts:
        if _CONTROL.search(part):
            raise AgiProtocolError(f"refused AGI {command}: control character in an argument")
    line = " ".join(parts) + "\n"
    encoded = line.encode("utf-8")
    if len(encoded) > MAX_LINE:
        raise AgiProtocolError(f"refused AGI {command}: command longer than {MAX_LINE} bytes")
    return encoded
