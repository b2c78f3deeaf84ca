"""The recorder daemon: one asyncio loop, a TaskGroup of referenced tasks.

    AMI events --pump--> CallBook.handle --> commands --executor--> AMI actions
                                                                 -> pipeline (closure wait + spool)
                                                                 -> catalog rows
    1 s tick  --------> CallBook.tick    --> commands (same executor)
    FastAGI session (a coroutine on the same loop) -> consent_requested / consent_resolved; the
        commands for the session's own channel (MixMonitor, channel variables) go out on its
        AGI socket (in band), the rest as AMI actions
    live-call writer task: snapshots -> catalog.live_calls, off the loop, coalesced per call
    shipper task: spool -> storage tier -> catalog

Live calls are snapshotted into the catalog's ``live_calls`` after every change and restored
at start (then resynchronized from AMI), so a restarted or SIGKILLed daemon neither records a
call twice nor forgets one.  SIGTERM/SIGINT: new AGI sessions are refused (the snippet's fail
direction), in-flight consent sessions, spooling and shipping get ``shutdown_grace_s``, a
summary is logged, :meth:`Daemon.run` returns normally (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ami.actions import is_pbx_command
from consent.agi_async import AsyncAgiServer
from consent.async_session import InbandStarter
from consent.session_contract import ConsentTicket
from pbx_recorder import heartbeat
from pbx_recorder.app import App, hot_tiers
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import events as ev
from pbx_recorder.daemon_consent import LoopConsentBackend
from pbx_recorder.errors import AmiActionError, PbxDisconnected, RecorderError
from pbx_recorder.fault_recovery import FaultRecovery
from pbx_recorder.live_persistence import LiveCallPersistence
from pbx_recorder.metrics_sampler import MetricsSampler
from pbx_recorder.tier_probe import check_at_start

log = logging.getLogger(__name__)
ORPHAN_SCAN_BEATS = 60  # ticks between two scans of the monitor folder for orphaned files

SWITCH_INTERVAL_S = 0.001
STALE_UPLOAD_S = 6 * 3600.0  #: a multipart upload older than this is nobody's any more
UPLOAD_SWEEP_S = 3600.0  #: how often the running daemon aborts such uploads
#: events about the PBX link that may make the core stop trusting live calls' MixMonitor counts:
#: those calls' snapshots are written again, since ``calls pause`` and the console decide on them
#: (only those that changed: a caller who makes the framing guard drop blocks again and again
#: must not make the daemon copy every live call each time)
LINK_EVENTS = (ev.PbxLinkLost, ev.PbxEventsLost)


@dataclass
class Summary:
    events: int = 0
    commands: int = 0
    command_errors: int = 0
    finalized: int = 0
    discarded: int = 0
    unfinished_jobs: int = 0
    restored_calls: int = 0

    def line(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.__dict__.items())


class Daemon(LiveCallPersistence):
    def __init__(
        self,
        app: App,
        *,
        tick_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        install_signals: bool = True,
        metrics_every_s: float = 5.0,
    ) -> None:
        self.app = app
        self.tick_s = tick_s
        self.clock = clock
        self.install_signals = install_signals
        self.summary = Summary()
        self.agi: AsyncAgiServer | Any = None  # or esl.wiring.LoopOutboundServer (FreeSWITCH)
        self._dirty: dict[str, None] = {}  # call ids to snapshot at the next write (ordered set)
        self._live_pending: dict[str, str | None] = {}  # call_id -> snapshot text, None = delete
        self._call_rows: list[dict[str, Any]] = []
        self._write_wakeup = asyncio.Event()
        self._writer_closing = False
        self._stop = asyncio.Event()
        self._ship_stop = asyncio.Event()
        self._jobs: set[asyncio.Task[Any]] = set()
        self._saved: dict[str, str] = {}
        self._start_failed: set[str] = set()  # calls whose MixMonitor failed (outcome "failed")
        self.recovery = FaultRecovery(app, clock)  # orphaned files, late flags
        self.metrics = app.metrics
        self.metrics_every_s = metrics_every_s

    # -- lifecycle -----------------------------------------------------------------
    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stop requested: refusing new calls, finishing in-flight work")
            self._stop.set()

    async def run(self) -> Summary:
        loop = asyncio.get_running_loop()
        if self.install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        self._restore()
        recovered, incomplete = await asyncio.to_thread(self.app.spool.recover)
        if recovered or incomplete:
            log.info("spool recovery: %d repaired, %d need an operator", len(recovered), len(incomplete))
        await asyncio.to_thread(self._abort_stale_uploads)
        hot = set(hot_tiers(self.app.config, self.app.tiers))
        await asyncio.to_thread(check_at_start, self.app.tiers, hot)  # StorageRefused: do not start
        await self.recovery.recover_orphans()
        backend = LoopConsentBackend(self)
        self.agi = await self.app.start_consent_server(backend, backend.refused)
        freeswitch = self.app.config.pbx.type == "freeswitch"
        # Everything built so far (modules, config, app) lives as long as the process: keep it out
        # of the cyclic GC's full collections, which otherwise stall the loop the callers wait on.
        gc.freeze()
        # Worker threads (spooling, shipping) hold the GIL in 5 ms slices by default; the loop,
        # where callers wait for their recording to start, gets it back sooner with 1 ms.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        log.info(
            "pbx-recorder node %s: %s on %s:%s, %s %s:%s",
            self.app.node,
            "consent socket" if freeswitch else "AGI",
            *self.agi.server_address,
            "ESL" if freeswitch else "AMI",
            self.app.ami.host,
            self.app.ami.port,
        )
        try:
            self.metrics.start()
            async with asyncio.TaskGroup() as group:
                if self.metrics.enabled:
                    group.create_task(self._sample_metrics(), name="metrics")
                ami_task = group.create_task(self.app.ami.run(), name="ami-connection")
                pump = group.create_task(self._pump(), name="event-pump")
                ticker = group.create_task(self._ticker(), name="tick")
                shipper = group.create_task(self.app.shipper.run(self._ship_stop), name="shipper")
                writer = group.create_task(self._catalog_writer(), name="catalog-writer")
                group.create_task(self._watch_loop_lag(), name="loop-lag")
                group.create_task(heartbeat.run(self, self._stop), name="heartbeat")  # the health page
                group.create_task(self._sweep_uploads(), name="upload-sweep")
                await self._stop.wait()
                await self._shutdown(ami_task, pump, ticker, shipper)
                self._writer_closing = True
                self._write_wakeup.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(writer, 10.0)
        finally:
            sys.setswitchinterval(switch_interval)
            await asyncio.to_thread(self._write_batch, *self._take_pending())
            await asyncio.to_thread(self.metrics.stop)
            if self.agi is not None:
                await self.agi.close()
            if self.install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        self.summary.unfinished_jobs = len(self._jobs)
        log.info("pbx-recorder stopped: %s", self.summary.line())
        return self.summary

    async def _sweep_uploads(self) -> None:
        """Stale multipart uploads aborted every ``UPLOAD_SWEEP_S`` while the daemon runs (not only
        at start: a killed ``recordings migrate`` or ``catalog backup`` left its uploads billed
        until the daemon's next restart)."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), UPLOAD_SWEEP_S)
            if not self._stop.is_set():
                await asyncio.to_thread(self._abort_stale_uploads)

    def _abort_stale_uploads(self) -> None:
        """Multipart uploads that nobody will finish (a shipper, a migration or a catalog backup
        killed mid-upload) are aborted once older than ``STALE_UPLOAD_S``, on one node as on many:
        the lifecycle commands upload beside the daemon (a catalog backup of 42 GB takes minutes
        to an hour), so a younger upload may be one in progress; at start it aborted every upload
        of a single node, a running backup's included."""
        older_than_s = STALE_UPLOAD_S
        for name, tier in self.app.tiers.items():
            abort = getattr(tier, "abort_stale_uploads", None)
            if abort is None:
                continue
            try:
                aborted = abort(older_than_s)
            except RecorderError as exc:
                log.warning("tier %s: could not list stale multipart uploads: %s", name, exc)
                continue
            if aborted:
                log.info("tier %s: aborted %d stale multipart uploads", name, aborted)

    async def _shutdown(
        self,
        ami_task: asyncio.Task[Any],
        pump: asyncio.Task[Any],
        ticker: asyncio.Task[Any],
        shipper: asyncio.Task[Any],
    ) -> None:
        deadline = time.monotonic() + self.app.shutdown_grace_s
        assert self.agi is not None
        self.agi.stop_accepting()
        await self.agi.wait_idle(max(0.0, deadline - time.monotonic()) / 2)
        await self.app.ami.close()
        ticker.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pump), 2.0)
        pump.cancel()
        if self._jobs:
            log.info("waiting for %d spool job(s)", len(self._jobs))
            await asyncio.wait(set(self._jobs), timeout=max(0.1, deadline - time.monotonic()))
        remaining = deadline - time.monotonic()
        if remaining > 0:  # one last shipping pass within the bound
            with contextlib.suppress(TimeoutError, RecorderError, OSError):
                await asyncio.wait_for(asyncio.to_thread(self.app.shipper.ship_once), remaining)
        for job in list(self._jobs):
            job.cancel()
        self._ship_stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ami_task), 2.0)
        ami_task.cancel()

    async def _watch_loop_lag(self, every_s: float = 0.1, report_s: float = 30.0) -> None:
        """Log how late the loop runs a 100 ms timer (p99 and max per ``report_s``): the time a
        FastAGI session or an AMI reply can wait behind other work (instrumentation for issue 10)."""
        lags: list[tuple[float, float]] = []  # (lag, CPU the process used meanwhile)
        last_report = time.monotonic()
        while not self._stop.is_set():
            before, cpu_before = time.monotonic(), time.process_time()
            await asyncio.sleep(every_s)
            now = time.monotonic()
            lags.append((max(0.0, now - before - every_s), time.process_time() - cpu_before))
            if now - last_report >= report_s:
                lags.sort()
                worst, worst_cpu = lags[-1]
                # a long lag with little CPU of ours: the host did not schedule us (starved), not blocked
                log.info("event loop lag over %.0f s: p50 %.1f ms, p99 %.1f ms, max %.1f ms (the process "
                         "used %.1f ms CPU meanwhile) (%d samples)", now - last_report,
                         1000 * lags[len(lags) // 2][0], 1000 * lags[int(len(lags) * 0.99)][0],
                         1000 * worst, 1000 * worst_cpu, len(lags))
                lags, last_report = [], now

    async def _sample_metrics(self) -> None:
        app = self.app
        tiers = hot_tiers(app.config, app.tiers)
        sampler = MetricsSampler(self.metrics, ami=app.ami, callbook=app.callbook, spool=app.spool,
                                 hot_tiers=tiers, clock=self.clock)
        while not self._stop.is_set():
            try:
                sampler.sample_loop_state()
                await asyncio.to_thread(sampler.sample_storage)
            except Exception:  # metrics must never stop the recorder
                log.exception("metrics sampling failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.metrics_every_s)

    # -- events and commands ---------------------------------------------------------
    async def _pump(self) -> None:
        async for event in self.app.ami.events():
            await self.handle(event)
            # Most events need no AMI action, so handle() returns without ever yielding: a burst of
            # hundreds of queued events would run as one callback and hold back the FastAGI
            # sessions (the callers waiting for their recording to start).  Yield after each one.
            await asyncio.sleep(0)

    async def _ticker(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self.tick_s)
            beats += 1
            try:
                now = self.clock()
                commands = self.app.callbook.tick(now)
                await self.execute(commands, origin_at=now)
                self._persist(c.call_id for c in commands)
                self.recovery.apply_flag_patches()
                if self.app.pipeline.deferred:  # each one when its back-off is over
                    await self.app.pipeline.retry_deferred()
                if beats % ORPHAN_SCAN_BEATS == 0:
                    await self.recovery.recover_orphans()
            except Exception:
                log.exception("tick failed")

    async def handle(self, event: Any, inband: InbandStarter | None = None) -> list[cmds.Command]:
        """One event through the core and out as commands; never raises."""
        self.summary.events += 1
        call_id = getattr(event, "call_id", "")
        try:
            commands = self.app.callbook.handle(event, self.clock())
            await self.execute(commands, origin_at=getattr(event, "at", None), inband=inband)
        except Exception:
            log.exception("event %s failed call=%s", type(event).__name__, call_id or "-")
            return []
        if call_id:
            self._persist([call_id, *(c.call_id for c in commands)])
        elif isinstance(event, LINK_EVENTS):  # calls whose MixMonitor count is no longer trusted
            self._persist([*self.app.callbook.take_count_untrusted(), *(c.call_id for c in commands)])
        elif commands:
            self._persist(c.call_id for c in commands)
        return commands

    async def consent_resolved(self, event: ev.ConsentResolved, inband: InbandStarter | None = None) -> bool:
        """Like :meth:`handle`; False when a recording the decision started could not start
        (the consent session then leaves the snippet to its fail direction)."""
        self.summary.events += 1
        try:
            commands = self.app.callbook.handle(event, self.clock())
            ok = await self.execute(commands, origin_at=event.at, inband=inband)
        except Exception:
            log.exception("consent result failed call=%s", event.call_id)
            return False
        self._persist([event.call_id, *(c.call_id for c in commands)])
        return ok

    async def consent_requested(self, event: ev.ConsentRequested,
                                inband: InbandStarter | None = None) -> ConsentTicket:
        commands = self.app.callbook.handle(event, self.clock())
        ok = await self.execute(commands, origin_at=event.at, inband=inband)
        self._persist([event.call_id])
        self.summary.events += 1
        if not self.app.callbook.owns_consent(event.call_id, event.channel):  # the core ignored it:
            log.info("consent request from another channel of call=%s: norecord, the caller's own "
                     "dialogue decides", event.call_id)  # no dialogue here (its outcome is ignored)
            return ConsentTicket(None, recording_ok=ok)
        return ConsentTicket(self.app.callbook.decision(event.call_id), recording_ok=ok)

    async def execute(self, commands: Iterable[cmds.Command], origin_at: float | None = None,
                      inband: InbandStarter | None = None) -> bool:
        """Carry out commands in order; False if any StartRecording failed.  Failures are contained.
        ``origin_at``: when the event behind them arrived (MixMonitor start lag metric).
        ``inband``: a FastAGI session whose own channel's commands go out on its AGI socket."""
        all_started = True
        for command in commands:
            self.summary.commands += 1
            failed: cmds.StartRecording | None = None
            mute_failed: cmds.MuteRecording | None = None
            reason = ""
            try:
                if is_pbx_command(command):
                    runner = inband if inband is not None and inband.takes(command) else self.app.ami
                    produced_events = await runner.execute(command)
                    if isinstance(command, cmds.StartRecording) and origin_at is not None:
                        self.metrics.mixmonitor_started(self.clock() - origin_at)
                    for produced in produced_events:
                        await self.handle(produced)
                elif isinstance(command, cmds.FinalizeRecording):
                    self._spawn(self._finalize(command), command)
                elif isinstance(command, cmds.DiscardRecording):
                    self._spawn(self._discard(command), command)
                elif isinstance(command, cmds.UpsertCall):
                    self._call_rows.append(dict(command.row))  # Catalog.upsert_call, off the loop
                    self._write_wakeup.set()
                elif isinstance(command, cmds.FlagRecordings):
                    self.recovery.add_flags(command)
                else:
                    log.warning("no executor for %s call=%s", type(command).__name__, command.call_id)
            except Exception as exc:
                self.summary.command_errors += 1
                self.metrics.action_failed(type(command).__name__)
                if isinstance(command, cmds.StartRecording):
                    all_started = False
                    failed = command
                    reason = start_failure_reason(exc)
                    self._start_failed.add(command.call_id)
                if isinstance(command, cmds.MuteRecording):
                    mute_failed = command
                rid = getattr(command, "recording_id", "-")
                if isinstance(exc, RecorderError):
                    log.error(
                        "%s failed call=%s rec=%s: %s", type(command).__name__, command.call_id, rid, exc
                    )
                else:
                    log.exception("%s failed call=%s rec=%s", type(command).__name__, command.call_id, rid)
            if failed is not None:  # tell the core the recording never ran (and why): not "missing"
                await self.handle(
                    ev.RecordingFailed(
                        at=self.clock(),
                        call_id=failed.call_id,
                        channel_id=self.app.normalizer.uniqueid_of(failed.channel),
                        channel=failed.channel,
                        recording_id=failed.recording_id,
                        reason=reason,
                    )
                )
            if mute_failed is not None:  # a pause the core counts on (a transfer's segment) did not happen
                await self.handle(ev.RecordingMuteFailed(
                    at=self.clock(), call_id=mute_failed.call_id,
                    channel_id=self.app.normalizer.uniqueid_of(mute_failed.channel),
                    channel=mute_failed.channel, muted=mute_failed.muted))
        return all_started

    def _spawn(self, coro: Any, command: cmds.Command) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"job-{command.call_id}")
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def _finalize(self, command: cmds.FinalizeRecording) -> None:
        if await self.app.pipeline.finalize(command) is not None:
            self.summary.finalized += 1

    async def _discard(self, command: cmds.DiscardRecording) -> None:
        await self.app.pipeline.discard(command)
        self.summary.discarded += 1


def start_failure_reason(exc: BaseException) -> str:
    """Why a MixMonitor did not start, as the catalog says it."""
    if isinstance(exc, PbxDisconnected):
        return "ami_unavailable"
    if isinstance(exc, AmiActionError):
        return "ami_timeout" if "no reply" in str(exc) else "pbx_refused"
    return "start_failed"


def run_daemon(app: App) -> Summary:
    return asyncio.run(Daemon(app).run())
