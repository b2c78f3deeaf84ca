"""pyst2's ``AGI`` over a FastAGI socket, safe in a worker thread.

Why a subclass: ``asterisk.agi.AGI.__init__`` installs a SIGHUP handler with
``signal.signal``, which Python allows only in the main thread (``ValueError`` in a
``ThreadingTCPServer`` worker), and a process-wide handler would be wrong anyway for a
server holding many sessions.  Over FastAGI, Asterisk reports a hang-up in-band: a
``HANGUP`` line, ``511 Command Not Permitted on a dead channel``, ``result=-1``, or EOF.
So ``__init__`` here does what pyst2's does minus the signal (and with a bounded env block),
and ``get_result`` turns every in-band hang-up into :class:`ChannelGone`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from asterisk.agi import AGI, AGIInvalidCommand, AGIUnknownError, AGIUsageError

from consent.dialogue_runner import ChannelGone, DigitAnswer

MAX_LINE = 4096
DIGITS = "0123456789*#"
PROMPT_RATE = 8000  # prompts are 8 kHz (consent/generate_prompts.py, README): endpos / rate = seconds
MAX_ENV_LINES = 256
_CODE = re.compile(r"^(\d{3})(?:[ -](.*))?$")
_KV = re.compile(r"(?P<key>\w+)=(?P<value>\S*)\s*(?:\((?P<data>[^)]*)\))?")


class _Null:
    def write(self, _text: str) -> None:
        return None

    def flush(self) -> None:
        return None


class LineReader:
    """``readline()`` for pyst2: bounded line length and env size, text out."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.lines = 0

    def readline(self) -> str:
        self.lines += 1
        data = self.raw.readline(MAX_LINE)
        return data.decode("utf-8", "replace")


class LineWriter:
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw

    def write(self, text: str) -> None:
        self.raw.write(text.encode("utf-8"))

    def flush(self) -> None:
        self.raw.flush()


class ThreadSafeAGI(AGI):
    def __init__(self, rfile: BinaryIO, wfile: BinaryIO) -> None:  # no super(): see module docstring
        self.stdin = LineReader(rfile)
        self.stdout = LineWriter(wfile)
        self.stderr = _Null()
        self._got_sighup = False
        self.env: dict[str, str] = {}
        self._read_env()

    def _read_env(self) -> None:
        for _ in range(MAX_ENV_LINES):
            line = self.stdin.readline()
            if not line:
                raise ChannelGone("AGI connection closed before the environment ended")
            line = line.strip()
            if not line:
                return
            key, sep, value = line.partition(":")
            if sep and key.strip():
                self.env[key.strip()] = value.strip()
        raise ChannelGone("AGI environment too long")

    def test_hangup(self) -> None:
        return None

    def execute(self, command: str, *args: Any) -> dict[str, tuple[str, str]]:
        try:
            self.send_command(command, *args)
        except OSError as exc:
            raise ChannelGone(f"AGI write failed: {exc}") from exc
        return self.get_result()

    def get_result(self, stdin: Any = None) -> dict[str, tuple[str, str]]:
        line = self.stdin.readline()
        if not line:
            raise ChannelGone("AGI connection closed")
        line = line.strip()
        if line.startswith("HANGUP"):
            raise ChannelGone("HANGUP from Asterisk")
        match = _CODE.match(line)
        if match is None:
            raise AGIUnknownError(0, f"unparsable AGI reply {line[:80]!r}")
        code, rest = int(match.group(1)), match.group(2) or ""
        if code == 200:
            result: dict[str, tuple[str, str]] = {"result": ("", "")}
            for m in _KV.finditer(rest):
                result[m["key"]] = (m["value"], m["data"] or "")
            value, data = result["result"]
            if value == "-1" or data == "hangup":
                raise ChannelGone("result=-1 (hang-up or failure)")
            return result
        if code == 511:
            raise ChannelGone("511: dead channel")
        if code == 510:
            raise AGIInvalidCommand(rest)
        if code == 520:
            usage = [line]
            for _ in range(64):  # multi-line usage ends with a "520 End of proper usage." line
                more = self.stdin.readline()
                if not more or more.startswith("520"):
                    break
                usage.append(more.strip())
            raise AGIUsageError("\n".join(usage))
        raise AGIUnknownError(code, f"unhandled AGI reply {line[:80]!r}")


def _digit(code: str) -> str:
    """STREAM FILE / WAIT FOR DIGIT answer the ASCII code of the digit (0: none)."""
    if not code.isdigit() or not 0 < int(code) < 128:
        return ""
    char = chr(int(code))
    return char if char in DIGITS else ""


class AgiPromptChannel:
    """The dialogue's :class:`~consent.dialogue_runner.PromptChannel` over STREAM FILE / WAIT FOR DIGIT."""

    def __init__(self, agi: ThreadSafeAGI, clock: Callable[[], float] = time.monotonic) -> None:
        self.agi = agi
        self.clock = clock

    def play(self, path: str) -> None:
        self.agi.execute("STREAM FILE", path, '""', 0)

    def ask(self, path: str, timeout_ms: int) -> DigitAnswer:
        """The question with barge-in, then up to ``timeout_ms`` for a digit.

        ``STREAM FILE <q> "0123456789*#"`` stops at a digit and says where (``endpos``, in
        samples of the 8 kHz prompt): that is the digit's offset from the start of the question,
        so a digit queued before the question began (offset ~0) can be told from an answer.
        Then ``WAIT FOR DIGIT``: the digit's time after the end of the question."""
        reply = self.agi.execute("STREAM FILE", path, f'"{DIGITS}"', 0)
        digit = _digit(reply["result"][0])
        if digit:
            endpos = reply.get("endpos", ("", ""))[0]
            offset = int(endpos) / PROMPT_RATE if endpos.isdigit() else None
            return DigitAnswer(digit, prompt_offset_s=offset)
        ended = self.clock()
        reply = self.agi.execute("WAIT FOR DIGIT", max(timeout_ms, 1))
        return DigitAnswer(_digit(reply["result"][0]), after_prompt_s=max(self.clock() - ended, 0.0))

    def set_variable(self, name: str, value: str) -> None:
        self.agi.execute("SET VARIABLE", f'"{name}"', f'"{value}"')
