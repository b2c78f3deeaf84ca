"""FastAGI replies after a timeout (review finding): Asterisk runs a socket's commands in order,
even after the recorder gave up waiting for a reply.

* The late reply of a command that timed out used to be taken as the *next* command's reply: a
  retried ``SET VARIABLE PBXREC_RESULT record`` was "confirmed" by the late ``200 result=1`` of
  ``PBXREC_CONSENT``.  Now the connection counts the replies still owed and skips them.
* A ``consent: none`` session whose ``PBXREC_RESULT=record`` (and its retry) timed out is
  resolved ``failed`` (the core stops and discards the recording), but Asterisk still runs the
  queued ``SET VARIABLE PBXREC_RESULT record`` afterwards, and AGISTATUS is SUCCESS at close: the
  dialplan said "record" for a discarded recording.  Now the session's last command is
  ``SET VARIABLE PBXREC_RESULT ""`` (the snippet's fail branch, which stops PBXREC_DIALOGUE_MMID).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import BinaryIO

import pytest
from fake_asterisk_agi import consent_server, env_block, sync_reply
from test_agi_session_contract import Backend

from consent import async_session
from consent.agi_async import AgiCommandFailed, AsyncAgiConnection
from consent.session_contract import DialogSettings
from pbx_recorder.core.rules import RuleDecision

pytestmark = pytest.mark.timeout(30)
NONE = RuleDecision(record=True, rule="in", verdict="yes", reason="rule", consent="none")
ENV = env_block(["direction=inbound", "dialed=4930123456", "linkedid=1732200000.1"])
Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def _connection(peer: Peer, reply_timeout_s: float) -> AsyncIterator[AsyncAgiConnection]:
    """A recorder's connection to ``peer`` (a fake Asterisk), both closed on leaving."""
    done: list[asyncio.Task[None]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await peer(reader, writer)
            await reader.read()  # until the recorder closes
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = AsyncAgiConnection(reader, writer, reply_timeout_s=reply_timeout_s)
    try:
        yield conn
    finally:
        await conn.close()
        await asyncio.wait(done, timeout=5)
        server.close()
        await server.wait_closed()


async def _env_and_sync(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(env_block(["direction=inbound"]))
    sync = (await reader.readline()).decode().rstrip("\n")
    writer.write(f"{sync_reply(sync)}\n".encode())
    await writer.drain()


async def test_a_late_reply_is_never_taken_as_the_next_commands() -> None:
    """The reviewer's repro: the retry is never answered, so it is not confirmed (it used to be,
    by the first command's late ``200 result=1``)."""
    got: list[bytes] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _env_and_sync(reader, writer)
        got.append(await reader.readline())
        await asyncio.sleep(0.3)  # a slow PBX: the first reply comes after the recorder gave up
        writer.write(b"200 result=1\n")
        await writer.drain()
        got.append(await reader.readline())  # the retry is never answered

    async with _connection(peer, 0.2) as conn:
        await _repro(conn, got)


async def _repro(conn: AsyncAgiConnection, got: list[bytes]) -> None:
    await conn.read_env()
    with pytest.raises(AgiCommandFailed):
        await conn.execute("SET VARIABLE", "PBXREC_CONSENT", "not_required")
    assert conn.owed == 1
    await asyncio.sleep(0.2)
    with pytest.raises(AgiCommandFailed, match="no reply"):
        await conn.execute("SET VARIABLE", "PBXREC_RESULT", "record", timeout=1.0)
    assert len(got) == 2 and conn.owed == 1  # the first one's skipped, the retry's own still due


async def test_the_late_reply_is_skipped_and_the_commands_own_reply_taken() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _env_and_sync(reader, writer)
        await reader.readline()
        await reader.readline()  # both commands queued; Asterisk answers them in order
        writer.write(b"200 result=1 (first)\n200 result=0 (second)\n")
        await writer.drain()

    async with _connection(peer, 0.2) as conn:
        await conn.read_env()
        with pytest.raises(AgiCommandFailed):
            await conn.execute("GET VARIABLE", "FIRST")  # the peer answers only once both are in
        reply = await conn.execute("GET VARIABLE", "SECOND", timeout=2.0)
        assert reply.data == "second" and conn.owed == 0


def slow_asterisk(port: int, variables: dict[str, str], slow_s: list[float]) -> list[str]:
    """Asterisk as the finding describes it: the n-th ``SET VARIABLE PBXREC_RESULT`` takes ``slow_s[n]``;
    the commands are run in order, also those read after the recorder closed its end (they are in
    the socket already; a reply that cannot be written any more changes nothing)."""
    commands: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, sock.makefile("rb") as lines:
        sock.sendall(ENV)
        while line := _line(lines):
            command = line.decode().rstrip("\n")
            if (synced := sync_reply(command)) is not None:
                sock.sendall(synced.encode() + b"\n")
                continue
            commands.append(command)
            _, _, name, value = command.split(" ", 3)
            if name == "PBXREC_RESULT":
                time.sleep(slow_s.pop(0))
            variables[name] = value.strip('"')
            with contextlib.suppress(OSError):  # the recorder may have closed its end meanwhile
                sock.sendall(b"200 result=1\n")
    return commands


def _line(lines: BinaryIO) -> bytes:
    """The next command line; b"" at the end (a reset after the recorder closed is an end too)."""
    try:
        return lines.readline()
    except ConnectionResetError:
        return b""


@pytest.mark.parametrize(("slow_s", "confirmed"), [([0.7, 0.7, 0.7], False), ([0.7, 0.1, 0.0], True)],
                         ids=["reset-unconfirmed", "reset-confirmed"])
async def test_unconfirmed_record_is_reset_as_the_last_command(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture,
                                                              slow_s: list[float], confirmed: bool) -> None:
    """Asterisk slow on every ``SET VARIABLE PBXREC_RESULT``: the session's set and its retry time
    out, the call is resolved ``failed``; Asterisk then runs what was queued, in order.  The value
    the dialplan reads at the end is "" (fail branch), never "record": whether the reset's own
    reply comes in time or not (the recorder closes with replies still due).  Bounds: 0.2 s per
    reply, 0.4 s for the retry and the reset; the retry's reply comes 0.2 s after its bound."""
    monkeypatch.setattr(async_session, "CONFIRM_TIMEOUT_S", 0.4)
    backend = Backend(NONE)
    variables: dict[str, str] = {}
    async with consent_server(backend, DialogSettings(), session_timeout_s=0.2) as srv:
        commands = await asyncio.to_thread(slow_asterisk, srv.port, variables, list(slow_s))
    assert [e.decision for e in backend.resolved] == ["failed"]  # the core discards the recording
    assert commands[-1] == 'SET VARIABLE PBXREC_RESULT ""'
    assert commands.count("SET VARIABLE PBXREC_RESULT record") == 2  # the set and its retry
    assert variables["PBXREC_RESULT"] == ""  # the snippet's fail branch, as the catalog says
    assert ("PBXREC_RESULT reset not confirmed" not in caplog.text) is confirmed
