"""A fake FreeSWITCH channel that runs the dialplan's ``socket <host>:<port> async full``.

It connects to the recorder's outbound server and behaves as freeswitch-facts.md describes:
``connect`` -> ``command/reply`` whose headers are the channel data (percent-encoded),
``myevents`` -> ``+OK Events Enabled``, ``resume`` -> ``+OK``, ``sendmsg`` -> ``+OK`` then, for
``execute``, a CHANNEL_EXECUTE_COMPLETE event carrying ``Application-UUID`` = our Event-UUID (for
``play_and_get_digits`` with the next scripted digit in ``variable_<var>``, after a
CHANNEL_EXECUTE and a DTMF event timed as scripted: ``("1", -0.4)`` is a "1" that arrived 0.4 s
before the question started, a plain ``"1"`` one that came 1.5 s into it); ``hangup`` ->
CHANNEL_HANGUP, CHANNEL_HANGUP_COMPLETE, ``text/disconnect-notice``.  ``hangup_at`` makes the
caller hang up when that application starts (the n-th, 0-based); ``during_playback`` presses a
digit 2 s into each ``playback`` (only its DTMF event is seen: playback takes the digit itself);
``parked_digits``: digits the park took before the first question (their DTMF events only).
``api <cmd>`` -> ``api/response`` with ``api_body`` (or what the ``api`` callable returns).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import quote

from esl.frames import DISCONNECT_NOTICE, parse_head, render_event_plain, render_frame
from tests.unit.esl_samples import A_LEG, T0, ev


class FakeChannel:
    def __init__(
        self,
        port: int,
        *,
        uuid: str = A_LEG,
        variables: dict[str, str] | None = None,
        digits: list[str | tuple[str, float]] | None = None,
        hangup_at: int | None = None,
        caller_name: str = "Jane Doe",
        caller_num: str = "5551234",
        api: Callable[[str], str] | None = None,
        answer_state: str = "answered",
        refuse_set: str = "",
        during_playback: list[str] | None = None,
        parked_digits: list[str] | None = None,
        refuse_set_app: str = "",
    ) -> None:
        self.port, self.uuid = port, uuid
        self.variables = {"PBXREC_DIRECTION": "inbound", "PBXREC_DIALED": "4930123456", **(variables or {})}
        self.digits = list(digits or [])
        self.hangup_at = hangup_at
        self.caller = {"Caller-Caller-ID-Name": caller_name, "Caller-Caller-ID-Number": caller_num}
        self.apps: list[tuple[str, str]] = []
        self.vars_set: dict[str, str] = {}
        self.commands: list[str] = []
        self.hung_up = False
        self.api_body = "+OK Success\n"  # what an ``api ...`` on this socket answers
        self.api = api  # or what this answers (the command line without "api ")
        self.answer_state = answer_state  # "ringing": handed over before the dialplan answered
        self.refuse_set = refuse_set  # a variable whose ``uuid_setvar_multi`` FreeSWITCH refuses (-ERR)
        # a digit the caller presses 2 s into each ``playback`` ("" none), which playback's own DTMF
        # callback takes off the channel's queue: only its DTMF event is seen (the playback lasts 5 s)
        self.during_playback = list(during_playback or [])
        # digits the park between applications took off the queue before the first question: their
        # DTMF events only (stamped 1 s before that question starts)
        self.parked_digits = list(parked_digits or [])
        self.refuse_set_app = refuse_set_app  # a variable whose ``sendmsg`` ``set`` FreeSWITCH refuses

    def channel_data(self) -> list[tuple[str, str]]:
        data = [(k, v) for k, v in ev("CHANNEL_DATA", self.uuid, T0, {"Answer-State": self.answer_state})
                if k not in self.caller]
        data += list(self.caller.items())
        data += [(f"variable_{k}", v) for k, v in self.variables.items()]
        return data

    async def run(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._run(), timeout)

    async def _run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            while True:
                try:
                    block = (await reader.readuntil(b"\n\n")).decode()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.commands.append(block.strip())
                self._answer(block, writer)
                await writer.drain()
                if self.hung_up:
                    writer.close()
                    return
        finally:
            writer.close()

    def _answer(self, block: str, writer: asyncio.StreamWriter) -> None:
        """FreeSWITCH's answer to one command block (its reply, and any events it causes)."""
        first = block.split("\n", 1)[0]
        if first == "connect":
            head = [
                ("Content-Type", "command/reply"),
                ("Reply-Text", "+OK"),
                *((k, quote(v, safe="")) for k, v in self.channel_data()),
            ]
            writer.write(render_frame(head))
        elif first in ("myevents", "resume", "linger"):
            writer.write(_reply("+OK Events Enabled" if first == "myevents" else "+OK"))
        elif first.startswith("api uuid_setvar_multi "):
            pairs = [p.partition("=") for p in first.split(" ", 3)[3].split(";")]
            refused = any(name == self.refuse_set for name, _, _ in pairs)
            if not refused:
                for name, _, value in pairs:
                    self.set_variable(name, value)
            body = ("-ERR refused\n" if refused else "+OK\n").encode()
            writer.write(render_frame([("Content-Type", "api/response")], body))
        elif first.startswith("api "):
            body = (self.api(first[4:]) if self.api else self.api_body).encode()
            writer.write(render_frame([("Content-Type", "api/response")], body))
        elif first == "sendmsg":
            head = parse_head(block)
            if (self.refuse_set_app and head.get("execute-app-name") == "set"
                    and head.get("execute-app-arg", "").startswith(self.refuse_set_app + "=")):
                writer.write(_reply("-ERR refused"))
                return
            writer.write(_reply("+OK"))
            self._sendmsg(head, writer)
        else:
            writer.write(_reply("-ERR command not found"))

    def _sendmsg(self, h: dict[str, str], writer: asyncio.StreamWriter) -> None:
        if h.get("call-command") == "hangup":
            self._hangup(writer)
            return
        app, arg = h.get("execute-app-name", ""), h.get("execute-app-arg", "")
        if self.hangup_at is not None and len(self.apps) == self.hangup_at:
            self.apps.append((app, arg))
            self._hangup(writer)
            return
        self.apps.append((app, arg))
        extra = {"Application": app, "Application-Data": arg, "Application-UUID": h.get("Event-UUID", "")}
        if app == "set":
            self.set_variable(*arg.partition("=")[::2])
        if app == "play_and_get_digits":
            var = arg.split(" ")[7]
            scripted = self.digits.pop(0) if self.digits else ""
            digit, offset = scripted if isinstance(scripted, tuple) else (scripted, 1.5)
            asked_at = T0 + 10.0 * len(self.apps)  # each question starts 10 s after the last
            while self.parked_digits:
                writer.write(render_event_plain(ev("DTMF", self.uuid, asked_at - 1.0,
                                                   {"DTMF-Digit": self.parked_digits.pop(0),
                                                    "DTMF-Source": "RTP"})))
            writer.write(render_event_plain(ev("CHANNEL_EXECUTE", self.uuid, asked_at, dict(extra))))
            if digit:
                writer.write(render_event_plain(ev("DTMF", self.uuid, asked_at + offset,
                                                   {"DTMF-Digit": digit, "DTMF-Source": "RTP"})))
            extra[f"variable_{var}"] = digit
            extra["Application-Response"] = digit or "_invalid_"
        completed = T0
        if app == "playback":
            started = T0 + 10.0 * len(self.apps)
            pressed = self.during_playback.pop(0) if self.during_playback else ""
            if pressed:
                writer.write(render_event_plain(ev("DTMF", self.uuid, started + 2.0,
                                                   {"DTMF-Digit": pressed, "DTMF-Source": "RTP"})))
            completed = started + 5.0
        writer.write(render_event_plain(ev("CHANNEL_EXECUTE_COMPLETE", self.uuid, completed, extra)))

    def set_variable(self, name: str, value: str) -> None:
        """FreeSWITCH's channel variables: an empty value unsets (``set X=``, ``X=`` in
        ``uuid_setvar_multi``)."""
        if value:
            self.vars_set[name] = value
        else:
            self.vars_set.pop(name, None)

    def _hangup(self, writer: asyncio.StreamWriter) -> None:
        self.hung_up = True
        writer.write(
            render_event_plain(ev("CHANNEL_HANGUP", self.uuid, T0, {"Hangup-Cause": "NORMAL_CLEARING"}))
        )
        writer.write(render_frame([("Content-Type", DISCONNECT_NOTICE)], b"Disconnected, goodbye.\n"))


def _reply(text: str) -> bytes:
    return render_frame([("Content-Type", "command/reply"), ("Reply-Text", text)])
