"""Speaks FastAGI as Asterisk does: sends the agi_ environment, answers each command line."""

from __future__ import annotations

import socket
from collections.abc import Callable

Responder = Callable[[str], "str | None"]  # command line -> reply line (None: hang up the socket)


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
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(env)
        buf = sock.makefile("rb")
        while True:
            line = buf.readline()
            if not line:
                break
            command = line.decode().rstrip("\n")
            commands.append(command)
            reply = respond(command)
            if reply is None:
                break
            sock.sendall(reply.encode() + b"\n")
    return commands
