"""The recorder's ESL client: the inbound connection (esl/connection.py) plus what the daemon
needs of FreeSWITCH.

* PBX commands (:meth:`EslClient.execute`): ``uuid_record`` and friends, as ``bgapi`` (see
  ``run_line``), or on the call's own consent socket while it holds one (``route_via``);
  channel variables batched into one ``uuid_setvar_multi`` per channel;
* recordings the dialplan starts at answer (esl/early_start.py): their ``RECORD_START`` is
  adopted as RecordingStarted (``expect_start``);
* after every (re)connect a resync: ``show channels as json`` -> one ``LiveChannel`` per
  channel with its PBXREC_* variables (``uuid_getvar`` through bgapi, in parallel), then
  ``ResyncCompleted``; calls whose events arrived meanwhile count as live;
* RECORD_STOP of a file we (or a previous run) started under ``monitor_dir``: the
  ``<file>.closed`` marker is written, which tells the pipeline the file is complete;
* the files of each recording are known until it ends (its stop, its channel's hang-up, or a
  resync without its channel: pbx_recorder/core/recording_refs.py), so the table stays bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from consent.dialogue_runner import ChannelGone
from esl import commands as esc
from esl.connection import EslConnection
from esl.frames import EslEvent
from esl.normalize import EslNormalizer, live_channel
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import constants as C
from pbx_recorder.core import events as ev
from pbx_recorder.core.recording_refs import RecordingRefs
from pbx_recorder.errors import EslError, PbxDisconnected
from pbx_recorder.recording.closure import marker_path

log = logging.getLogger(__name__)

RESYNC_VARIABLES = (C.VAR_RESULT, C.VAR_RECORDING_ID, C.VAR_RECORDING_PATH, C.VAR_CALL_ID)
UNDEF = "_undef_"
MAX_EXPECTED = 4096  # recordings handed to the dialplan whose RECORD_START has not come yet
RESYNC_CONCURRENCY = 16  # channels whose variables are read at once after a (re)connect


def _not_recording(exc: EslError) -> bool:
    """FreeSWITCH's answer to a stop of a file it is not recording, or on a channel that is gone."""
    text = str(exc).lower()
    return "cannot stop record session" in text or "cannot locate session" in text


class NoFramingCuts:
    """metrics_sampler reads ``client.framing.cuts`` (AMI's framing guard); ESL framing is
    length-prefixed, so a caller's bytes can never cut a frame short: always 0."""

    cuts = 0


