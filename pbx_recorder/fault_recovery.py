"""What the daemon does after a fault, beside the call path: orphaned files and late flags.

* :meth:`FaultRecovery.recover_orphans`: recordings MixMonitor finished that no call or job
  holds (see :mod:`pbx_recorder.recording.orphans`) are shipped, deleted or held for an operator; run at
  start-up and periodically.  A file whose recording is already spooled or stored (a leg a
  crash left behind, or the PBX's copy of a file whose unlink was cut short) is an ALERT and
  is settled, never skipped as "already done": moved into the spool entry that lacks it, or
  removed once its SHA-256 equals the copy spooled/shipped; otherwise kept for an operator.
  The ``.raw`` original of a spooled stereo WAV (not byte-comparable with it) is moved into the
  spool's quarantine with a note (:meth:`Spool.quarantine`): one ALERT, the PBX account can no
  longer read it, and later scans do not find it again.
* the same scan deletes this node's leftovers of erased calls (an orphan, a quarantined
  original), also when the erasure ran on another node sharing the catalog
  (:meth:`FaultRecovery.sweep_erased_quarantine`, ``LateCopyGuard.erasure_of_leftover``).
* :meth:`FaultRecovery.add_flags` / :meth:`apply_flag_patches`: flags the core adds after a
  recording was finalized (``cut`` when ``core restart now`` hung the call up) are merged into
  the catalog row once the shipper has written it (it writes the manifest's flags on store).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pbx_recorder.app import App
from pbx_recorder.core import commands as cmds
from pbx_recorder.errors import IntegrityError, RecorderError
from pbx_recorder.lifecycle.late_copies import ErasureAwareCatalog
from pbx_recorder.lifecycle.receipt_backlog import ReceiptBacklog
from pbx_recorder.recording import manifest_copy, orphans
from pbx_recorder.recording.ledger import connection_of
from pbx_recorder.recording.pipeline import file_role
from pbx_recorder.recording.spool import remove_proven_copy

log = logging.getLogger(__name__)
FLAG_PATCH_TTL_S = 600.0
FLAGGABLE = ("stored", "verified", "migrated", "missing")
WITH_AUDIO = ("spooled", "stored", "verified", "migrated")  # a leftover file is a duplicate or a lost leg


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
        try:
            settled += await asyncio.to_thread(self.sweep_erased_quarantine)
        except Exception:  # the sweep must never stop the recorder
            log.exception("erased leftovers in the spool's quarantine could not be swept")
        try:
            await asyncio.to_thread(self.write_late_receipt_lines)
        except Exception:  # an unreadable backlog is an ALERT of its own; the scan goes on
            log.exception("erasure receipt lines kept beside the spool could not be written")
        return settled

    def _erasure_of(self, call_id: str, recording_id: str) -> str:
        """The erasure that removed the call of this node's leftover ('' to keep it):
        :meth:`LateCopyGuard.erasure_of_leftover` (on this node or another sharing the catalog)."""
        catalog = self.app.catalog
        if not isinstance(catalog, ErasureAwareCatalog):
            return ""
        return catalog.guard.erasure_of_leftover(connection_of(catalog), call_id, recording_id)

    def _erased_call_of(self, recording_id: str) -> str:
        catalog = self.app.catalog
        if not isinstance(catalog, ErasureAwareCatalog):
            return ""
        return catalog.guard.erased_call_of(connection_of(catalog), recording_id)

    def _deleting(self, request_id: str, call_id: str, recording_id: str, copy: str) -> dict[str, Any]:
        """The receipt line of a leftover about to be deleted, kept beside the spool first
        (``lifecycle.receipt_backlog``: a crash after the deletion loses no line).  When it cannot
        be kept (disk full) the file is deleted all the same (an erased caller's voice does not
        wait) and the line is written after it, as before: ALERT."""
        line = {"request_id": request_id, "call_id": call_id, "recording_id": recording_id, "copy": copy,
                "at": self.clock(), "kept": True}
        try:
            self._backlog().add(_line(line))
        except Exception:
            line["kept"] = False
            log.exception("ALERT erasure %s: the receipt line of call=%s rec=%s (%s) could not be kept "
                          "beside the spool before its deletion", request_id, call_id, recording_id or "-",
                          copy)
        return line

    def _deleted(self, line: dict[str, Any]) -> None:
        """The leftover is gone: its erasure's receipt names it, and the kept line goes."""
        try:
            self._write_receipt_line(_line(line))
        except Exception:
            if line["kept"]:
                log.exception("erasure %s: leftover of call=%s rec=%s (%s) deleted; its receipt line "
                              "could not be written now: it waits beside the spool for the next scan",
                              line["request_id"], line["call_id"], line["recording_id"] or "-", line["copy"])
            else:
                log.exception("ALERT erasure %s: leftover of call=%s rec=%s (%s) deleted and not named in "
                              "the receipt: complete it by hand", line["request_id"], line["call_id"],
                              line["recording_id"] or "-", line["copy"])
            return
        if line["kept"]:
            self._backlog().discard(_line(line))

    def _not_deleted(self, line: dict[str, Any]) -> None:
        """The deletion failed: the file is there, the next scan tries again; no line claims it."""
        if line["kept"]:
            self._backlog().discard(_line(line))

    def _backlog(self) -> ReceiptBacklog:
        return ReceiptBacklog(self.app.pipeline.spool.root)

    def _write_receipt_line(self, line: dict[str, Any]) -> None:
        catalog = self.app.catalog
        assert isinstance(catalog, ErasureAwareCatalog)
        catalog.guard.leftover_deleted(connection_of(catalog), line["request_id"], line["call_id"],
                                       line["recording_id"], line["copy"], at=float(line["at"]))

    def write_late_receipt_lines(self) -> int:
        """The receipt lines of leftovers deleted while the catalog was away (each once)."""
        if not isinstance(self.app.catalog, ErasureAwareCatalog):
            return 0
        return self._backlog().flush(self._write_receipt_line)

    def sweep_erased_quarantine(self) -> int:
        """Quarantined leftovers (a crash's ``.raw`` original, kept for an operator) of calls an
        erasure removed: ``erase`` deletes those of the node it runs on; with several nodes on one
        catalog each node's daemon deletes its own here, at each orphan scan (its receipt line kept
        beside the spool, the file deleted, then named in the receipt).  A leftover whose note is
        lost is tied to its call by its recording's catalog row, or once an erasure removed that,
        by the ledger's ``erased`` entry of the recording (its folder's name); one of a recording
        the catalog never had stays for an operator."""
        spool, deleted = self.app.pipeline.spool, 0
        for item in spool.quarantined_files():
            try:
                row = self.app.catalog.get_recording(item.recording_id) or {}
                call_id = (item.call_id or str(row.get("call_id") or "")
                           or self._erased_call_of(item.recording_id))
                request_id = self._erasure_of(call_id, item.recording_id)
                if not request_id:
                    continue
                line = self._deleting(request_id, call_id, item.recording_id, "spool_quarantine")
                try:
                    spool.drop_quarantined(item)
                except Exception:
                    self._not_deleted(line)
                    raise
                self._deleted(line)
                deleted += 1
            except Exception:  # one leftover must not keep the others
                log.exception("quarantined %s of recording %s: erased leftover not deleted", item.path.name,
                              item.recording_id)
        return deleted

    async def _discard_erased(self, orphan: orphans.Orphan, paths: tuple[str, ...]) -> bool:
        """An orphan of an erased call: its files deleted, then named in the erasure's receipt."""
        request_id = await asyncio.to_thread(self._erasure_of, orphan.call_id, orphan.recording_id)
        if not request_id:
            return False
        line = await asyncio.to_thread(self._deleting, request_id, orphan.call_id, orphan.recording_id,
                                       "orphan")
        try:
            await self.app.pipeline.discard(cmds.DiscardRecording(orphan.call_id, orphan.recording_id, paths,
                                                                  "erased"))
        except Exception:
            await asyncio.to_thread(self._not_deleted, line)
            raise
        if any(Path(p).exists() for p in paths):
            await asyncio.to_thread(self._not_deleted, line)
            log.error("ALERT orphaned recording %s of erased call=%s: could not be deleted; the next scan "
                      "tries again", orphan.recording_id, orphan.call_id)
            return True
        await asyncio.to_thread(self._deleted, line)
        return True

    async def _settle_orphan(self, orphan: orphans.Orphan) -> int:
        catalog = self.app.catalog
        row = catalog.get_recording(orphan.recording_id)
        if self.app.pipeline.spool.is_complete(orphan.recording_id) or (row or {}).get("state") in WITH_AUDIO:
            return await asyncio.to_thread(self._settle_leftovers, orphan, row)
        if row is not None and row.get("state") in orphans.PAST_SPOOL:
            return 0  # already settled (held for an operator, or a leftover after spooling)
        paths = tuple(str(p) for p in orphan.paths)
        if await self._discard_erased(orphan, paths):
            return 1
        call_row = catalog.get_call(orphan.call_id)
        action = orphans.decide(orphan.kind, call_row)
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


    def _settle_leftovers(self, orphan: orphans.Orphan, row: dict[str, Any] | None) -> int:
        """Files left in the monitor folder of a recording already spooled or stored.

        Each is an ALERT (call and recording ids; file names hold no numbers) and is settled
        under the shipper's claim, so the entry is not shipped while it changes."""
        rid, call_id = orphan.recording_id, orphan.call_id
        claimer = self.app.shipper.claimer
        if not claimer.claim(rid):
            log.info("call %s recording %s is being shipped: its leftover files wait for the next scan",
                     call_id, rid)
            return 0
        settled = 0
        state = (row or {}).get("state") or "in the spool"
        try:
            for path in orphan.paths:  # one ALERT per file and scan, saying what was done
                try:
                    done = self._settle_leftover(orphan, row, path)
                    settled += 1
                except (RecorderError, OSError) as exc:
                    log.error("ALERT call %s recording %s: %s still in the monitor folder although the "
                              "recording is %s; kept in %s for an operator: %s", call_id, rid, path.name,
                              state, path.parent, exc)
                    self._flag_unsettled(rid, row)
                    continue
                log.error("ALERT call %s recording %s: %s was still in the monitor folder although the "
                          "recording is %s: %s", call_id, rid, path.name, state, done)
                if done.startswith("quarantined"):
                    self._flag_unsettled(rid, row)
        finally:
            claimer.release(rid)
        return settled

    def _settle_leftover(self, orphan: orphans.Orphan, row: dict[str, Any] | None, path: Path) -> str:
        """Settle one leftover; what was done (for the ALERT), or raise and leave it in place."""
        spool = self.app.pipeline.spool
        entry = spool.entry(orphan.recording_id)
        if entry is not None:
            known = {f.name: f.sha256 for f in entry.manifest.files}
            if path.name in known:
                spool.drop_source_copy(path, entry.file_path(path.name), orphan.call_id)
                return "removed (byte-identical to the spooled copy)"
            if path.suffix == ".raw" and path.with_suffix(".wav").name in known:
                # the WAV was converted from it: nothing proves them equal, so neither deleting nor
                # shipping it is safe; kept for an operator, out of the PBX account's reach
                kept = spool.quarantine(orphan.recording_id, orphan.call_id, path,
                                        "the .raw original of a spooled stereo WAV: not byte-comparable",
                                        self.clock())
                return f"quarantined as {kept} with a note, for an operator (never deleted by the recorder)"
            spool.add_file(orphan.recording_id, path, file_role(str(path), entry.manifest.mode))
            return "moved into its spool entry"
        files = manifest_copy.parse((row or {}).get("manifest")).get("files") or []
        shipped = {str(f.get("name")): str(f.get("sha256") or "") for f in files if isinstance(f, dict)}
        if path.name not in shipped:
            raise IntegrityError(f"{path.name} is not in the stored recording (a lost leg): not shipped",
                                 call_id=orphan.call_id)
        remove_proven_copy(path, shipped[path.name], orphan.call_id)
        return "removed (byte-identical to the stored copy)"

    def _flag_unsettled(self, rid: str, row: dict[str, Any] | None) -> None:
        """Mark the row so the console shows the recording needs an operator (flag ``leftover_file``)."""
        if row is None or row.get("state") not in FLAGGABLE or "leftover_file" in (row.get("flags") or []):
            return
        try:
            self.app.catalog.upsert_recording({"recording_id": rid,
                                               "flags": [*(row.get("flags") or []), "leftover_file"]})
        except RecorderError as exc:
            log.error("ALERT recording %s: flag leftover_file not written: %s", rid, exc)


def _line(line: dict[str, Any]) -> dict[str, Any]:
    """The receipt line as kept beside the spool (without this process's ``kept`` mark)."""
    return {k: v for k, v in line.items() if k != "kept"}
