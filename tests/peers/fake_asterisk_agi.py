"""Speaks FastAGI as Asterisk does: sends the agi_ environment, answers each command line; and
``consent_server``, the recorder's side those tests talk to."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

from consent.agi_async import AsyncAgiConnection, AsyncAgiServer
from consent.async_session import AsyncConsentSession
from consent.session_contract import DialogSettings

Responder = Callable[[str], "str | None"]  # command line -> reply line (None: hang up the socket)
SYNC = "GET FULL VARIABLE "  # the recorder's resync command, sent at connect (consent/agi_protocol.py)


def sync_reply(command: str) -> str | None:
    """Asterisk's reply to the recorder's resync command (``GET FULL VARIABLE <text>`` -> the text,
    as Asterisk substitutes it); None for any other command."""
    return f"200 result=1 ({command[len(SYNC):]})" if command.startswith(SYNC) else None


async def open_agi(port: int, env: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect as Asterisk does: write the environment, answer the resync command."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env)
    await answer_sync(reader, writer)
    return reader, writer


async def answer_sync(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    reply = sync_reply((await asyncio.wait_for(reader.readline(), 10)).decode().rstrip("\n"))
    assert reply is not None, "the recorder did not start with its resync command"
    writer.write(reply.encode() + b"\n")


def env_block(
    args: list[str],
    *,
    channel: str = "PJSIP/alice-00000001",
    uniqueid: str = "1732200000.1",
    callerid: str = "4915112345678",
    name: str = "Alice",
    script: str = "consent",
) -> bytes:
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:4573/{script}",
        f"agi_channel: {channel}",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {uniqueid}",
        "agi_version: 16.28.0",
        f"agi_callerid: {callerid}",
        f"agi_calleridname: {name}",
        "agi_context: from-trunk",
        "agi_extension: 4930123456",
        "agi_priority: 12",
        "agi_threadid: 140000000000",
    ]
    lines += [f"agi_arg_{i}: {a}" for i, a in enumerate(args, start=1)]
    return ("\n".join(lines) + "\n\n").encode()


def converse(port: int, env: bytes, respond: Responder, timeout: float = 10.0) -> list[str]:
    """Run one session; returns the command lines the server sent."""
    commands: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock, sock.makefile("rb") as buf:
        sock.sendall(env)
        while True:
            line = buf.readline()
            if not line:
                break
            command = line.decode().rstrip("\n")
            if (synced := sync_reply(command)) is not None:  # Asterisk's own business
                sock.sendall(synced.encode() + b"\n")
                continue
            commands.append(command)
            reply = respond(command)
            if reply is None:
                break
            sock.sendall(reply.encode() + b"\n")
    return commands


class InbandChannel:
    """A responder that does what Asterisk does with the recorder's in-band commands:
    ``EXEC MixMonitor "<file>,<options>,<command>"`` (the ``i(VAR)`` variable gets a MixMonitor
    ID), ``SET/GET VARIABLE``, the question (``STREAM FILE <q> 0123456789*#``) stopped by
    ``digit`` ``endpos`` samples (8 kHz) into it, and ``WAIT FOR DIGIT`` answered with
    ``late_digit`` (none: timeout).  ``fail_mixmonitor``: the application fails, and Asterisk
    ends the AGI session (the socket closes)."""

    def __init__(self, digit: str = "", fail_mixmonitor: bool = False, *, endpos: int = 16000,
                 late_digit: str = "") -> None:
        self.digit, self.endpos, self.late_digit = digit, endpos, late_digit
        self.fail_mixmonitor = fail_mixmonitor
        self.mixmonitors: list[dict[str, str]] = []
        self.variables: dict[str, str] = {}

    def __call__(self, command: str) -> str | None:
        if (synced := sync_reply(command)) is not None:
            return synced
        if command.startswith("STREAM FILE ") and command.endswith(" 0123456789*#"):  # the question
            code = ord(self.digit) if self.digit else 0
            return f"200 result={code} endpos={self.endpos if self.digit else 40000}"
        if command.startswith("WAIT FOR DIGIT "):
            return f"200 result={ord(self.late_digit) if self.late_digit else 0}"
        if command.startswith("EXEC MixMonitor "):
            if self.fail_mixmonitor:
                return None
            file, options, post = command[len("EXEC MixMonitor "):].strip('"').split(",", 2)
            self.mixmonitors.append({"file": file, "options": options, "command": post})
            var = options[options.index("i(") + 2:options.index(")")]
            self.variables[var] = f"0x{len(self.mixmonitors):08x}"
            return "200 result=0"
        if command.startswith("SET VARIABLE "):
            _, _, name, value = command.split(" ", 3)
            self.variables[name.strip('"')] = value.strip('"')
            return "200 result=1"
        if command.startswith("GET VARIABLE "):
            value = self.variables.get(command.split(" ", 2)[2].strip('"'))
            return f"200 result=1 ({value})" if value is not None else "200 result=0"
        return "200 result=0"


class Prompts:
    """Every prompt at a fixed path, version ``v1``: the session only names the file to play."""

    def path(self, prompt_id: str, language: str) -> tuple[str, str]:
        return f"/prompts/{language}/{prompt_id}", "v1"


@contextlib.asynccontextmanager
async def consent_server(backend: Any, settings: DialogSettings,
                         **options: Any) -> AsyncIterator[AsyncAgiServer]:
    """An ``AsyncAgiServer`` on a free port running an ``AsyncConsentSession`` (node ``pbx1``,
    ``Prompts``, no VIP list) against ``backend`` for each connection, refusals to
    ``backend.refused``; closed on leaving.  ``options`` go to the server (``max_sessions``,
    ``session_timeout_s``)."""

    async def session(conn: AsyncAgiConnection) -> None:
        await AsyncConsentSession(conn, node="pbx1", backend=backend, prompts=Prompts(), vip=None,
                                  settings=settings).run()

    srv = AsyncAgiServer("127.0.0.1", 0, session=session, refused=backend.refused, **options)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()