class EslClient(EslConnection):
    def __init__(
        self,
        *,
        host: str,
        port: int,
        password: str,
        normalizer: EslNormalizer,
        monitor_dir: str = "",
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        api_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        ping_interval: float = 20.0,
        events: Iterable[str] = esc.EVENTS,
        resync: bool = True,
        background: bool = True,
        clock: Callable[[], float] = time.time,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(host=host, port=port, password=password, backoff_min=backoff_min,
                         backoff_max=backoff_max, api_timeout=api_timeout, connect_timeout=connect_timeout,
                         ping_interval=ping_interval, events=events, background=background, clock=clock,
                         rnd=rnd)
        self.normalizer = normalizer
        self.monitor_dir = monitor_dir.rstrip("/")
        self.resync = resync
        self._rec_paths: RecordingRefs[tuple[str, ...]] = RecordingRefs(what="recording files")
        self._expected: dict[str, cmds.StartRecording] = {}  # path -> started by the dialplan at answer
        self._seen_in_resync: set[str] | None = None
        self._resync_slots = asyncio.Semaphore(RESYNC_CONCURRENCY)
        self._vars: dict[str, tuple[dict[str, str], str]] = {}  # channel -> (name -> value, call id)
        self._flush_due = False  # a flush task is scheduled and has not taken its batch yet
        self._flushers: set[asyncio.Task[None]] = set()
        self.framing = NoFramingCuts()
        self.hangups_refuted = 0  # AMI needs to refute forged Hangups; ESL framing cannot be forged
        self._direct: dict[str, Callable[[str], Awaitable[str]]] = {}  # channel -> its session's api

    # -- PBX commands ---------------------------------------------------------------
    def route_via(self, channel: str, api: Callable[[str], Awaitable[str]]) -> None:
        """While a call's consent session holds its outbound socket, that call's PBX commands go
        out there (``api`` on the session's socket, see OutboundChannel.api): no wait behind the
        inbound connection's event stream and the other calls' commands."""
        self._direct[channel] = api

    def unroute(self, channel: str) -> None:
        self._direct.pop(channel, None)

    async def _run_for(self, channel: str, line: str, call_id: str) -> str:
        direct = self._direct.get(channel)
        if direct is not None and line.startswith("api "):
            try:
                return await direct(line)
            except ChannelGone:  # the session's socket closed: the inbound connection still works
                self._direct.pop(channel, None)
        return await self.run_line(line, call_id=call_id)

    async def execute(self, command: cmds.Command) -> list[Any]:
        """Carry out a PBX command; RecordingStarted (pbx_ref = the file) after a start,
        RecordingMuted after a mask or unmask (FreeSWITCH sends no event for them: without it the
        core's own unmask of a pause over ``pbx.pause_max_s`` would leave the pause open in the
        manifest while the file records again)."""
        if isinstance(command, cmds.StartRecording):
            written = tuple(p for p, _ in esc.recorded_paths(command))
            for line in esc.api_lines(command):
                await self._run_for(command.channel, line, command.call_id)
            self._rec_paths.add(command.recording_id, command.call_id, (command.channel,), written)
            root = self.normalizer.root_of({"Unique-ID": command.channel})
            self._queue_var(cmds.SetChannelVar(command.call_id, command.channel, C.VAR_CALL_ID, root))
            return [
                ev.RecordingStarted(
                    at=self.clock(),
                    call_id=command.call_id,
                    channel_id=command.channel,
                    channel=command.channel,
                    recording_id=command.recording_id,
                    pbx_ref=command.path,
                )
            ]
        if isinstance(command, cmds.SetChannelVar):
            self._queue_var(command)
            return []
        if isinstance(command, cmds.StopRecording):
            await self._stop(command)
            return []
        paths: tuple[str, ...] = ()
        if isinstance(command, cmds.MuteRecording):
            paths = self._paths_of(command)
        for line in esc.api_lines(command, paths):
            await self._run_for(command.channel, line, command.call_id)
        if isinstance(command, cmds.MuteRecording):
            return [ev.RecordingMuted(at=self.clock(), call_id=command.call_id, channel_id=command.channel,
                                      channel=command.channel, muted=command.muted, exact=True)]
        return []

    async def _stop(self, command: cmds.StopRecording) -> None:
        """``uuid_record <uuid> stop <path>`` for each file of exactly this recording, never
        ``stop all`` (it would stop every recording of the channel, an admin's own too); no file
        known: nothing is sent, and why is logged.  FreeSWITCH's ``-ERR Cannot stop record
        session!`` (or a channel already gone) for a recording whose start it never confirmed
        (handed to the dialplan, not started) is the expected answer; for any other it is an error."""
        paths = self._paths_of(command)
        if not paths:
            log.warning("uuid_record stop not sent call=%s rec=%s: none of its files is known",
                        command.call_id, command.recording_id or "-")
            return
        failed: EslError | None = None
        for line in esc.api_lines(command, paths):  # every file is tried: one refusal stops no other
            try:
                await self._run_for(command.channel, line, command.call_id)
            except EslError as exc:
                if command.pbx_started or not _not_recording(exc):
                    failed = failed or exc
                    continue
                log.info("recording not running, nothing to stop call=%s rec=%s (its start was never "
                         "confirmed): %s", command.call_id, command.recording_id, exc)
        if failed is not None:
            raise failed

    def expect_start(self, command: cmds.StartRecording) -> None:
        """The dialplan starts this recording at answer (esl/early_start.py): its ``RECORD_START``
        becomes RecordingStarted (adopted: no ``uuid_record`` from us), and its files are known
        for the stop and the PCI mask as if we had started it."""
        self._rec_paths.add(command.recording_id, command.call_id, (command.channel,),
                            tuple(p for p, _ in esc.recorded_paths(command)))
        self._expected[command.path] = command
        while len(self._expected) > MAX_EXPECTED:  # calls that were never answered: oldest first
            self._expected.pop(next(iter(self._expected)))

    def _expect_after_restart(self, channel: ev.LiveChannel) -> None:
        """A ringing channel whose recording was handed to the dialplan before a restart (its
        PBXREC_RECORDING_ID/PATH are set, FreeSWITCH starts it at answer): adopt its RECORD_START
        as if this run had handed it over (otherwise the recorded span would start at the
        decision, while the call still rang)."""
        path = channel.variables.get(C.VAR_RECORDING_PATH, "")
        rid = channel.variables.get(C.VAR_RECORDING_ID, "")
        if channel.state != "ring" or not rid or not self.monitor_dir \
                or not path.startswith(self.monitor_dir + "/"):
            return
        try:
            esc.check_path(path)
        except EslError:
            return
        self._expected[path] = cmds.StartRecording(channel.call_id, rid, channel.channel, path)

    def _adopt_start(self, event: Any) -> None:
        path = event.get("Record-File-Path")
        command = self._expected.get(path)
        if command is None or event.get("Unique-ID") != command.channel:
            return  # another channel's file of that name is not ours to adopt
        del self._expected[path]
        self._queue.put_nowait(ev.RecordingStarted(
            at=self.normalizer.at(event.headers, self.clock()), call_id=command.call_id,
            channel_id=command.channel, channel=command.channel, recording_id=command.recording_id,
            pbx_ref=command.path))

    def _queue_var(self, command: cmds.SetChannelVar) -> None:
        """Channel variables are batched: the ones the core emits together go out as ONE
        ``uuid_setvar_multi`` per channel at the next loop turn, and nobody waits for them.  The
        inbound connection is one FIFO that FreeSWITCH serves in order, so four ``uuid_setvar``
        per recording would delay the next call's ``uuid_record``.  Bad values raise here."""
        esc.uuid_setvar_multi(command.channel, {command.name: command.value}, command.call_id)  # checks
        pending = self._vars.setdefault(command.channel, ({}, command.call_id))[0]
        pending[command.name] = command.value
        if not self._flush_due:  # a flush in flight does not hold back the next call's variables
            self._flush_due = True
            task = asyncio.get_running_loop().create_task(self._flush_vars(), name="esl-setvars")
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)

    async def _flush_vars(self) -> None:
        await asyncio.sleep(0)  # let the commands of the same decision queue up first
        batch, self._vars, self._flush_due = self._vars, {}, False
        # concurrently: one bgapi waits for its BACKGROUND_JOB, and one after the other 50 calls'
        # variables took seconds (set after the short calls had ended: "No such channel")
        await asyncio.gather(*(self._set_vars(ch, v, cid) for ch, (v, cid) in batch.items()))

    async def _set_vars(self, channel: str, variables: dict[str, str], call_id: str) -> None:
        try:
            line = esc.uuid_setvar_multi(channel, variables, call_id)
            await self._run_for(channel, line, call_id)  # on the call's consent socket while it lasts
        except (EslError, PbxDisconnected) as exc:
            log.warning("channel variables %s not set call=%s: %s", ",".join(variables), call_id, exc)

    def _paths_of(self, command: cmds.StopRecording | cmds.MuteRecording) -> tuple[str, ...]:
        if isinstance(command, cmds.StopRecording):
            known = self._rec_paths.pop(command.recording_id) or ()
            if known or command.paths:  # the files this recording wrote (dual: all three)
                return known or command.paths
            return (command.pbx_ref,) if command.pbx_ref.startswith("/") else ()
        if command.paths:  # the core named the recordings' files (a restart empties the table below)
            return command.paths
        found = [p for ps in self._rec_paths.of_call(command.call_id) for p in ps]
        if not found:
            raise EslError(
                "no recording of this call is known to the ESL client (mask needs its path)",
                call_id=command.call_id,
            )
        return tuple(found)

    # -- events and resync (hooks of EslConnection) -------------------------------------
    async def _on_connected(self) -> None:
        if self.resync:
            await self._resync()

    def _on_event(self, event: EslEvent) -> None:
        if event.name == "RECORD_STOP":
            self._mark_closed(event.get("Record-File-Path"))
        elif event.name == "RECORD_START" and self._expected:
            self._adopt_start(event)
        try:
            for item in self.normalizer.normalize(event, self.clock()):
                if self._seen_in_resync is not None and isinstance(item, ev.CallEvent):
                    self._seen_in_resync.add(item.call_id)
                if isinstance(item, ev.ChannelHungUp):  # its recordings ended with it
                    self._rec_paths.end_channel(item.channel_id, item.channel)
                self._queue.put_nowait(item)
        except Exception:  # one bad event must not end the connection
            log.exception("ESL event %s could not be normalized", event.name[:40])

    def _mark_closed(self, path: str) -> None:
        """The file FreeSWITCH just closed is ours: write its closure marker."""
        try:
            esc.check_path(path)
        except EslError:
            return
        if not self.monitor_dir or not path.startswith(self.monitor_dir + "/"):
            return
        try:
            marker_path(path).touch()
        except OSError as exc:
            log.warning("could not write the closure marker of %s: %s", Path(path).name, exc)

    # -- resync ------------------------------------------------------------------
    async def _resync(self) -> None:
        self._seen_in_resync = set()
        known = self._rec_paths.ids()  # recordings started before the list was asked for
        try:
            body = await self.api(esc.show_channels_json())
            listing = json.loads(body or "{}") if body.startswith("{") else {}
            rows = listing.get("rows", [])
        except (EslError, PbxDisconnected, ValueError, AttributeError) as exc:
            log.warning("ESL resync: show channels failed: %s", exc)
            self._seen_in_resync = None
            return
        rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
        if body.startswith("{") and str(listing.get("row_count", len(rows))) == str(len(rows)):
            gone = self._rec_paths.prune({str(r.get("uuid", "")) for r in rows}, known)
            if gone:
                log.info("ESL resync: %d recording(s) ended while the link was down; their files "
                         "forgotten", len(gone))
        variables = await asyncio.gather(*(self._variables(str(r.get("uuid", ""))) for r in rows))
        live = [
            c
            for c in (
                live_channel(self.normalizer, r, v, self.clock())
                for r, v in zip(rows, variables, strict=True)
            )
            if c
        ]
        for channel in live:
            self._queue.put_nowait(channel)
            self._expect_after_restart(channel)
        seen, self._seen_in_resync = self._seen_in_resync or set(), None
        self._queue.put_nowait(
            ev.ResyncCompleted(at=self.clock(), live_call_ids=frozenset(c.call_id for c in live) | seen)
        )
        log.info("ESL resync: %d live channel(s) in %d call(s)", len(live), len({c.call_id for c in live}))

    async def _variables(self, leg: str) -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            esc.check_uuid(leg)
        except EslError:
            return found
        async with self._resync_slots:  # FreeSWITCH runs each bgapi in a thread of its own: bounded
            results = await asyncio.gather(
                *(self.bgapi("uuid_getvar", leg, name) for name in RESYNC_VARIABLES), return_exceptions=True
            )
        for name, value in zip(RESYNC_VARIABLES, results, strict=True):
            if (
                isinstance(value, str)
                and value.strip()
                and value.strip() != UNDEF
                and not value.startswith("-ERR")
            ):
                found[name] = value.strip()
        return found

