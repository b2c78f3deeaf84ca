"""The daemon's live-call persistence: every call whose state changed is snapshotted (a deep
copy, a slice at a time so a burst does not stall the loop) and written with the finished calls'
rows by one writer task in a worker thread, coalesced per call and batched (one fsync a batch, not
one an event).  At start the snapshots are restored, then resynchronized from the PBX.  Mixed
into :class:`pbx_recorder.daemon.Daemon`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from pbx_recorder.core.constants import STATE_FINALIZED
from pbx_recorder.metrics import call_outcome

if TYPE_CHECKING:
    from pbx_recorder.app import App

log = logging.getLogger("pbx_recorder.daemon")  # the daemon's log lines, as before the split

PERSIST_BATCH_S = 0.2  # live-call snapshots reach the catalog at most this much later (plus a write)
SNAPSHOT_SLICE = 16  # live-call snapshots per loop turn


class LiveCallPersistence:
    """Needs ``app``, ``summary``, ``metrics``, the ``_stop`` event and the containers below
    (set by the daemon's constructor)."""

    app: App
    summary: Any
    metrics: Any
    _stop: asyncio.Event
    _dirty: dict[str, None]
    _live_pending: dict[str, str | None]
    _call_rows: list[dict[str, Any]]
    _write_wakeup: asyncio.Event
    _writer_closing: bool
    _saved: dict[str, str]
    _start_failed: set[str]

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
        """Mark calls whose live snapshot may have changed; the catalog writer snapshots each of
        them once per batch (a snapshot is a deep copy of the call: per event it was the
        daemon's largest cost under load) and writes them off the loop."""
        self._dirty.update(dict.fromkeys(call_ids))
        if self._dirty:
            self._write_wakeup.set()

    async def _snapshot_dirty_in_slices(self) -> None:
        """Snapshot the dirty calls a slice at a time, yielding in between: 300 calls made dirty
        by a burst are ~1 s of deep copies, which in one piece stalled every waiting caller."""
        while self._dirty:
            self._snapshot_dirty(SNAPSHOT_SLICE)
            await asyncio.sleep(0)

    def _snapshot_dirty(self, limit: int | None = None) -> None:
        book = self.app.callbook
        if limit is None or len(self._dirty) <= limit:
            dirty, self._dirty = self._dirty, {}
        else:
            dirty = dict.fromkeys(list(self._dirty)[:limit])
            for call_id in dirty:
                del self._dirty[call_id]
        for raw_id in dirty:
            found = book.find(raw_id)  # an event names a reused linkedid's call by its base id
            call_id = found.call_id if found is not None else raw_id
            try:
                state = book.state(call_id)
                if not state or state == STATE_FINALIZED:
                    was_live = self._saved.pop(call_id, None) is not None
                    if was_live or not state:
                        self._live_pending[call_id] = None
                    if was_live and state:
                        self._count_finished(call_id)
                    self._start_failed.discard(call_id)
                    continue
                text = json.dumps(book.snapshot(call_id), sort_keys=True)
                if self._saved.get(call_id) != text:
                    self._live_pending[call_id] = text
                    self._saved[call_id] = text
            except Exception:
                log.exception("could not persist live call=%s", call_id)

    async def _catalog_writer(self) -> None:
        """Writes queued live-call snapshots and call rows in a worker thread, in order; while
        one batch is written the next one collects (a busy second costs one batch, not one
        fsync per event)."""
        while True:
            await self._write_wakeup.wait()
            self._write_wakeup.clear()
            await self._snapshot_dirty_in_slices()
            await asyncio.to_thread(self._write_batch, *self._take_pending())
            if self._writer_closing:
                return
            with contextlib.suppress(TimeoutError):  # let the next batch collect (bounded delay)
                await asyncio.wait_for(self._stop.wait(), PERSIST_BATCH_S)

    def _take_pending(self) -> tuple[dict[str, str | None], list[dict[str, Any]]]:
        """Called on the loop: the batch to write; new work collects in fresh containers."""
        self._snapshot_dirty()
        live, self._live_pending = self._live_pending, {}
        rows, self._call_rows = self._call_rows, []
        return live, rows

    def _write_batch(self, live: dict[str, str | None], rows: list[dict[str, Any]]) -> None:
        """One unit of work per snapshot and call row, committed together (``Catalog.grouped``:
        with the shipper's and pipeline's writes of the moment); a unit that fails is rolled
        back alone and logged."""
        catalog = self.app.catalog
        works: list[Callable[[], None]] = [
            (partial(catalog.delete_live_call, call_id) if text is None
             else partial(catalog.save_live_call, call_id, text))
            for call_id, text in live.items()
        ]
        works += [partial(catalog.upsert_call, row) for row in rows]
        what = [f"persist live call={call_id}" for call_id in live]
        what += [f"write the call row call={row.get('call_id', '-')}" for row in rows]
        try:
            outcomes = catalog.group_commit.run_all(works)
        except Exception:
            log.exception("could not write %d live snapshot(s) and %d call row(s)", len(live), len(rows))
            return
        for (_, error), label in zip(outcomes, what, strict=True):
            if error is not None:
                log.error("could not %s", label, exc_info=error)

    def _count_finished(self, call_id: str) -> None:
        snapshot = self.app.callbook.snapshot(call_id)
        self.metrics.call_finished(call_outcome(snapshot, call_id in self._start_failed))
        if snapshot.get("consent_decision"):
            self.metrics.consent(str(snapshot["consent_decision"]))
