"""The recorder daemon: one asyncio loop, a TaskGroup of referenced tasks.

    AMI events --pump--> CallBook.handle --> commands --executor--> AMI actions
                                                                 -> pipeline (closure wait + spool)
                                                                 -> catalog rows
    1 s tick  --------> CallBook.tick    --> commands (same executor)
    AGI thread (FastAGI consent) --run_coroutine_threadsafe--> consent_requested / consent_resolved
    shipper task: spool -> storage tier -> catalog

Live calls are snapshotted into the catalog's ``live_calls`` after every change (written off the
loop in batches: pbx_recorder/live_state.py) and restored
at start (then resynchronized from AMI), so a restarted or SIGKILLed daemon neither records a
call twice nor forgets one.  SIGTERM/SIGINT: new AGI sessions are refused (the snippet's fail
direction), in-flight consent sessions, spooling and shipping get ``shutdown_grace_s``, a
summary is logged, :meth:`Daemon.run` returns normally (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ami.actions import is_pbx_command
from consent.agi_server import AgiServer, ConsentTicket
from pbx_recorder import commands as cmds
from pbx_recorder import events as ev
from pbx_recorder.app import App, hot_tiers
from pbx_recorder.constants import STATE_FINALIZED
from pbx_recorder.errors import AmiActionError, PbxDisconnected, RecorderError
from pbx_recorder.fault_recovery import FaultRecovery
from pbx_recorder.live_state import LiveStateWriter
from pbx_recorder.loop_lag import LoopLagMonitor
from pbx_recorder.metrics import call_outcome
from pbx_recorder.metrics_sampler import MetricsSampler
from pbx_recorder.tier_probe import check_at_start

log = logging.getLogger(__name__)
SNAPSHOT_DELAY_S = 0.05  # a live call's snapshot waits this long for the call's next changes
ORPHAN_SCAN_BEATS = 60  # ticks between two scans of the monitor folder for orphaned files


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


class LoopConsentBackend:
    """The AGI threads' way into the daemon loop (bounded waits: a stuck loop fails the call closed)."""

    def __init__(self, daemon: Daemon, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.daemon, self.loop, self.timeout_s = daemon, loop, timeout_s

    def request(self, event: ev.ConsentRequested) -> ConsentTicket:
        future = asyncio.run_coroutine_threadsafe(self.daemon.consent_requested(event), self.loop)
        return future.result(self.timeout_s)

    def resolve(self, event: ev.ConsentResolved) -> bool:
        future = asyncio.run_coroutine_threadsafe(self.daemon.consent_resolved(event), self.loop)
        return future.result(self.timeout_s)


class Daemon:
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
        self.agi: AgiServer | None = None
        self._stop = asyncio.Event()
        self._ship_stop = asyncio.Event()
        self._jobs: set[asyncio.Task[Any]] = set()
        self._saved: dict[str, str] = {}
        self._start_failed: set[str] = set()  # calls whose MixMonitor failed (outcome "failed")
        self.recovery = FaultRecovery(app, clock)  # orphaned files, late flags
        self.metrics = app.metrics
        self.metrics_every_s = metrics_every_s
        self.loop_lag = LoopLagMonitor()  # logs the loop's lag when it exceeds 20 ms
        self.live = LiveStateWriter(app.catalog)  # live_calls written off the loop, batched
        self._dirty: set[str] = set()  # live calls changed since their last snapshot
        self._snap_timer: asyncio.TimerHandle | None = None

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
        self.agi = self.app.make_agi_server(LoopConsentBackend(self, loop, self.app.consent_wait_s))
        self.agi.start()
        freeswitch = self.app.config.pbx.type == "freeswitch"
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
                group.create_task(self.loop_lag.run(self._stop), name="loop-lag")
                ami_task = group.create_task(self.app.ami.run(), name="ami-connection")
                pump = group.create_task(self._pump(), name="event-pump")
                ticker = group.create_task(self._ticker(), name="tick")
                shipper = group.create_task(self.app.shipper.run(self._ship_stop), name="shipper")
                await self._stop.wait()
                await self._shutdown(ami_task, pump, ticker, shipper)
        finally:
            if self._snap_timer is not None:
                self._snap_timer.cancel()
            self._snapshot_dirty()
            await self.live.flush()
            await asyncio.to_thread(self.metrics.stop)
            if self.agi is not None:
                await asyncio.to_thread(self.agi.close)
            if self.install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        self.summary.unfinished_jobs = len(self._jobs)
        log.info("pbx-recorder stopped: %s", self.summary.line())
        return self.summary

    def _abort_stale_uploads(self) -> None:
        """A shipper killed mid-upload leaves multipart uploads behind: abort them.  A single
        node (no Redis) owns every upload under its prefix; with Redis, other nodes may be
        uploading right now, so only uploads older than an hour are aborted."""
        older_than_s = 3600.0 if self.app.config.redis.url else 0.0
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
        await asyncio.to_thread(self.agi.wait_idle, max(0.0, deadline - time.monotonic()) / 2)
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

    # -- restore / persist ---------------------------------------------------------
    def _restore(self) -> None:
        for call_id, snapshot in self.app.catalog.load_live_calls().items():
            try:
                self.app.callbook.restore(snapshot)
                self._saved[call_id] = json.dumps(snapshot, sort_keys=True)
                self.summary.restored_calls += 1
            except Exception:  # one bad snapshot must not stop the daemon
                log.exception("could not restore live call=%s", call_id)
        if self.summary.restored_calls:
            log.info("restored %d live call(s); resync from AMI follows", self.summary.restored_calls)

    def _persist(self, call_ids: Iterable[str]) -> None:
        """A call that ended is settled now; a live call is marked and snapshotted once per
        ``SNAPSHOT_DELAY_S`` however many events it had meanwhile (a snapshot per event was most
        of the loop's time at 50 concurrent call starts)."""
        book = self.app.callbook
        for call_id in dict.fromkeys(call_ids):
            try:
                state = book.state(call_id)
                if not state or state == STATE_FINALIZED:
                    self._dirty.discard(call_id)
                    was_live = self._saved.pop(call_id, None) is not None
                    if was_live or not state:
                        self.live.delete(call_id)
                    if was_live and state:
                        self._count_finished(call_id)
                    self._start_failed.discard(call_id)
                    continue
                self._saved.setdefault(call_id, "")  # live from now on (finished: counted, deleted)
                self._dirty.add(call_id)
            except Exception:
                log.exception("could not persist live call=%s", call_id)
        if self._dirty and self._snap_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._snapshot_dirty()
                return
            self._snap_timer = loop.call_later(SNAPSHOT_DELAY_S, self._snapshot_dirty)

    def _snapshot_dirty(self) -> None:
        self._snap_timer = None
        book, dirty, self._dirty = self.app.callbook, self._dirty, set()
        for call_id in dirty:
            try:
                state = book.state(call_id)
                if not state or state == STATE_FINALIZED:  # settled by _persist already
                    continue
                text = json.dumps(book.snapshot(call_id), sort_keys=True)
                if self._saved.get(call_id) != text:
                    self.live.save(call_id, text)
                    self._saved[call_id] = text
            except Exception:
                log.exception("could not persist live call=%s", call_id)

    def _count_finished(self, call_id: str) -> None:
        snapshot = self.app.callbook.snapshot(call_id)
        self.metrics.call_finished(call_outcome(snapshot, call_id in self._start_failed))
        if snapshot.get("consent_decision"):
            self.metrics.consent(str(snapshot["consent_decision"]))

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
            # a queue that has events returns them without yielding: without this, a burst of
            # PBX events ran back to back while consent sessions (the recording start) waited
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

    async def handle(self, event: Any) -> list[cmds.Command]:
        """One event through the core and out as commands; never raises."""
        self.summary.events += 1
        call_id = getattr(event, "call_id", "")
        try:
            commands = self.app.callbook.handle(event, self.clock())
            await self.execute(commands, origin_at=getattr(event, "at", None))
        except Exception:
            log.exception("event %s failed call=%s", type(event).__name__, call_id or "-")
            return []
        if call_id:
            self._persist([call_id, *(c.call_id for c in commands)])
        elif commands:
            self._persist(c.call_id for c in commands)
        return commands

    async def consent_resolved(self, event: ev.ConsentResolved) -> bool:
        """Like :meth:`handle`; False when a recording the decision started could not start
        (the AGI session then leaves the snippet to its fail direction)."""
        self.summary.events += 1
        try:
            commands = self.app.callbook.handle(event, self.clock())
            ok = await self.execute(commands, origin_at=event.at)
        except Exception:
            log.exception("consent result failed call=%s", event.call_id)
            return False
        self._persist([event.call_id, *(c.call_id for c in commands)])
        return ok

    async def consent_requested(self, event: ev.ConsentRequested) -> ConsentTicket:
        commands = self.app.callbook.handle(event, self.clock())
        ok = await self.execute(commands, origin_at=event.at)
        self._persist([event.call_id])
        self.summary.events += 1
        return ConsentTicket(self.app.callbook.decision(event.call_id), recording_ok=ok)

    async def execute(self, commands: Iterable[cmds.Command], origin_at: float | None = None) -> bool:
        """Carry out commands in order; False if any StartRecording failed.  Failures are contained.
        ``origin_at``: when the event behind them arrived (MixMonitor start lag metric)."""
        all_started = True
        for command in commands:
            self.summary.commands += 1
            failed: cmds.StartRecording | None = None
            reason = ""
            try:
                if is_pbx_command(command):
                    produced_events = await self.app.ami.execute(command)
                    if isinstance(command, cmds.StartRecording) and origin_at is not None:
                        self.metrics.mixmonitor_started(self.clock() - origin_at)
                    for produced in produced_events:
                        await self.handle(produced)
                elif isinstance(command, cmds.FinalizeRecording):
                    self._spawn(self._finalize(command), command)
                elif isinstance(command, cmds.DiscardRecording):
                    self._spawn(self._discard(command), command)
                elif isinstance(command, cmds.UpsertCall):
                    self.app.catalog.upsert_call(command.row)
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
