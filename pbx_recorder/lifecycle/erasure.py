"""Right-to-erasure requests: find, delete everywhere, prove it, track the deadline.

``erase`` deletes every recording of every matching call from every tier: every object
of it (``recording_objects.objects_of``: audio, legs, kept original, the manifest sidecar
that holds the CDR and consent evidence), every version, plus copies a half-finished
migration left; deletes the recordings and calls
rows, and returns a receipt that names the subject only by its keyed hash.  Recordings
under legal hold are withheld (listed with the hold reason; status refused_partial).
deletion_log and ledger rows stay: they hold ids and hashes, never the number.  Audit
rows that quote the number get it replaced by its keyed hash.

Complete by design, not by enumeration (crypto-shredding): an encrypted recording's data key
lives only in its catalog row (``storage.envelope``: not in the objects' headers), so deleting
the row (``secure_delete``, WAL checkpointed) destroys it, and every ciphertext copy the
recorder cannot see -- a cloud tier's target bucket, an archive, a replica -- is unreadable.
Catalog backups hold the key too: ``shred_backups`` starts a new backup-key epoch, takes a fresh
backup and destroys the older backup keys -- by the next ``catalog backup`` (``backup_shred``:
one fresh backup for every erasure since the last), or inside the erasure (``shred_now``).
Before any row goes, the subject's keyed hashes
are added to the tombstones (``lifecycle.tombstones``) that a catalog restore re-applies.
The receipt says, per recording, which copies were deleted and whether the rest is shredded.

Saved searches naming the subject (by number, or by call id: the call's own numbers, read before
its row goes) are deleted; one that cannot be opened is counted (``saved_searches_unreadable``)
and query holds naming the subject are kept and listed (``held_by_query_holds``,
``query_holds_unreadable``): ``lifecycle.erasure_mentions``.  Any of these, like a withheld
recording, makes the request ``refused_partial``: something of the subject was kept or could not
be checked, and the receipt says what.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pbx_recorder.catalog import engine
from pbx_recorder.catalog.marks import forget_call, forget_recording
from pbx_recorder.catalog.number_protection import BlindIndex, lookup_keys
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.errors import PolicyRefusal, StorageError
from pbx_recorder.exports import jobs
from pbx_recorder.lifecycle import (
    backup_shred,
    destruction,
    erasure_leftovers,
    erasure_mentions,
    erasure_status,
    number_lookup,
    policy,
    shared_tombstones,
)
from pbx_recorder.lifecycle.erasure_leftovers import Plan
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import LedgerAppend, Tx, copies, default_ledger, rows
from pbx_recorder.lifecycle.request_ids import new_id
from pbx_recorder.lifecycle.tombstones import Tombstones
from pbx_recorder.recording import call_seal, manifest_copy
from pbx_recorder.recording.recording_objects import objects_of
from storage.base import Tier

log = logging.getLogger(__name__)
#: a recording row whose audio a retention run or an approved deletion destroyed (the row stays)
DESTROYED_STATE = "expired"


class Eraser:
    def __init__(
        self,
        conn: sqlite3.Connection,
        tiers: Mapping[str, Tier],
        *,
        hash_key: bytes,
        holds: HoldManager,
        ledger: LedgerAppend | None = None,
        deadline_days: int = policy.ERASURE_DEADLINE_DAYS,
        tombstones: Tombstones | None = None,
        shred_backups: Callable[[float], Mapping[str, Any]] | None = None,
        spool_root: str | Path | None = None,
        numbers: NumberProtection | None = None,
        protected_classes: frozenset[str] = frozenset(),
    ) -> None:
        self.conn = conn
        #: retention classes marked ``protected`` (a legal obligation to keep: complaints, MiFID
        #: records): their recordings are withheld from an erasure unless ``include_protected``
        #: (GDPR art. 17(3)(b)); a recording flagged ``protected`` alike
        self.protected_classes = protected_classes
        self.include_protected = False
        self.tiers = tiers
        self.hash_key = hash_key
        self.holds = holds
        self.ledger = ledger or default_ledger()
        self.deadline_days = deadline_days
        self.tombstones = tombstones
        self.shred_backups = shred_backups
        #: True: the fresh backup is taken inside the erasure (``erase --shred-backups-now``); else
        #: by the next catalog backup (``backup_shred``)
        self.shred_now = False
        self.spool_root = spool_root
        self.numbers = numbers  # opens encrypted live-call snapshots (catalog.protected_rows)
        self.tick: Callable[[int], None] | None = None  # rows read while finding the subject (progress)

    def protected_reason(self, retention_class: object, flagged: object,
                         state: object = None) -> tuple[str, str] | None:
        """(hold id, reason) withholding a recording of a protected class (or flagged protected)
        from this erasure; None when it may go (``include_protected``: the override, audited) or
        when its audio is destroyed already (``state`` ``expired``: a retention run or an approved
        deletion request took it; its row keeps ids and hashes, nothing left to keep)."""
        if self.include_protected or state == DESTROYED_STATE:
            return None
        if not (flagged or retention_class in self.protected_classes):
            return None
        name = str(retention_class or "")
        override = ("the console opens a deletion request for it, which a second person approves; "
                    "erase --include-protected on the host overrides, audited")
        return (f"retention:{name}" if name else "retention:protected",
                f"protected retention class {name!r}: a legal obligation to keep it ({override})"
                if name else f"recording marked protected ({override})")

    def _calls(self, caller: str | None, call_id: str | None) -> list[dict[str, Any]]:
        """The subject's call rows.  By number: ``number_lookup.calls_naming`` streams the catalog
        in batches (memory O(batch) plus the subject's calls, never every row)."""
        if call_id:
            return rows(self.conn, "SELECT * FROM calls WHERE call_id=?", (call_id,))
        assert caller is not None
        ids = sorted(number_lookup.calls_naming(self.conn, self.hash_key, caller, tick=self.tick))
        out: list[dict[str, Any]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            out += rows(self.conn, f"SELECT * FROM calls WHERE call_id IN ({','.join('?' * len(chunk))})"
                        " ORDER BY rowid", chunk)
        return out

    def receive(self, *, subject_hash: str, request_id: str | None, now: float,
                aliases: tuple[str, ...] = ()) -> dict[str, Any]:
        """Register (or find) the request; its 15-day clock starts at the first receipt.

        The row is committed as ``open`` before any work (the receipt time is what the deadline
        counts from) and becomes ``done`` / ``refused_partial`` only after the work: a run that
        crashes or fails half-way leaves it open, ``erase status`` lists it, and the next run for
        the same subject (with its request id, or without one) completes the same request --
        every step is idempotent (what is already gone is not found again)."""
        if request_id is None:  # an earlier run for this subject that did not finish: complete it
            known = (subject_hash, *aliases)  # aliases: the subject under the key a rotation replaces
            marks = ",".join("?" * len(known))
            unfinished = rows(self.conn, f"SELECT * FROM erasure_requests WHERE subject IN ({marks}) AND "
                              "status='open' ORDER BY received_at LIMIT 1", known)
            if unfinished:
                log.info("erasure %s: completing the open request", unfinished[0]["request_id"])
                return unfinished[0]
        request_id = request_id or new_id("ER")
        found = rows(self.conn, "SELECT * FROM erasure_requests WHERE request_id=?", (request_id,))
        if found:
            if found[0]["subject"] not in (subject_hash, *aliases):
                raise PolicyRefusal(f"request {request_id} exists for another subject")
            return found[0]
        row = {
            "request_id": request_id,
            "subject": subject_hash,
            "received_at": now,
            "deadline": policy.erasure_deadline(now, self.deadline_days),
            "status": "open",
        }
        with Tx(self.conn):
            self.conn.execute(
                "INSERT INTO erasure_requests (request_id, subject, received_at, deadline, status)"
                " VALUES (?,?,?,?,?)",
                (row["request_id"], row["subject"], row["received_at"], row["deadline"], row["status"]),
            )
        return row

    def erase(
        self,
        *,
        caller: str | None = None,
        call_id: str | None = None,
        request_id: str | None = None,
        actor: str,
        now: float,
    ) -> dict[str, Any]:
        if bool(caller) == bool(call_id):
            raise PolicyRefusal("give exactly one of caller or call_id")
        subject = (
            policy.number_hash(self.hash_key, caller)
            if caller
            else policy.subject_hash(self.hash_key, call_id or "")
        )
        aliases = tuple(policy.number_hash(k, caller) if caller else policy.subject_hash(k, call_id or "")
                        for k in lookup_keys(self.hash_key)[1:])  # a blind-index key rotation runs
        req = self.receive(subject_hash=subject, request_id=request_id, now=now, aliases=aliases)
        calls = self._calls(caller, call_id)
        # the numbers saved searches and query holds are looked for by: read before any row goes
        named = [caller] if caller else erasure_mentions.numbers_of_calls(self.numbers, calls)
        deleted, withheld = [], []
        plan: list[tuple[dict[str, Any], list[dict[str, Any]], bool]] = []
        for call in calls:
            erase_now, kept = [], False
            for rec in rows(self.conn, "SELECT * FROM recordings WHERE call_id=?", (call["call_id"],)):
                hold = (self.holds.hold_for(rec)
                        or self.protected_reason(rec.get("retention_class"), rec.get("protected"),
                                                 rec.get("state")))
                if hold or rec["legal_hold"]:
                    hid, why = hold or ("", "legal hold flag set")
                    withheld.append(
                        {
                            "recording_id": rec["recording_id"],
                            "call_id": rec["call_id"],
                            "hold_id": hid,
                            "reason": why,
                        }
                    )
                    kept = True
                    self._log_withheld(rec, withheld[-1], req["request_id"], actor, now)
                    continue
                erase_now.append(rec)
            plan.append((call, erase_now, kept))
        # exports made before now may hold the subject's audio or numbers (an audio export, or a
        # list with full numbers): every export there is is withdrawn before anything of the
        # subject goes (a run killed half-way must leave none downloadable), and again at the end
        exports = jobs.withdraw_all(self.conn, now) if plan or req["received_at"] < now else []
        # the spool first: a held recording still waiting there makes the request partial before
        # the tombstones are written (a subject tombstone would drop the held call on a restore)
        spooled, quarantined = self._purge_spool(plan, caller, call_id, withheld)
        held_calls = {w["call_id"] for w in withheld}
        plan = [(c, erase_now, kept or c["call_id"] in held_calls) for c, erase_now, kept in plan]
        self._tombstone(subject, (caller, call_id), plan, bool(withheld), req["request_id"], now)
        # the calls erased, and the erased call id itself once its rows are gone (a run again)
        erased_ids = {str(c["call_id"]) for c, _, kept in plan if not kept}
        if call_id and not any(kept for _, _, kept in plan):
            erased_ids.add(call_id)
        searches = erasure_mentions.purge_saved_searches(self.conn, self.numbers, named, erased_ids)
        query_holds = erasure_mentions.query_holds_naming(self.conn, self.numbers, BlindIndex(self.hash_key),
                                                          named, call_id)
        for call, erase_now, kept in plan:
            for rec in erase_now:
                late = self.holds.hold_now(rec)  # a hold placed since the plan was made wins
                if late is not None:
                    withheld.append({"recording_id": rec["recording_id"], "call_id": rec["call_id"],
                                     "hold_id": late[0], "reason": late[1]})
                    self._log_withheld(rec, withheld[-1], req["request_id"], actor, now)
                    kept = True  # the call row stays with its held recording
                    continue
                deleted.append(self._erase_recording(rec, req["request_id"], actor, now))
            if not kept:
                with Tx(self.conn):
                    self.conn.execute("DELETE FROM live_calls WHERE call_id=?", (call["call_id"],))
                    self.conn.execute("DELETE FROM calls WHERE call_id=?", (call["call_id"],))
                    forget_call(self.conn, call["call_id"])
                    call_seal.record_removed(self.conn, call["call_id"], f"erasure {req['request_id']}", now)
        live = self._purge_live(plan, caller, req["request_id"], now)
        redacted = self._redact_audit(caller, subject) if caller else 0
        # and every export there is now (one started while this ran read the rows before they
        # went; one made later holds nothing of the subject: withdrawing it costs a re-run), also
        # when a re-run finds nothing left; their files go at each service's next sweep
        exports += (jobs.withdraw_all(self.conn, now)
                    if plan or spooled or quarantined or req["received_at"] < now else [])
        self._checkpoint()
        # the catalog backups still holding the subject: shredded now (a whole backup inside the
        # erasure), or by the next catalog backup (backup_shred); also when an earlier run of the
        # request erased what this one no longer finds
        shred = bool(plan) or req["received_at"] < now
        backups = dict(self.shred_backups(now)) if self.shred_backups and shred and self.shred_now else {}
        # kept, or not checked: a recording under hold, a saved search that does not open, a query
        # hold naming the subject (legal hold wins) or one that does not open
        kept_some = withheld or searches.unreadable or query_holds.held_by or query_holds.unreadable
        status = "refused_partial" if kept_some else "done"
        receipt = {
            "request_id": req["request_id"],
            "subject": subject,
            "subject_kind": "caller" if caller else "call_id",
            "received_at": req["received_at"],
            "deadline": req["deadline"],
            "completed_at": now,
            "status": status,
            "calls_matched": len(calls),
            "calls_erased": len(calls) - len({w["call_id"] for w in withheld}),
            "recordings_erased": len(deleted),
            "objects_deleted": sum(d["versions"] for d in deleted),  # versions, every tier
            "recording_objects_erased": sum(d["object_count"] for d in deleted),
            "objects": deleted,
            "withheld": withheld,
            "audit_rows_redacted": redacted,
            "spool_entries_deleted": spooled,
            "spool_quarantine_deleted": quarantined,
            "live_call_snapshots_deleted": live,
            "exports_withdrawn": exports,
            "protected_included": self.include_protected,
            "saved_searches_deleted": searches.deleted,
            "saved_searches_unreadable": searches.unreadable,
            "held_by_query_holds": query_holds.held_by,
            "query_holds_unreadable": query_holds.unreadable,
            "copies": {
                "deleted": sorted([c for d in deleted for c in d["deleted"]]
                                  + [f"spool:{r}" for r in spooled]
                                  + [f"spool-quarantine:{q}" for q in quarantined]),
                "shredded_recordings": sorted(d["recording_id"] for d in deleted if d["shredded"]),
                "not_shreddable": sorted(d["recording_id"] for d in deleted if not d["shredded"]),
            },
            "backups": backups,
            "actor": actor,
        }
        with Tx(self.conn):
            if self.shred_backups and shred and not self.shred_now:
                receipt["backups"] = backup_shred.schedule(self.conn, req["request_id"], now)
            elif backups.get("node"):  # shredded here: other nodes' backup keys may still be owed
                others = sorted(set(backup_shred.nodes(self.conn)) - {str(backups["node"])})
                if others:
                    backup_shred.schedule(self.conn, req["request_id"], now)
                    backup_shred.record_fresh(self.conn, [req["request_id"]], str(backups["node"]),
                                              backups, now)
                    receipt["backups"] = {**backups, "shred": backup_shred.PENDING, "since": now,
                                          "waiting_nodes": others}
            self.conn.execute(
                "UPDATE erasure_requests SET completed_at=?, status=?, receipt=? WHERE request_id=?",
                (now, status, json.dumps(receipt, sort_keys=True), req["request_id"]),
            )
        log.info(
            "erasure %s: %d recording(s) erased, %d withheld", req["request_id"], len(deleted), len(withheld)
        )
        return receipt

    def _erase_recording(
        self, rec: Mapping[str, Any], request_id: str, actor: str, now: float
    ) -> dict[str, Any]:
        objects = objects_of(rec)
        places = copies(self.conn, self.tiers, rec)
        versions = 0
        gone = []
        for name, key in sorted(places):  # PolicyRefusal (Object Lock) propagates: the request stays open
            versions += self.tiers[name].delete(key)
            gone.append(f"{name}:{key}")
        left = [f"{n}:{k}" for n, k in sorted(places) if self.tiers[n].stat(k) is not None]
        if left:  # never mark erased (and drop the row that locates them) while bytes remain
            raise StorageError(f"recording {rec['recording_id']}: objects still present after delete: "
                               + ", ".join(left))
        with Tx(self.conn):
            for table in ("lifecycle_moves", "hold_recordings", "recordings"):
                self.conn.execute(f"DELETE FROM {table} WHERE recording_id=?", (rec["recording_id"],))
            forget_recording(self.conn, rec["recording_id"])
            self.conn.execute(
                "INSERT INTO deletion_log (at, recording_id, call_id, sha256, reason, policy, actor)"
                " VALUES (?,?,?,?,?,?,?)",
                (now, rec["recording_id"], rec["call_id"], rec["sha256"], "erasure", request_id, actor),
            )
            destruction.record(self.conn, kind="erasure", request_id=request_id, requested_by=actor,
                               approved_by="", recording_id=rec["recording_id"], call_id=rec["call_id"],
                               sha256=rec["sha256"], now=now)
            self.ledger(
                self.conn,
                "erased",
                rec["recording_id"],
                {"request_id": request_id, "call_id": rec["call_id"], "sha256": rec["sha256"]},
                now,
            )
        return {
            "recording_id": rec["recording_id"],
            "sha256": rec["sha256"],
            "tiers": sorted({p[0] for p in places}),
            "versions": versions,
            "object_count": len(objects),
            "roles": sorted({o.role for o in objects}),
            "deleted": gone,
            **_shredding(rec),
        }

    def _tombstone(self, subject: str, named: tuple[str | None, str | None],
                   plan: list[tuple[dict[str, Any], list[Any], bool]], withheld: bool, request_id: str,
                   now: float) -> None:
        """Before any row goes: the keyed hashes a restored backup must not bring back.  The
        subject itself only when nothing is withheld (a held call must survive a restore)."""
        if self.tombstones is None:
            return
        keys = lookup_keys(self.hash_key)  # both while a blind-index key rotation runs
        hashes = [("call_id", policy.subject_hash(k, c["call_id"])) for c, _, kept in plan if not kept
                  for k in keys]
        caller, call_id = named
        kind = "number" if caller else "call_id"
        subjects = [(kind, subject)] + [(kind, policy.number_hash(k, caller) if caller else
                                         policy.subject_hash(k, call_id or "")) for k in keys[1:]]
        if not withheld:
            hashes += subjects
        self._add_tombstones(hashes, request_id=request_id, now=now)
        if withheld:  # not re-applied on a restore, but a call live right now is still caught
            self._add_tombstones(subjects, request_id=request_id, now=now, restore=False)

    def _add_tombstones(self, hashes: list[tuple[str, str]], *, request_id: str, now: float,
                        restore: bool = True) -> None:
        """Into the tombstone file (what a restore applies) and the catalog (what every node
        sharing the catalog checks late copies against: ``lifecycle.shared_tombstones``)."""
        assert self.tombstones is not None
        self.tombstones.add(hashes, request_id=request_id, now=now, restore=restore)
        with Tx(self.conn):
            shared_tombstones.record(self.conn, hashes, request_id=request_id, now=now, restore=restore)

    def _purge_spool(self, plan: Plan, caller: str | None, call_id: str | None,
                     withheld: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
        return erasure_leftovers.purge_spool(self, plan, caller, call_id, withheld)

    def _purge_live(self, plan: Plan, caller: str | None, request_id: str, now: float) -> int:
        return erasure_leftovers.purge_live(self, plan, caller, request_id, now)

    def _checkpoint(self) -> None:
        """Move the WAL into the database and truncate it: the deleted rows' old page images
        must not linger in ``-wal`` (readers that are still open may delay it: best effort)."""
        try:
            engine.compact(self.conn)
        except engine.db_errors() as exc:
            log.warning("WAL checkpoint after erasure failed: %s", exc)

    def _redact_audit(self, number: str, subject: str) -> int:
        norm = policy.normalize_number(number)
        n = 0
        for a in rows(
            self.conn,
            # only rows from before the audit chain (hash ''): the chained writer never stores a
            # number in clear (pbx_recorder.audit_trail), and rewriting a chained row breaks it
            "SELECT id, target, detail FROM audit_log WHERE hash = '' AND (target LIKE ? OR detail LIKE ?)",
            (f"%{norm}%", f"%{norm}%"),
        ):
            with Tx(self.conn):
                self.conn.execute(
                    "UPDATE audit_log SET target=?, detail=? WHERE id=?",
                    (a["target"].replace(norm, subject), a["detail"].replace(norm, subject), a["id"]),
                )
            n += 1
        return n

    def _log_withheld(
        self, rec: Mapping[str, Any], item: Mapping[str, Any], request_id: str, actor: str, now: float
    ) -> None:
        """A deletion_log row for a recording the request could not erase (once per request and hold)."""
        why = f"erasure {request_id}; legal hold {item['hold_id'] or '-'}: {item['reason']}"
        seen = self.conn.execute(
            "SELECT 1 FROM deletion_log WHERE recording_id=? AND reason='erasure_withheld' AND policy=?",
            (rec["recording_id"], why),
        ).fetchone()
        log.warning("erasure %s withheld call=%s rec=%s: %s", request_id, rec["call_id"], rec["recording_id"],
                    item["reason"])
        if seen:
            return
        with Tx(self.conn):
            self.conn.execute(
                "INSERT INTO deletion_log (at, recording_id, call_id, sha256, reason, policy, actor)"
                " VALUES (?,?,?,?,?,?,?)",
                (now, rec["recording_id"], rec["call_id"], rec["sha256"], "erasure_withheld", why, actor),
            )

    def status(self, now: float) -> list[dict[str, Any]]:
        """Requests not fully done (``lifecycle.erasure_status.requests_status``)."""
        return erasure_status.requests_status(self.conn, now)


def _shredding(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Whether deleting the row shreds the copies the recorder could not delete."""
    processing = manifest_copy.parse(rec.get("manifest")).get("processing") or {}
    if not rec.get("encrypted"):
        return {"shredded": False, "data_key": "none: stored unencrypted, only deleted copies are gone"}
    if processing.get("key_in_header") is False:
        return {"shredded": True, "data_key": "destroyed: every remaining ciphertext copy is unreadable"}
    return {"shredded": False,
            "data_key": "also in the objects' headers (encrypted before crypto-shredding): "
                        "only deleted copies are gone"}
