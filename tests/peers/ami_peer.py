"""An in-process AMI server that behaves like Asterisk 16 where the recorder cares.

* banner ``Asterisk Call Manager/5.0.1``; ``Login`` checks username/secret (Error + close
  on failure), then ``FullyBooted`` (unless ``send_fully_booted`` is False);
* replies carry the action's ``ActionID``; unknown actions answer
  ``Error / Invalid/unknown command``;
* ``CoreShowChannels``: ``Success`` + ``EventList: start``, one ``CoreShowChannel`` per
  entry of :attr:`channels`, then ``CoreShowChannelsComplete``;
* ``Getvar`` answers from :attr:`variables` ``{channel: {name: value}}``;
* ``MixMonitor`` answers ``MixMonitorID`` when Options has ``i(VAR)``; ``errors[action]``
  makes an action answer ``Response: Error`` with that message; actions in ``hold`` get
  no reply at all (to test disconnects);
* :meth:`emit` sends an event to every logged-in client; :meth:`drop` closes them.

Binds 127.0.0.1 on a free port; use ``async with AmiPeer() as peer``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable

from ami.frames import FrameParser, render_frame

BANNER = b"Asterisk Call Manager/5.0.1\r\n"


class AmiPeer:
    def __init__(self, username: str = "recorder", secret: str = "s3cret") -> None:
        self.username, self.secret = username, secret
        self.send_fully_booted = True
        self.startup: tuple[str, str] | None = None  # CoreStatus (date, time); None: unknown command
        self.asterisk_version: str | None = None  # CoreSettings' AsteriskVersion; None: unknown command
        self.channels: list[dict[str, str]] = []
        self.variables: dict[str, dict[str, str]] = {}
        self.errors: dict[str, str] = {}
        self.hold: set[str] = set()
        self.received: list[dict[str, object]] = []
        self.logins = 0
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self._mmid = 0
        self.port = 0
        self.action_seen = asyncio.Event()

    async def __aenter__(self) -> AmiPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def actions(self, name: str) -> list[dict[str, object]]:
        return [a for a in self.received if a.get("action", "").lower() == name.lower()]  # type: ignore[union-attr]

    async def wait_action(self, name: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, object]]:
        async def _poll() -> None:
            while len(self.actions(name)) < count:
                self.action_seen.clear()
                await self.action_seen.wait()

        await asyncio.wait_for(_poll(), timeout)
        return self.actions(name)

    async def emit(self, headers: Iterable[tuple[str, str]] | dict[str, str]) -> None:
        """Send an event as Asterisk writes it: ``Privilege`` after ``Event`` (added when absent)."""
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
        if pairs and pairs[0][0].lower() == "event" and not any(k.lower() == "privilege" for k, _ in pairs):
            pairs.insert(1, ("Privilege", "call,all"))
        await self.send_raw(render_frame(pairs))

    async def send_raw(self, data: bytes) -> None:
        for writer in list(self._writers):
            writer.write(data)
            await writer.drain()

    async def drop(self) -> None:
        for writer in list(self._writers):
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self._writers.clear()

    async def wait_logins(self, count: int, timeout: float = 5.0) -> None:
        async def _poll() -> None:
            while self.logins < count:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(_poll(), timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(BANNER)
        parser = FrameParser()
        logged_in = False
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                for frame in parser.feed(data):
                    self.received.append(frame)
                    self.action_seen.set()
                    logged_in = await self._answer(frame, writer, logged_in)
                    if writer.is_closing():
                        return
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            if not writer.is_closing():
                writer.close()

    async def _answer(self, frame: dict[str, object], writer: asyncio.StreamWriter, logged_in: bool) -> bool:
        name = str(frame.get("action", ""))
        aid = str(frame.get("actionid", ""))
        out: list[list[tuple[str, str]]] = []
        if name.lower() == "login":
            if frame.get("username") == self.username and frame.get("secret") == self.secret:
                self.logins += 1
                writer.write(
                    render_frame(
                        [("Response", "Success"), ("ActionID", aid), ("Message", "Authentication accepted")]
                    )
                )
                self._writers.add(writer)
                if self.send_fully_booted:
                    writer.write(
                        render_frame(
                            [
                                ("Event", "FullyBooted"),
                                ("Privilege", "system,all"),
                                ("Uptime", "5"),
                                ("LastReload", "5"),
                                ("Status", "Fully Booted"),
                            ]
                        )
                    )
                await writer.drain()
                return True
            writer.write(
                render_frame([("Response", "Error"), ("ActionID", aid), ("Message", "Authentication failed")])
            )
            await writer.drain()
            writer.close()
            return False
        if not logged_in:
            out.append([("Response", "Error"), ("ActionID", aid), ("Message", "Permission denied")])
        elif name in self.hold:
            return logged_in
        elif name in self.errors:
            out.append([("Response", "Error"), ("ActionID", aid), ("Message", self.errors[name])])
        else:
            out.extend(self._reply(name, aid, frame))
        for reply in out:
            writer.write(render_frame(reply))
        await writer.drain()
        return logged_in

    def _reply(self, name: str, aid: str, frame: dict[str, object]) -> list[list[tuple[str, str]]]:
        ok = [("Response", "Success"), ("ActionID", aid)]
        lname = name.lower()
        if lname == "ping":
            return [ok + [("Ping", "Pong"), ("Timestamp", "1.0")]]
        if lname == "coreshowchannels":
            msgs = [ok + [("EventList", "start"), ("Message", "Channels will follow")]]
            for ch in self.channels:
                msgs.append([("Event", "CoreShowChannel"), ("ActionID", aid)] + list(ch.items()))
            msgs.append(
                [
                    ("Event", "CoreShowChannelsComplete"),
                    ("ActionID", aid),
                    ("EventList", "Complete"),
                    ("ListItems", str(len(self.channels))),
                ]
            )
            return msgs
        if lname == "corestatus" and self.startup is not None:
            return [ok + [("CoreStartupDate", self.startup[0]), ("CoreStartupTime", self.startup[1]),
                          ("CoreCurrentCalls", str(len(self.channels)))]]
        if lname == "coresettings" and self.asterisk_version is not None:
            return [ok + [("AMIversion", "5.0.1"), ("AsteriskVersion", self.asterisk_version)]]
        if lname == "getvar":
            value = self.variables.get(str(frame.get("channel")), {}).get(str(frame.get("variable")), "")
            return [ok + [("Variable", str(frame.get("variable"))), ("Value", value)]]
        if lname == "mixmonitor":
            known = {c.get("Channel") for c in self.channels}
            if self.channels and frame.get("channel") not in known:
                return [[("Response", "Error"), ("ActionID", aid), ("Message", "No such channel")]]
            self._mmid += 1
            extra = []
            if re.search(r"i\([A-Za-z0-9_]+\)", str(frame.get("options", ""))):
                extra = [("MixMonitorID", f"0x{self._mmid:08x}")]
            return [ok + extra]
        if lname in ("stopmixmonitor", "mixmonitormute", "setvar"):
            return [ok + [("Message", f"{name} done")]]
        return [[("Response", "Error"), ("ActionID", aid), ("Message", "Invalid/unknown command")]]
