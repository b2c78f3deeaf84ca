"""Manual deletion of recordings: a request (reason, scope) that a second person approves.

States of a ``deletion_requests`` row::

    requested --approve--> requested + approver set --execute--> executed
        |                        (approved, pending)       \\--> failed --execute--> executed
        \\--refuse--> refused

The recordings (ids, calls, SHA-256) are fixed when the request is made: approving it destroys
exactly those, never a recording that arrived later.  The approver is never the requester (checked
by name, whatever verbs a role holds; the compare-and-set also carries it, so two approvers cannot
both decide).  Approval is committed before execution starts: a crash in between leaves the request
approved and pending, and :meth:`DeletionRequests.execute` runs again -- idempotent by recording
(what a ``destruction_records`` row already names is not destroyed twice).

Destroying one recording (:func:`destroy`) is the retention path's: every version of every object
(``journal.copies``: every tier, both ends of an unfinished move) deleted and checked gone, the
row kept as ``expired`` with its data key removed (crypto-shredding what no tier lists),
``deletion_log`` (reason ``deletion``), ledger ``deleted`` and a destruction record, in one
transaction.  A recording under a legal hold is withheld (and says which hold); one whose hash
changed since the request is withheld too.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

from pbx_recorder.catalog.marks import forget_recording
from pbx_recorder.core.masking import redact_card_numbers
from pbx_recorder.core.retention import LIVE_STATES
from pbx_recorder.errors import AccessDenied, NotFound, PolicyRefusal, RecorderError, StorageError
from pbx_recorder.exports import jobs
from pbx_recorder.lifecycle import destruction
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import LedgerAppend, Tx, copies, default_ledger, rows
from pbx_recorder.lifecycle.request_ids import new_id
from pbx_recorder.lifecycle.retention_jobs import _without_wrapped_key
from pbx_recorder.recording.recording_objects import objects_of
from storage.base import Tier

log = logging.getLogger(__name__)
MAX_REASON = 500
MAX_CALLS = 500
COLUMNS = ("id, requested_by, reason, scope, recordings, state, requested_at, approver, decided_at,"
           " executed_at, result")


def _row(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        item = dict(zip(names, r, strict=True))
        for key in ("scope", "recordings", "result"):
            item[key] = json.loads(item[key] or ("[]" if key == "recordings" else "{}"))
        item["approved"] = bool(item["approver"]) and item["state"] in ("requested", "failed", "executed")
        item["pending_execution"] = item["state"] in ("requested", "failed") and bool(item["approver"])
        out.append(item)
    return out


class DeletionRequests:
    def __init__(self, conn: sqlite3.Connection, tiers: Mapping[str, Tier] | None = None,
                 holds: HoldManager | None = None, ledger: LedgerAppend | None = None) -> None:
        """``tiers`` and ``holds`` are needed by :meth:`execute` only (reading needs the catalog)."""
        self.conn, self.tiers, self.holds = conn, tiers, holds
        self.ledger = ledger or default_ledger()

    # -- the request -------------------------------------------------------------------
    def ask(self, *, requester: str, reason: str, call_ids: list[str], now: float) -> dict[str, Any]:
        """Open a request for every recording of ``call_ids`` (already checked against the
        requester's scope), fixing their ids and hashes now."""
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON:
            raise PolicyRefusal(f"a deletion request needs a reason (1-{MAX_REASON} characters)")
        reason = redact_card_numbers(reason)  # (kept 3 years in its destruction records)
        wanted = sorted(set(call_ids))
        if not wanted or len(wanted) > MAX_CALLS:
            raise PolicyRefusal(f"a deletion request names 1-{MAX_CALLS} calls")
        marks = ",".join("?" * len(wanted))
        recs = rows(self.conn, "SELECT recording_id, call_id, sha256, state FROM recordings"
                    f" WHERE call_id IN ({marks}) ORDER BY call_id, recording_id", wanted)
        recs = [{"recording_id": r["recording_id"], "call_id": r["call_id"], "sha256": r["sha256"] or ""}
                for r in recs if r["state"] in LIVE_STATES]
        if not recs:
            raise PolicyRefusal("these calls have no stored recording to delete")
        request_id = new_id("DR")
        with Tx(self.conn):
            self.conn.execute(
                "INSERT INTO deletion_requests (id, requested_by, reason, scope, recordings, state,"
                " requested_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (request_id, requester, reason, json.dumps({"call_ids": wanted}), json.dumps(recs),
                 "requested", now))
        return self.get(request_id)

    def get(self, request_id: str) -> dict[str, Any]:
        found = _row(self.conn.execute(f"SELECT {COLUMNS} FROM deletion_requests WHERE id = ?",
                                       (request_id,)))
        if not found:
            raise NotFound(f"no deletion request {request_id}")
        return found[0]

    def listing(self, *, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        sql = f"SELECT {COLUMNS} FROM deletion_requests"
        params: tuple[Any, ...] = ()
        if state:
            sql, params = sql + " WHERE state = ?", (state,)
        return _row(self.conn.execute(sql + " ORDER BY requested_at DESC, id LIMIT ?", (*params, limit)))

    def decide(self, request_id: str, *, approver: str, approve: bool, now: float,
               note: str = "") -> dict[str, Any]:
        """Approve (then :meth:`execute`) or refuse; AccessDenied for the requester or a request
        already decided."""
        found = self.get(request_id)
        if found["requested_by"] == approver:
            raise AccessDenied("a deletion request is decided by someone other than its requester")
        with Tx(self.conn):
            cur = self.conn.execute(
                "UPDATE deletion_requests SET approver = ?, decided_at = ?, state = ?, result = ?"
                " WHERE id = ? AND state = 'requested' AND approver = '' AND requested_by <> ?",
                (approver, now, "requested" if approve else "refused",
                 json.dumps({} if approve else {"refused": redact_card_numbers(note[:MAX_REASON])}),
                 request_id, approver))
            if cur.rowcount != 1:
                raise AccessDenied(f"deletion request {request_id} was already decided")
        return self.get(request_id)

    # -- execution ---------------------------------------------------------------------
    def execute(self, request_id: str, *, now: float) -> dict[str, Any]:
        """Destroy the request's recordings (approved requests only; again after a failure or a
        crash: what is already destroyed is skipped)."""
        if self.tiers is None or self.holds is None:
            raise PolicyRefusal("executing a deletion needs the tiers and the hold manager")
        req = self.get(request_id)
        if not req["pending_execution"]:
            raise PolicyRefusal(f"deletion request {request_id} is {req['state']}"
                                + ("" if req["approver"] else " and not approved"))
        done = {r["recording_id"] for r in destruction.of_request(self.conn, request_id)}
        deleted, withheld, gone, failed = [], [], [], []
        withdrawn: list[str] = []  # audio exports holding a recording destroyed here
        destroyed: dict[str, list[str]] = {}
        running_swept = False  # the audio exports running when the destroying began: withdrawn
        for fixed in req["recordings"]:
            rid = fixed["recording_id"]
            if rid in done:  # (a run that stopped after it: its exports are looked at again below)
                deleted.append(rid)
                destroyed.setdefault(str(fixed.get("call_id", "")), []).append(rid)
                continue
            found = rows(self.conn, "SELECT * FROM recordings WHERE recording_id = ?", (rid,))
            if not found or found[0]["state"] not in LIVE_STATES:
                gone.append(rid)  # erased or disposed of meanwhile: nothing left to destroy
                continue
            rec = found[0]
            hold = self.holds.hold_for(rec)
            if hold or rec["legal_hold"]:
                hid, why = hold or ("", "legal hold flag set")
                withheld.append({"recording_id": rid, "call_id": rec["call_id"], "hold_id": hid,
                                 "reason": f"legal hold: {why}"})
                continue
            if (rec["sha256"] or "") != fixed["sha256"]:
                withheld.append({"recording_id": rid, "call_id": rec["call_id"], "hold_id": "",
                                 "reason": "its SHA-256 changed since the request"})
                continue
            try:
                # its exports go first: a run killed after the destroying leaves none downloadable
                withdrawn += jobs.withdraw_holding(self.conn, {str(rec["call_id"]): (rid,)}, now,
                                                   since=None if running_swept else now)
                running_swept = True
                destroy(self.conn, self.tiers, rec, ledger=self.ledger, request_id=request_id,
                        requested_by=req["requested_by"], approved_by=req["approver"],
                        reason=req["reason"], now=now)
                deleted.append(rid)
                destroyed.setdefault(str(rec["call_id"]), []).append(rid)
            except RecorderError as exc:
                log.error("deletion %s rec=%s failed: %s", request_id, rid, exc)
                failed.append({"recording_id": rid, "error": str(exc)[:300]})
        if destroyed:  # and again: an export that ran meanwhile may have read one of them
            withdrawn += jobs.withdraw_holding(self.conn, destroyed, now, since=now)
        result = {"deleted": deleted, "withheld": withheld, "gone": gone, "failed": failed,
                  "exports_withdrawn": withdrawn}
        with Tx(self.conn):
            self.conn.execute("UPDATE deletion_requests SET state = ?, executed_at = ?, result = ?"
                              " WHERE id = ?",
                              ("failed" if failed else "executed", now, json.dumps(result), request_id))
        log.info("deletion %s: %d destroyed, %d withheld, %d failed", request_id, len(deleted), len(withheld),
                 len(failed))
        return self.get(request_id)


def destroy(conn: sqlite3.Connection, tiers: Mapping[str, Tier], rec: Mapping[str, Any], *,
            ledger: LedgerAppend, request_id: str, requested_by: str, approved_by: str, reason: str,
            now: float) -> None:
    """Every copy of ``rec`` deleted and checked gone, then its row expired (data key removed),
    deletion_log, ledger ``deleted`` and the destruction record in one transaction."""
    places = copies(conn, tiers, rec)
    versions = 0
    for name, key in sorted(places):  # PolicyRefusal (Object Lock) propagates: the request can retry
        versions += tiers[name].delete(key)
    left = [f"{n}:{k}" for n, k in sorted(places) if tiers[n].stat(k) is not None]
    if left:
        raise StorageError(f"recording {rec['recording_id']}: still present after delete: {', '.join(left)}")
    with Tx(conn):
        conn.execute("DELETE FROM lifecycle_moves WHERE recording_id=?", (rec["recording_id"],))
        forget_recording(conn, rec["recording_id"])
        conn.execute("UPDATE recordings SET state='expired', wrapped_key='', manifest=? WHERE recording_id=?",
                     (_without_wrapped_key(rec.get("manifest")), rec["recording_id"]))
        conn.execute(
            "INSERT INTO deletion_log (at, recording_id, call_id, sha256, reason, policy, actor)"
            " VALUES (?,?,?,?,?,?,?)",
            (now, rec["recording_id"], rec["call_id"], rec["sha256"], "deletion",
             f"request {request_id}; approved by {approved_by}; {reason[:200]}", approved_by))
        destruction.record(conn, kind="deletion", request_id=request_id, requested_by=requested_by,
                           approved_by=approved_by, recording_id=rec["recording_id"], call_id=rec["call_id"],
                           sha256=rec["sha256"] or "", now=now)
        ledger(conn, "deleted", rec["recording_id"],
               {"call_id": rec["call_id"], "reason": "deletion", "request_id": request_id,
                "sha256": rec["sha256"], "tier": rec["tier"], "versions": versions,
                "objects": len(objects_of(rec))}, now)
    log.info("deleted call=%s rec=%s (request %s, %d version(s))", rec["call_id"], rec["recording_id"],
             request_id, versions)
