"""What the daemon does after a fault, beside the call path: orphaned files and late flags.

* :meth:`FaultRecovery.recover_orphans`: recordings MixMonitor finished that no call or job
  holds (see :mod:`pbx_recorder.recording.orphans`) are shipped, deleted or held for an operator; run at
  start-up and periodically.
* :meth:`FaultRecovery.add_flags` / :meth:`apply_flag_patches`: flags the core adds after a
  recording was finalized (``cut`` when ``core restart now`` hung the call up) are merged into
  the catalog row once the shipper has written it (it writes the manifest's flags on store).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pbx_recorder.app import App
from pbx_recorder.core import commands as cmds
from pbx_recorder.recording import orphans

log = logging.getLogger(__name__)
FLAG_PATCH_TTL_S = 600.0
FLAGGABLE = ("stored", "verified", "migrated", "missing")


class FaultRecovery:
    def __init__(self, app: App, clock: Callable[[], float]) -> None:
        self.app = app
        self.clock = clock
        self._flag_patches: dict[str, tuple[tuple[str, ...], float]] = {}  # rid -> (flags, give up at)

    def add_flags(self, command: cmds.FlagRecordings) -> None:
        for rid in command.recording_ids:
            self._flag_patches[rid] = (command.flags, self.clock() + FLAG_PATCH_TTL_S)
        self.apply_flag_patches()

    def apply_flag_patches(self) -> None:
        """Merge late flags (FlagRecordings) into recording rows once the shipper has written
        them (it writes the manifest's flags when it stores a recording)."""
        now = self.clock()
        for rid, (flags, give_up_at) in list(self._flag_patches.items()):
            row = self.app.catalog.get_recording(rid)
            if row is not None and row.get("state") in FLAGGABLE:
                merged = list(dict.fromkeys([*(row.get("flags") or []), *flags]))
                self.app.catalog.upsert_recording({"recording_id": rid, "flags": merged})
                log.info("recording %s flagged %s after the fact", rid, ",".join(flags))
            elif now < give_up_at:
                continue
            else:
                log.error("ALERT recording %s: could not add flags %s (state %s)", rid, ",".join(flags),
                          (row or {}).get("state", "no row"))
            del self._flag_patches[rid]

    async def recover_orphans(self) -> int:
        """Settle finished files in the monitor folder that no call or job holds (see orphans)."""
        app = self.app
        busy = app.callbook.recording_ids() | app.pipeline.pending_ids()
        try:
            found = await asyncio.to_thread(orphans.scan, app.callbook.monitor_dir, busy, self.clock(),
                                            orphans.MIN_AGE_S, app.callbook.node_prefix)
        except Exception:  # the scan must never stop the recorder
            log.exception("orphan scan failed")
            return 0
        settled = 0
        for orphan in found:
            try:
                settled += await self._settle_orphan(orphan)
            except Exception:
                log.exception("orphan %s of call=%s could not be settled", orphan.recording_id,
                              orphan.call_id)
        return settled

    async def _settle_orphan(self, orphan: orphans.Orphan) -> int:
        catalog = self.app.catalog
        row = catalog.get_recording(orphan.recording_id)
        if row is not None and row.get("state") in orphans.PAST_SPOOL:
            return 0  # already settled (held for an operator, or a leftover after spooling)
        call_row = catalog.get_call(orphan.call_id)
        action = orphans.decide(orphan.kind, call_row)
        paths = tuple(str(p) for p in orphan.paths)
        if action == orphans.SHIP and call_row is not None:
            log.warning("orphaned recording %s of call=%s found in the monitor folder: spooling it",
                        orphan.recording_id, orphan.call_id)
            await self.app.pipeline.finalize(cmds.FinalizeRecording(
                orphan.call_id, orphan.recording_id, paths, orphans.metadata(orphan, call_row)))
            return 1
        if action == orphans.DELETE:
            log.warning("orphaned recording %s of call=%s may not be kept (consent %s): deleting it",
                        orphan.recording_id, orphan.call_id, (call_row or {}).get("consent_decision", "-"))
            await self.app.pipeline.discard(cmds.DiscardRecording(orphan.call_id, orphan.recording_id, paths,
                                                                  "orphan_not_consented"))
            return 1
        log.error("ALERT orphaned recording %s of call=%s: no call row says whether it may be kept; "
                  "left in %s for an operator", orphan.recording_id, orphan.call_id,
                  self.app.callbook.monitor_dir)
        catalog.upsert_recording({"recording_id": orphan.recording_id, "call_id": orphan.call_id,
                                  "kind": orphan.kind, "mode": orphan.mode, "state": "orphaned",
                                  "flags": ["orphan_recovered", "consent_unknown"],
                                  "created_at": self.clock()})
        return 1

