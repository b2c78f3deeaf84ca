"""Retention: ``report`` what would be disposed of and why; ``apply`` disposes of it.

Disposal = delete every version of every object of the recording (``recording_objects``:
audio, legs, kept original, manifest sidecar) from every tier holding one, mark the row 'expired' and
destroy its data key (so every copy no tier lists is shredded), write
``deletion_log`` (what, when, why, policy, hash, actor), append ledger ``deleted``.
Holds and protection always win: such a recording is refused, and the refusal is
written to ``deletion_log`` (reason 'refused', once per recording and cause).
A recording's leftover kept in the spool's quarantine (``recording.spool.Spool.quarantine``: a
crash's ``.raw`` original, the same voice in clear) goes with it when the job is given the spool
(``spool_root``: the node's own spool), and is listed in ``ApplyResult.quarantine_deleted``: it
was kept for an operator to settle while the recording lived, and must not outlive the disposal
that the destruction record certifies.  A refused (held) recording keeps its leftover.
deletion_log rows are kept at least a year (policy.DELETION_LOG_KEEP_DAYS); nothing in
this code base prunes that table.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbx_recorder import scan
from pbx_recorder.catalog.marks import forget_recording
from pbx_recorder.core import retention
from pbx_recorder.errors import NotFound, PolicyRefusal, RecorderError
from pbx_recorder.exports import jobs
from pbx_recorder.lifecycle import destruction, due_rows, policy, spool_erasure
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import LedgerAppend, Tx, audit, copies, default_ledger, rows
from pbx_recorder.lifecycle.request_ids import new_id
from pbx_recorder.progress import Progress
from pbx_recorder.recording import ledger
from pbx_recorder.recording.recording_objects import objects_of
from storage.base import Tier

log = logging.getLogger(__name__)


@dataclass
class ApplyResult:
    disposed: list[str] = field(default_factory=list)
    refused: list[policy.Disposal] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    run_id: str = ""  # the destruction records' request id of this run
    #: ``<recording id>/<file>`` removed from the spool's quarantine with their disposed recording
    quarantine_deleted: list[str] = field(default_factory=list)
    #: audio exports withdrawn because a recording disposed of is in them (exports/jobs.py)
    exports_withdrawn: list[str] = field(default_factory=list)


class RetentionJob:
    def __init__(
        self,
        conn: sqlite3.Connection,
        tiers: Mapping[str, Tier],
        classes: Mapping[str, retention.ClassPolicy],
        holds: HoldManager,
        ledger: LedgerAppend | None = None,
        spool_root: str | Path | None = None,
    ) -> None:
        self.conn = conn
        self.tiers = tiers
        self.classes = classes
        self.holds = holds
        self.ledger = ledger or default_ledger()
        self.spool_root = spool_root  # its quarantined leftovers go with a disposed recording
        self._run_id = ""  # set by apply: the destruction records' request id

    def report(self, now: float) -> list[policy.Disposal]:
        """Every recording past its retention, with the decision: dispose or refuse (and why)."""
        return list(self.iter_report(now))

    def iter_report(self, now: float, *, batch: int = scan.DEFAULT_BATCH,
                    progress: Progress | None = None) -> Iterator[policy.Disposal]:
        """:meth:`report`, streamed: only recordings that may be due are read, in keyset batches
        of the index ranges ``due_rows.retention_due`` names (memory O(batch), time O(rows read):
        seconds at 10 M calls when few are due), grouped by state and class, oldest first.

        The core's ``retention.disposal_candidates`` decides expiry, the hold flag and protection;
        ``HoldManager.hold_for`` adds holds placed by call/caller/query (incl. calls after the hold).
        """
        columns = scan.columns_of(self.conn, "recordings")
        for recs in due_rows.retention_due(self.conn, columns, self.classes, now, batch=batch):
            by_id = {r["recording_id"]: r for r in recs}
            active = self.holds.active_holds()
            for c in retention.disposal_candidates(recs, [], now, self.classes):
                rec = by_id[c.recording_id]
                label = policy.policy_label(rec, self.classes)
                hold = self.holds.hold_for(rec, active=active)
                if hold:
                    yield policy.Disposal(c.recording_id, c.call_id, "refuse",
                                          f"legal hold: {hold[0]} ({hold[1]})", label)
                else:
                    yield policy.Disposal(c.recording_id, c.call_id, "dispose" if c.allowed else "refuse",
                                          c.reason, label)
            if progress is not None:
                progress.advance(len(recs))

    def apply(self, now: float, actor: str, *, batch: int = scan.DEFAULT_BATCH,
              progress: Progress | None = None) -> ApplyResult:
        """Dispose of what :meth:`iter_report` finds, as it finds it (a batch is read before any
        of it is deleted; a crash leaves the rest for the next run)."""
        result = ApplyResult(run_id=new_id("RT"))
        disposed: dict[str, list[str]] = {}  # call id -> its recordings disposed of in this run
        running_swept = False  # the audio exports running when the destroying began: withdrawn
        self._run_id = result.run_id
        for d in self.iter_report(now, batch=batch, progress=progress):
            found = rows(self.conn, "SELECT * FROM recordings WHERE recording_id=?", (d.recording_id,))
            if not found:
                continue  # erased meanwhile
            rec = found[0]
            if rec["state"] not in retention.LIVE_STATES:
                continue  # disposed, erased or moved out meanwhile (a row the pass met in two ranges)
            if d.action == "refuse":
                self._log_refusal(rec, d.reason, d.policy, actor, now)
                result.refused.append(d)
                continue
            if d.action != "dispose":
                continue
            late = self.holds.hold_now(rec)  # a hold placed since the batch was read stops it here
            why = "" if late is None else f"legal hold: {late[0]} ({late[1]})"
            recorded = ledger.stored_created_at(self.conn, d.recording_id)
            if late is None and recorded is not None and float(rec.get("created_at") or 0) < recorded - 0.001:
                # the row's start moved earlier than the ledger recorded (by hand, to make it due)
                why = ("created_at is earlier than the ledger recorded it stored with (the row was "
                       "edited; retention counts from the ledger's)")
            if why:
                self._log_refusal(rec, why, d.policy, actor, now)
                result.refused.append(policy.Disposal(d.recording_id, d.call_id, "refuse", why, d.policy))
                continue
            try:
                # the exports holding it are withdrawn before anything is destroyed (a run killed
                # after the destroying must not leave one downloadable; one withdrawn for a
                # recording the tier then refuses to delete is made again by its owner); at the
                # first, the running ones too: they may be reading it
                result.exports_withdrawn += jobs.withdraw_holding(
                    self.conn, {d.call_id: (d.recording_id,)}, now, since=None if running_swept else now)
                running_swept = True
                self._dispose(rec, d, actor, now)
                result.disposed.append(d.recording_id)
                disposed.setdefault(d.call_id, []).append(d.recording_id)
                if self.spool_root is not None:  # (only the folder of this recording, this call)
                    result.quarantine_deleted += spool_erasure.purge_quarantine(
                        self.spool_root, call_ids=(), recordings={d.recording_id: d.call_id})
            except PolicyRefusal as exc:  # the tier itself (Object Lock) said no
                self._log_refusal(rec, f"tier refused: {exc}", d.policy, actor, now)
                result.refused.append(
                    policy.Disposal(d.recording_id, d.call_id, "refuse", str(exc), d.policy)
                )
            except RecorderError as exc:
                log.error("retention delete failed call=%s rec=%s: %s", d.call_id, d.recording_id, exc)
                result.failed.append(d.recording_id)
        if disposed:  # and again: an export that ran meanwhile may have read one of them (its rows late)
            result.exports_withdrawn += jobs.withdraw_holding(self.conn, disposed, now, since=now)
        return result

    def _dispose(self, rec: Mapping[str, Any], d: policy.Disposal, actor: str, now: float) -> None:
        versions = 0
        places = copies(self.conn, self.tiers, rec)  # every object, incl. copies of an unfinished move
        for name, key in sorted(places):
            versions += self.tiers[name].delete(key)
        with Tx(self.conn):
            self.conn.execute("DELETE FROM lifecycle_moves WHERE recording_id=?", (d.recording_id,))
            forget_recording(self.conn, d.recording_id)  # peaks are a picture of the audio
            # the data key goes too (crypto-shredding, as in erasure): copies no tier lists -- a cloud
            # tier's target bucket, a replica -- become unreadable; the row keeps ids and hashes
            self.conn.execute(
                "UPDATE recordings SET state='expired', wrapped_key='', manifest=? WHERE recording_id=?",
                (_without_wrapped_key(rec.get("manifest")), d.recording_id),
            )
            self.conn.execute(
                "INSERT INTO deletion_log (at, recording_id, call_id, sha256, reason, policy, actor)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    now,
                    d.recording_id,
                    d.call_id,
                    rec["sha256"],
                    "retention",
                    f"{d.policy}; {d.reason}",
                    actor,
                ),
            )
            destruction.record(self.conn, kind="retention", request_id=self._run_id or "RT",
                               requested_by=actor, approved_by="", recording_id=d.recording_id,
                               call_id=d.call_id, sha256=rec["sha256"], now=now)
            self.ledger(
                self.conn,
                "deleted",
                d.recording_id,
                {
                    "call_id": d.call_id,
                    "reason": "retention",
                    "policy": d.policy,
                    "sha256": rec["sha256"],
                    "tier": rec["tier"],
                    "versions": versions,
                    "objects": len(objects_of(rec)),
                },
                now,
            )
        log.info("disposed call=%s rec=%s (%s, %d version(s))", d.call_id, d.recording_id, d.policy, versions)

    def _log_refusal(self, rec: Mapping[str, Any], why: str, pol: str, actor: str, now: float) -> None:
        seen = self.conn.execute(
            "SELECT 1 FROM deletion_log WHERE recording_id=? AND reason='refused' AND policy=?",
            (rec["recording_id"], f"{pol}; {why}"),
        ).fetchone()
        log.warning("retention refused call=%s rec=%s: %s", rec["call_id"], rec["recording_id"], why)
        if not seen:
            with Tx(self.conn):
                self.conn.execute(
                    "INSERT INTO deletion_log (at, recording_id, call_id, sha256, reason, policy, actor)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (
                        now,
                        rec["recording_id"],
                        rec["call_id"],
                        rec["sha256"],
                        "refused",
                        f"{pol}; {why}",
                        actor,
                    ),
                )

    def set_class(
        self, call_id: str, class_name: str, *, actor: str, role: str, now: float
    ) -> list[dict[str, Any]]:
        """Change a call's retention class; recompute retain_until of its recordings; audit row and,
        per recording, a ledger ``reclassed`` entry (class and retain_until: ``verify`` holds the row
        to the last one, so a class or end edited by hand is reported)."""
        cls = self.classes.get(class_name)
        if cls is None:
            raise PolicyRefusal(
                f"unknown retention class {class_name!r} (known: {', '.join(sorted(self.classes))})"
            )
        if not rows(self.conn, "SELECT 1 FROM calls WHERE call_id=?", (call_id,)):
            raise NotFound(f"no call {call_id}")
        recs = rows(self.conn, "SELECT * FROM recordings WHERE call_id=?", (call_id,))
        changes = []
        with Tx(self.conn):
            self.conn.execute(
                "UPDATE calls SET retention_class=?, updated_at=? WHERE call_id=?", (class_name, now, call_id)
            )
            for r in recs:
                until = retention.retain_until(float(r["created_at"]), cls.days, now)
                self.conn.execute(
                    "UPDATE recordings SET retention_class=?, retain_until=?, protected=?"
                    " WHERE recording_id=?",
                    (class_name, until, int(cls.protected), r["recording_id"]),
                )
                self.ledger(self.conn, "reclassed", r["recording_id"],
                            {"call_id": call_id, "from": r["retention_class"] or "", "to": class_name,
                             "retain_until": until}, now)
                changes.append(
                    {
                        "recording_id": r["recording_id"],
                        "from": r["retention_class"],
                        "old_retain_until": r["retain_until"],
                        "retain_until": until,
                    }
                )
            audit(
                self.conn,
                actor=actor,
                role=role,
                action="retention.set-class",
                target=call_id,
                detail={"class": class_name, "recordings": changes},
                now=now,
            )
        return changes


def _without_wrapped_key(manifest: Any) -> str:
    """The manifest JSON without ``processing.wrapped_key`` (the data key shredded with the audio);
    a manifest that is not JSON is kept as it is."""
    if isinstance(manifest, str):
        try:
            body = json.loads(manifest)
        except ValueError:
            return manifest
    else:
        body = dict(manifest or {})
    processing = body.get("processing") if isinstance(body, dict) else None
    if isinstance(processing, dict):
        processing.pop("wrapped_key", None)
    return json.dumps(body, separators=(",", ":"), default=list)  # as SQLite's json_remove wrote it
