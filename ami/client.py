"""The AMI connection, on panoramisk's protocol.

panoramisk does the framing (``AMIProtocol.data_received``) and matches replies to actions
by ActionID (``Action`` is its own future).  What this module adds:

* login, then wait (bounded) for ``FullyBooted`` before anything that matters is sent;
* replies translated: ``Response: Error`` -> :class:`AmiActionError` with the call id, no
  reply within ``action_timeout`` -> AmiActionError too;
* on disconnect every pending action fails with :class:`PbxDisconnected` (panoramisk
  would re-queue them and re-send after the next FullyBooted: re-sending a MixMonitor
  could record twice, so we never do);
* reconnect with exponential backoff and jitter (``backoff_min`` .. ``backoff_max``);
* after every (re)connect a resync: ``CoreShowChannels`` -> one ``LiveChannel`` per channel
  (with its PBXREC_* variables read by ``Getvar``) then ``ResyncCompleted``;
* normalized events come out of :meth:`AmiClient.events` (an async iterator);
* every block is contained: the envelope a caller ID may have repeated (``Event``, ``ActionID``
  ...) is repaired before panoramisk reads it (:mod:`ami.envelope`), and a block that still fails
  is logged with its call's ids and skipped; nothing a caller sends can close the connection;
* every read's blocks pass the framing guard first (:meth:`ami.framing_guard.FramingGuard.filter`):
  the blocks a caller forged with a blank line in its caller ID are dropped and counted, and when
  the guard may have dropped genuine events with them it asks for a resync (CoreShowChannels
  again; paced and coalesced by :mod:`ami.resync_pacer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from panoramisk import actions as pactions

from ami import actions
from ami.envelope import message_from_block, parse_message
from ami.framing_guard import FramingGuard
from ami.genuine_envelope import AsteriskEnvelope
from ami.normalize import Normalizer
from ami.protocol import GuardedProtocol
from ami.replies import header, list_complete
from ami.resync_pacer import ResyncPacer
from ami.stream_faults import StreamFaults
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import constants as C
from pbx_recorder.core import events as ev
from pbx_recorder.core.naming import boot_tag
from pbx_recorder.core.recording_refs import RecordingRefs
from pbx_recorder.errors import AmiActionError, PbxDisconnected, PbxError
from pbx_recorder.reconnect import keep_connected

log = logging.getLogger(__name__)

__all__ = ["AmiClient", "AmiLoginFailed", "message_from_block", "parse_message"]

#: what the core reads from a live channel on resync (calls.CallBook._on_live_channel)
DEFAULT_RESYNC_VARIABLES = (C.VAR_RESULT, C.VAR_RECORDING_ID, C.VAR_RECORDING_PATH, C.VAR_CALL_ID,
                            "PBXREC_CONSENT", C.VAR_DIALOGUE_MMID)
HOLD_MAX = 10_000


class AmiLoginFailed(PbxError):
    pass


#: a session that ends with one of these is logged and tried again (pbx_recorder.reconnect)
_SESSION_ERRORS = (OSError, TimeoutError, AmiLoginFailed, PbxDisconnected)


class AmiClient(StreamFaults):
    # attributes panoramisk's AMIProtocol.close() reads on its factory
    forgetable_actions: tuple[str, ...] = ()

    def __init__(self, *, host: str, port: int, username: str, secret: str, normalizer: Normalizer,
                 backoff_min: float = 0.5, backoff_max: float = 30.0, boot_timeout: float = 10.0,
                 action_timeout: float = 10.0, connect_timeout: float = 5.0, ping_interval: float = 20.0,
                 resync_variables: Iterable[str] = DEFAULT_RESYNC_VARIABLES, confirm_hangups: bool = True,
                 clock: Callable[[], float] = time.time, rnd: Callable[[], float] = random.random) -> None:
        self.host, self.port = host, port
        self._username, self._secret = username, secret
        self.normalizer = normalizer
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.boot_timeout, self.action_timeout = boot_timeout, action_timeout
        self.connect_timeout, self.ping_interval = connect_timeout, ping_interval
        self.resync_variables = tuple(resync_variables)
        self.clock, self.rnd = clock, rnd
        self.awaiting_actions: list[Any] = []  # filled by AMIProtocol.close(); we fail them
        self._protocol: GuardedProtocol | None = None
        self._pending: dict[str, pactions.Action] = {}  # ActionID -> action
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._booted = asyncio.Event()
        self._lost: asyncio.Future[None] | None = None
        self._closing = False
        self._mmids: RecordingRefs[str] = RecordingRefs(what="MixMonitorID")  # recording_id -> ID
        self._seen_in_resync: set[str] | None = None  # call ids of events that arrived during a resync
        self._held: list[tuple[Any, float]] | None = None  # events between login and CoreStatus
        self.connects = 0
        self.version: str | None = None
        self.asterisk_version = ""  # CoreSettings' AsteriskVersion after a connect ("" unknown)
        self.framing = self._new_guard()  # per connection: reset in _session
        self._resync_lock = asyncio.Lock()
        self.resync_pacer = ResyncPacer(self._resync, self._ready.is_set)  # coalesced, one per interval
        self.resyncs_asked = 0  # resyncs the framing guard asked for (genuine events may have been dropped)
        self.confirm_hangups = confirm_hangups
        self.hangups_refuted = 0
        self.last_data_at = 0.0  # monotonic time of the last bytes from Asterisk
        self.last_data_wall = 0.0  # the same, by the client's clock (a lost link loses what came after)
        self.cut_since: float | None = None  # the read a cut the framing guard still holds opened in
        self.envelopes_repaired = 0  # messages whose Event/Response/ActionID... a caller repeated
        self.blocks_failed = 0  # blocks skipped because handling them raised
        self.events_lost = 0  # times events may have been lost inside the client (PbxEventsLost)
        self._held_dropped = 0  # events past HOLD_MAX while connecting
        self._held_dropped_since = 0.0
        self._envelope_warned: dict[str, None] = {}

    # -- public API ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    async def events(self) -> AsyncIterator[Any]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, asyncio.Future):  # a Hangup being confirmed: keeps the event order
                for confirmed in await item:
                    yield confirmed
                continue
            yield item

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff until :meth:`close`."""
        await keep_connected(self._session, self._drop, lambda: self._closing, protocol="AMI",
                             endpoint=f"{self.host}:{self.port}", errors=_SESSION_ERRORS, log=log,
                             backoff_min=self.backoff_min, backoff_max=self.backoff_max, rnd=self.rnd)
        self._queue.put_nowait(None)

    async def close(self) -> None:
        self._closing = True
        self._drop("client closing")

    async def send(self, headers: dict[str, str], *, call_id: str = "", timeout: float | None = None) -> Any:
        """Send one action once the connection is ready; the reply (Message or list of them)."""
        if not self._ready.is_set():
            raise PbxDisconnected(f"AMI not connected: {headers.get('Action')} not sent", call_id=call_id)
        return await self._send(headers, call_id=call_id, timeout=timeout)

    async def execute(self, command: cmds.Command) -> list[Any]:
        """Carry out a PBX command; events it produces (RecordingStarted with the MixMonitorID)."""
        if isinstance(command, cmds.StopRecording) and not command.pbx_ref:
            known = self._mmids.get(command.recording_id) or await self._find_mmid(command)
            if not known:  # never an ID-less StopMixMonitor: it stops whichever MixMonitor comes first
                self._mmids.pop(command.recording_id)
                return []
            command = dataclasses.replace(command, pbx_ref=known)
        headers = actions.to_action(command)
        sent_at = self.clock()
        reply = await self.send(headers, call_id=command.call_id)
        if isinstance(command, cmds.StartRecording):
            mmid = header(reply, "MixMonitorID")
            if mmid:  # until the recording ends: a stop, its channel's hang-up, a resync without it
                self._mmids.add(command.recording_id, command.call_id,
                                (command.channel, self.normalizer.uniqueid_of(command.channel)), mmid)
            # the reply is read as late as the events around it, and it cannot precede the action
            at = max(sent_at, self.normalizer.clock.reply_time(self.clock()))
            return [ev.RecordingStarted(at=at, call_id=command.call_id,
                                        channel_id=self.normalizer.uniqueid_of(command.channel),
                                        channel=command.channel, recording_id=command.recording_id,
                                        pbx_ref=mmid)]
        if isinstance(command, cmds.StopRecording):
            self._mmids.pop(command.recording_id)
        return []

    async def _find_mmid(self, command: cmds.StopRecording) -> str:
        """The MixMonitorID of a recording the client has none for, read (``Getvar``) from the
        variable its MixMonitor was started with (``actions.stop_lookup_variables``); "" when
        none holds one: the stop is skipped, and why is logged (a start never confirmed: nothing
        to stop; a confirmed one: the snippet's fail direction is what stops it)."""
        mine = set(self._mmids.of_call(command.call_id))  # the other recordings' IDs are not this one's
        for name in actions.stop_lookup_variables(command):
            try:
                reply = await self._send(actions.getvar(command.channel, name, call_id=command.call_id),
                                         call_id=command.call_id, check=False)
            except (AmiActionError, PbxDisconnected) as exc:
                log.warning("StopMixMonitor not sent call=%s rec=%s: Getvar %s failed: %s", command.call_id,
                            command.recording_id, name, exc)
                return ""
            found = header(reply, "Value") if header(reply, "Response") == "Success" else ""
            mmid = actions.mixmonitor_id(found) if found else ""
            if mmid and mmid not in mine:
                log.info("MixMonitorID of call=%s rec=%s read from %s", command.call_id,
                         command.recording_id, name)
                return mmid
        level = logging.WARNING if command.pbx_started else logging.INFO
        log.log(level, "StopMixMonitor not sent call=%s rec=%s: no MixMonitorID known or found on the "
                "channel (%s)", command.call_id, command.recording_id or "-",
                "started, not confirmed by ID" if command.pbx_started else "its start was never confirmed")
        return ""

    # -- panoramisk factory hooks -------------------------------------------------
    def dispatch(self, message: Any) -> None:
        if message.get("Event", "") == "FullyBooted":
            self._booted.set()
        if self._held is not None:  # call ids need the PBX's start time: hold until CoreStatus
            if len(self._held) < HOLD_MAX:
                self._held.append((message, self.clock()))
            else:
                self._held_dropped += 1
                self._held_dropped_since = self._held_dropped_since or self.clock()
                log.error("AMI: %d events held before CoreStatus answered; event dropped", HOLD_MAX)
            return
        self._normalize(message, self.clock())

    def _normalize(self, message: Any, now: float) -> None:
        try:
            for item in self.normalizer.normalize(message, now):
                if self._seen_in_resync is not None and isinstance(item, ev.CallEvent):
                    self._seen_in_resync.add(item.call_id)
                if isinstance(item, ev.ChannelHungUp) and self.confirm_hangups and self._ready.is_set():
                    self._queue.put_nowait(asyncio.ensure_future(self._confirm_hangup(item)))
                    continue
                if isinstance(item, ev.ChannelHungUp):
                    self._channel_gone(item)
                self._queue.put_nowait(item)
        except Exception:  # never let one frame break panoramisk's data_received
            log.exception("AMI event dispatch failed for %r", message.get("Event", ""))
            self.lost_events("an event failed to normalize", since=now)

    def _new_guard(self) -> FramingGuard:
        """A framing guard that also checks each event's envelope; an event without Privilege is
        Asterisk's only as an item of a list answering an action we are waiting for."""
        return FramingGuard(envelope=AsteriskEnvelope(ours=self._pending.__contains__))

    def connection_lost(self, exc: Any) -> None:
        log.warning("AMI connection lost (%s)", exc if isinstance(exc, Exception) else "closed")
        self._fail_pending("AMI connection lost")
        self._ready.clear()
        # the core: was it a PBX restart?  (events sent after the last bytes read are lost)
        self._queue.put_nowait(ev.PbxLinkLost(at=self.clock(), since=self.last_data_wall or None))
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    # -- internals ---------------------------------------------------------------
    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        self._booted.clear()
        self._held, self._held_dropped, self._held_dropped_since = [], 0, 0.0
        self.cut_since = None
        self._lost = loop.create_future()
        self.framing = self._new_guard()  # a new stream: a cut never spans connections
        _, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: GuardedProtocol(self), self.host, self.port), self.connect_timeout)
        self._protocol = protocol
        reply = await self._send({"Action": "Login", "Username": self._username, "Secret": self._secret,
                                  "Events": "on"}, call_id="", check=False)
        if header(reply, "Response") != "Success":
            raise AmiLoginFailed(f"AMI login refused for user {self._username!r}: {header(reply, 'Message')}")
        self.version = protocol.version
        await self._filter_events()
        try:
            await asyncio.wait_for(asyncio.shield(self._booted.wait()), self.boot_timeout)
        except TimeoutError:
            log.warning("AMI: no FullyBooted within %.1fs; going on", self.boot_timeout)
        await self._learn_boot()
        if self._lost.done():
            raise PbxDisconnected("AMI connection lost during login")
        self.connects += 1
        self._ready.set()
        log.info("AMI connected to %s:%s (Asterisk Call Manager %s, connect #%d)", self.host, self.port,
                 self.version, self.connects)
        await self._resync()
        while not self._lost.done():
            done, _ = await asyncio.wait({self._lost}, timeout=self.ping_interval)
            if not done:
                sent_at = time.monotonic()
                try:
                    await self._send({"Action": "Ping"}, call_id="")
                except PbxDisconnected as exc:
                    log.warning("AMI ping failed (%s); reconnecting", exc)
                    break
                except AmiActionError as exc:
                    if self.last_data_at > sent_at:  # slow, not dead: a reconnect + resync of every
                        log.warning("AMI ping slow (%s) but Asterisk is sending; keeping the link", exc)
                        continue  # live channel would only add load to a busy PBX
                    log.warning("AMI ping failed (%s); reconnecting", exc)
                    break

    async def _filter_events(self) -> None:
        """Ask Asterisk to send only the events the normalizer uses (``actions.EVENT_FILTERS``).

        A busy PBX sends dozens of events per call that the recorder ignores (Newexten for every
        dialplan step, VarSet for every variable, RTCP, DTMF, AGIExec...); parsing them took most
        of the daemon's loop under load.  If Asterisk refuses (no ``system`` write class), all
        events keep coming and the normalizer ignores the extra ones, as before."""
        for regex in actions.EVENT_FILTERS:
            try:
                await self._send(actions.event_filter(regex), call_id="",
                                 timeout=min(self.action_timeout, 5.0))
            except (AmiActionError, PbxDisconnected) as exc:
                log.warning("AMI event filter not set (%s): every event will be read", exc)
                return

    async def _learn_boot(self) -> None:
        """CoreStatus -> the PBX's start time, part of every call id (linkedids restart with
        Asterisk).  Events that arrived since login were held; they are normalized after it."""
        try:
            boot = await self._ask_boot()
            self.asterisk_version = await self._ask_version()
        finally:
            held, self._held = self._held or [], None
        if boot:
            if self.normalizer.set_boot(boot):
                log.warning("AMI: the PBX restarted (started %s); calls of its previous run are over", boot)
            self._queue.put_nowait(ev.PbxBooted(at=self.clock(), boot=boot, version=self.asterisk_version))
        for message, at in held:
            self._normalize(message, at)
        if self._held_dropped:
            self._held_dropped = 0
            self.lost_events(f"more than {HOLD_MAX} events while connecting", since=self._held_dropped_since)

    async def _ask_boot(self) -> str:
        try:
            reply = await self._send({"Action": "CoreStatus"}, call_id="",
                                     timeout=min(self.action_timeout, 5.0))
            return boot_tag(header(reply, "CoreStartupDate"), header(reply, "CoreStartupTime"))
        except (AmiActionError, PbxDisconnected) as exc:
            log.warning("AMI CoreStatus failed (%s): call ids without the PBX start time", exc)
            return ""

    async def _ask_version(self) -> str:
        """Asterisk's version: which MixMonitor a ``MixMonitorMute`` without an ID mutes
        (pbx_recorder/core/mixmonitor_order.py); "" when not known."""
        try:
            reply = await self._send({"Action": "CoreSettings"}, call_id="",
                                     timeout=min(self.action_timeout, 5.0))
            return header(reply, "AsteriskVersion")[:80]
        except (AmiActionError, PbxDisconnected) as exc:
            log.warning("AMI CoreSettings failed (%s): the Asterisk version is not known", exc)
            return ""

    async def _confirm_hangup(self, item: ev.ChannelHungUp) -> list[Any]:
        """[item], or [] when Asterisk still has a live channel with that Uniqueid (a forged Hangup).

        Asterisk 16 unlinks a channel before it publishes its Hangup, so ``Getvar`` by Uniqueid
        (ast_channel_get_by_name falls back to the uniqueid) answers "No such channel" for a
        genuine one (measured).  No answer (disconnect, timeout) counts as genuine."""
        try:
            reply = await self._send(actions.getvar(item.channel_id, "UNIQUEID", call_id=item.call_id),
                                     call_id=item.call_id, check=False,
                                     timeout=min(self.action_timeout, 5.0))
        except (AmiActionError, PbxDisconnected, OSError, RuntimeError) as exc:
            log.debug("Hangup of %s not confirmed (%s); taken as genuine (call %s)", item.channel_id, exc,
                      item.call_id)
            self._channel_gone(item)
            return [item]
        if header(reply, "Response") == "Success" and header(reply, "Value") == item.channel_id:
            self.hangups_refuted += 1
            log.warning("AMI framing injection: Hangup for channel %s (uniqueid %s, call %s) but Asterisk "
                        "still has that channel; forged event dropped", item.channel[:80], item.channel_id,
                        item.call_id)
            return []
        self._channel_gone(item)
        return [item]

    def _channel_gone(self, item: ev.ChannelHungUp) -> None:
        """A genuine Hangup: the MixMonitors on that channel ended with it."""
        ended = self._mmids.end_channel(item.channel, item.channel_id)
        if ended:
            log.debug("MixMonitorIDs of %s forgotten at its hang-up (call %s)", ",".join(ended),
                      item.call_id)

    async def _resync(self) -> None:
        async with self._resync_lock:  # the connect's resync and one asked by the framing guard
            self.resync_pacer.covered()  # asks before now are served by this one
            await self._resync_now()

    async def _resync_now(self) -> None:
        self._seen_in_resync = set()
        lost_before = self.events_lost  # a loss while the list is read: the core's view stays partial
        known = self._mmids.ids()  # recordings started before the list was asked for
        try:
            reply = await self._send(actions.core_show_channels(), call_id="")
        except (AmiActionError, PbxDisconnected) as exc:
            log.warning("AMI resync: CoreShowChannels failed: %s", exc)
            self._seen_in_resync = None
            self.resync_pacer.ask()  # not done: asked again (paced; a reconnect's resync covers it)
            return
        items = reply if isinstance(reply, list) else [reply]
        live: list[ev.LiveChannel] = []
        for message in items:
            if message.get("Event") == "CoreShowChannel":
                live.extend(e for e in self.normalizer.normalize(message, self.clock())
                            if isinstance(e, ev.LiveChannel))
        if list_complete(items):  # a channel missing from a cut list may still be recording
            names = {c.channel for c in live} | {c.channel_id for c in live}
            gone = self._mmids.prune(names, known)
            if gone:
                log.info("AMI resync: %d recording(s) ended while the link was down; their "
                         "MixMonitorIDs forgotten", len(gone))
        results = await asyncio.gather(*(self._variables(ch) for ch in live))
        for channel, variables in zip(live, results, strict=True):
            self._queue.put_nowait(dataclasses.replace(channel, variables=variables))
        # a call whose events arrived while the list was being built is live too (it began meanwhile)
        seen, self._seen_in_resync = self._seen_in_resync or set(), None
        self._queue.put_nowait(ev.ResyncCompleted(at=self.clock(),
                                                  live_call_ids=frozenset(c.call_id for c in live) | seen,
                                                  complete=self.events_lost == lost_before))
        log.info("AMI resync: %d live channel(s) in %d call(s)", len(live), len({c.call_id for c in live}))

    async def _variables(self, channel: ev.LiveChannel) -> dict[str, str]:
        found: dict[str, str] = {}
        for name in self.resync_variables:
            try:
                reply = await self._send(actions.getvar(channel.channel, name, call_id=channel.call_id),
                                         call_id=channel.call_id)
            except (AmiActionError, PbxDisconnected) as exc:
                log.debug("Getvar %s failed (call %s): %s", name, channel.call_id, exc)
                continue
            value = header(reply, "Value")
            if value:
                found[name] = value
        return found

    async def _send(self, headers: dict[str, str], *, call_id: str, timeout: float | None = None,
                    check: bool = True) -> Any:
        protocol = self._protocol
        name = headers.get("Action", "?")
        if protocol is None or protocol.closed or (self._lost is not None and self._lost.done()):
            raise PbxDisconnected(f"AMI not connected: {name} not sent", call_id=call_id)
        action = pactions.Action(dict(headers))
        self._pending[action.id] = action
        try:
            # as_list=None lets panoramisk detect lists (EventList: start); False would cut them short
            future = protocol.send(action, as_list=True if name == "CoreShowChannels" else None)
            # (not wait_for: on Python 3.11 it returns a reply that came in together with a
            # cancellation of the caller and drops the cancellation, so a stopped task ran on)
            async with asyncio.timeout(timeout or self.action_timeout):
                reply = await asyncio.shield(future)
        except PbxDisconnected as exc:
            raise PbxDisconnected(str(exc), call_id=call_id) from exc
        except TimeoutError as exc:
            protocol.responses.pop(action.id, None)
            raise AmiActionError(f"{name}: no reply within {timeout or self.action_timeout}s",
                                 action=name, call_id=call_id) from exc
        finally:
            self._pending.pop(action.id, None)
        first = reply[0] if isinstance(reply, list) and reply else reply
        if check and header(first, "Response") in ("Error", "Fail", "Failure"):
            raise AmiActionError(f"{name} refused by Asterisk: {header(first, 'Message')}", action=name,
                                 call_id=call_id)
        return reply

    def _fail_pending(self, why: str) -> None:
        victims = list(self._pending.values()) + list(self.awaiting_actions)
        self.awaiting_actions.clear()
        for action in victims:
            if not action.future.done():
                action.future.set_exception(PbxDisconnected(f"{why}: {action.get('Action')} not answered"))
                action.future.exception()  # retrieved here: the waiter gets it through its shield

    def _drop(self, why: str) -> None:
        self._ready.clear()
        protocol, self._protocol = self._protocol, None
        if protocol is not None and not protocol.closed:
            protocol.close()
        self._fail_pending(why)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
