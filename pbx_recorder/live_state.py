"""Live-call snapshots to the catalog, off the event loop and batched.

The daemon snapshots a call after every change (so a restarted or SIGKILLed daemon neither
records a call twice nor forgets one).  Written inline, that was one SQLite commit (a WAL
fsync) per event on the loop: at 50 concurrent calls the loop spent its time in fsync while
consent sessions and ESL replies waited.  Here the latest snapshot of each call is kept in
memory and a worker thread writes everything pending in ONE transaction; changes made while a
batch is being written go in the next one.  The crash window grows by one batch (milliseconds);
it was never zero (the PBX command runs before its snapshot), which is why the resync after a
restart reads the recorder's own channel variables from the PBX as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)
RETRY_S = 1.0  # after a failed batch (catalog locked, disk full): try again, nothing dropped


class LiveCallStore(Protocol):
    def write_live_calls(self, changes: Mapping[str, str | None]) -> None: ...


class LiveStateWriter:
    def __init__(
        self,
        store: LiveCallStore,
        *,
        to_thread: Callable[..., Awaitable[Any]] = asyncio.to_thread,
        retry_s: float = RETRY_S,
    ) -> None:
        self.store = store
        self.to_thread = to_thread
        self.retry_s = retry_s
        self._pending: dict[str, str | None] = {}  # call id -> snapshot text, None = delete
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def save(self, call_id: str, text: str) -> None:
        self._pending[call_id] = text
        self._kick()

    def delete(self, call_id: str) -> None:
        self._pending[call_id] = None
        self._kick()

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything saved so far is written; False if that took over ``timeout_s``
        (the catalog keeps failing): the restart's resync covers what is missing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._pending or (self._task is not None and not self._task.done()):
            self._kick()
            assert self._task is not None
            try:
                await asyncio.wait_for(asyncio.shield(self._task), max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.error("live-call state: %d call(s) not written at flush", len(self._pending))
                return False
        return True

    def _kick(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (start-up, tools): write now
            batch, self._pending = self._pending, {}
            self.store.write_live_calls(batch)
            self.batches += 1
            return
        self._task = loop.create_task(self._drain(), name="live-state-writer")

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await self.to_thread(self.store.write_live_calls, batch)
                self.batches += 1
            except Exception:
                self.failures += 1
                log.exception("live-call state: a batch of %d call(s) could not be written", len(batch))
                for call_id, text in batch.items():  # newer changes win over the failed ones
                    self._pending.setdefault(call_id, text)
                await asyncio.sleep(self.retry_s)
