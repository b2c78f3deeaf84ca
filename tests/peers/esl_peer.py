"""An in-process FreeSWITCH event socket (inbound side) for protocol edge cases.

Faithful to ../shared/freeswitch-facts.md: ``auth/request`` on connect, ``auth <pw>`` ->
``+OK accepted`` / ``-ERR invalid``, ``event plain ...`` -> ``+OK event listener enabled plain``,
``api <cmd>`` -> ``api/response`` with a body, ``bgapi`` -> ``command/reply`` ``+OK Job-UUID: <id>``
then a BACKGROUND_JOB event, ``exit`` -> ``+OK bye`` and ``text/disconnect-notice``.

``api`` answers come from ``self.api`` (command prefix -> body, or a callable); everything
received is kept in ``self.received``.  ``push(bytes)`` sends raw bytes (events, captured
frames) to every connected client; ``drop()`` closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from esl.frames import AUTH_REQUEST, DISCONNECT_NOTICE, render_event_plain, render_frame

PASSWORD = "ClueCon"


def reply(text: str, **headers: str) -> bytes:
    return render_frame([("Content-Type", "command/reply"), ("Reply-Text", text), *headers.items()])


def api_body(body: str) -> bytes:
    return render_frame([("Content-Type", "api/response")], body.encode())


class EslPeer:
    def __init__(self, password: str = PASSWORD) -> None:
        self.password = password
        self.api: dict[str, str | Callable[[str], str]] = {
            "show channels as json": json.dumps({"row_count": 0}),
            "uuid_getvar": "_undef_",
            "uuid_record": "+OK Success\n",
            "uuid_setvar": "+OK\n",
            "uptime": "42\n",
        }
        self.received: list[str] = []
        self.connections = 0
        self.auth_ok = asyncio.Event()
        self.silent: set[str] = set()  # command prefixes never answered (timeout tests)
        self.job_delay = 0.0
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    def drop(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    def push(self, data: bytes) -> None:
        for writer in self._writers:
            writer.write(data)

    def push_event(self, headers: list[tuple[str, str]], inner: str = "") -> None:
        self.push(render_event_plain(headers, inner))

    def commands(self, prefix: str) -> list[str]:
        """Commands received that start with ``prefix``; for an ``api `` prefix, a ``bgapi`` of the
        same command counts too (shown as ``api ...``, without its Job-UUID line)."""
        out = []
        for command in self.received:
            if prefix.startswith("api ") and command.startswith("bgapi "):
                command = "api " + command[6:].split("\n", 1)[0]
            if command.startswith(prefix):
                out.append(command)
        return out

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        writer.write(render_frame([("Content-Type", AUTH_REQUEST)]))
        authed = False
        try:
            while True:
                block = await reader.readuntil(b"\n\n")
                command = block.decode().rstrip("\n")
                self.received.append(command)
                first, _, rest = command.partition("\n")
                if not authed:
                    if first == f"auth {self.password}":
                        authed = True
                        self.auth_ok.set()
                        writer.write(reply("+OK accepted"))
                    else:
                        writer.write(reply("-ERR invalid"))
                        writer.write(render_frame([("Content-Type", DISCONNECT_NOTICE)], b"bye\n"))
                        writer.close()
                        return
                    continue
                if any(first.startswith(p) for p in self.silent):
                    continue
                if first.startswith("event plain"):
                    writer.write(reply("+OK event listener enabled plain"))
                elif first.startswith("api "):
                    writer.write(api_body(self._answer(first[4:])))
                elif first.startswith("bgapi "):
                    job = rest.partition("Job-UUID: ")[2].strip() or "00000000-0000-4000-8000-000000000000"
                    writer.write(reply(f"+OK Job-UUID: {job}", **{"Job-UUID": job}))
                    task = asyncio.get_running_loop().create_task(self._job(writer, job, first[6:]))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                elif first.startswith("sendevent"):
                    writer.write(reply("+OK"))
                elif first == "exit":
                    writer.write(reply("+OK bye"))
                    writer.write(
                        render_frame([("Content-Type", DISCONNECT_NOTICE)], b"Disconnected, goodbye.\n")
                    )
                    writer.close()
                    return
                else:
                    writer.write(reply("-ERR command not found"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            with contextlib.suppress(ValueError):
                self._writers.remove(writer)
            writer.close()

    def _answer(self, line: str) -> str:
        for prefix, answer in self.api.items():
            if line.startswith(prefix):
                return answer(line) if callable(answer) else answer
        return "-ERR command not found\n"

    async def _job(self, writer: asyncio.StreamWriter, job: str, line: str) -> None:
        await asyncio.sleep(self.job_delay)
        headers = [("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", job), ("Job-Command", line.split(" ")[0])]
        if not writer.is_closing():
            writer.write(render_event_plain(headers, self._answer(line)))
