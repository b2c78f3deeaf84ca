"""Copies of an erased subject that arrive after the erasure: destroyed on arrival.

A call still in progress when ``erase`` runs is not in the catalog yet: its live-call snapshot
is rewritten at its next event, its call row is written when it ends, its recording reaches the
spool and the shipper.  Every one of those writers asks :class:`LateCopyGuard` first; it
matches the copy (its call id and every number in it, as keyed hashes) against the erasure
tombstones, which carry the erasure time (``lifecycle.tombstones``), and decides with
``policy.late_copy_verdict``:

* the call started before an erasure of its subject: it was live when the erasure ran.  The
  copy is not written (a spooled recording is removed by the shipper before any prepare stage
  ran: its data key is never made, let alone stored), the call id is tombstoned too (so the
  copies that name no number -- an orphaned file, a bare row -- follow it, also on a restore),
  a ``deletion_log`` row (``erasure_late_copy``) and an ``erased`` ledger entry record a
  destroyed recording, and the erasure request's receipt lists the copy under ``late_copies``;
* a legal hold covers it (by call, by caller, by recording): withheld, as ``erase`` does --
  the copy is written, the request becomes ``refused_partial`` with the recording in ``withheld``;
* the call started after every erasure of the subject: a new call (a new consent), kept.

Leftover files on a node's own disk (:meth:`LateCopyGuard.erasure_of_leftover`, asked by the daemon's
orphan scan, ``fault_recovery``): a quarantined original or an orphaned file of a call whose call
id an erasure tombstoned -- on this node or on another sharing the catalog, which ``erase`` could
not reach -- is deleted and listed in the receipt's ``late_copies``.

Nothing here logs or stores a number: call ids, recording ids and request ids only.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pbx_recorder.catalog import Catalog
from pbx_recorder.catalog.marks import forget_call, forget_recording
from pbx_recorder.catalog.number_protection import lookup_keys
from pbx_recorder.lifecycle import policy, shared_tombstones
from pbx_recorder.lifecycle.journal import Tx, default_ledger, json_object
from pbx_recorder.lifecycle.number_lookup import SUBJECT_SEPARATOR
from pbx_recorder.lifecycle.tombstones import Tombstones, path_beside
from pbx_recorder.recording import call_seal
from pbx_recorder.recording.ledger import connection_of
from pbx_recorder.recording.spool import SpoolEntry

log = logging.getLogger(__name__)
ACTOR = "pbx-recorder (late copy)"
KEEP = policy.LateCopyVerdict("keep")


#: how a receipt's ``copies.deleted`` names a late copy's place (as ``erase`` names its own)
_COPY_LABELS = {"spool": "spool", "spool_quarantine": "spool-quarantine", "orphan": "monitor"}


class LateCopyGuard:
    def __init__(self, hash_key_file: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.hash_key_file = Path(hash_key_file)
        self.clock = clock
        self._tombstones: Tombstones | None = None
        self._key: bytes | None = None
        self._stamp: tuple[tuple[int, int, int], ...] = ()

    def _tomb(self) -> Tombstones | None:
        """None while nothing was ever erased; the key is read once there is a tombstone (an
        unreadable key then raises ConfigError: nothing of a possibly erased subject is written)."""
        if self._tombstones is None:
            path = path_beside(self.hash_key_file)
            if not path.exists():
                return None
            from pbx_recorder.hash_key import read_hash_key

            self._tombstones = Tombstones(path, read_hash_key(self.hash_key_file))
        return self._tombstones

    def _hash_key(self, tomb: Tombstones | None) -> bytes:
        if tomb is not None:
            return tomb.hash_key
        if self._key is None:
            from pbx_recorder.hash_key import read_hash_key

            self._key = read_hash_key(self.hash_key_file)
        return self._key

    def _lookup_keys(self, tomb: Tombstones | None) -> tuple[bytes, ...]:
        """The keys hashes are looked up under; the key files are read again when they change
        (``keys rotate-index`` replaced the key while the daemon runs)."""
        from pbx_recorder.hash_key import key_files_stamp

        stamp = key_files_stamp(self.hash_key_file)
        if stamp != self._stamp:
            self._stamp, self._key = stamp, None
            self._tombstones = None
            tomb = self._tomb()
        return lookup_keys(self._hash_key(tomb))

    def _erasures(self, conn: Any, hashes_of: Callable[[bytes], list[str]]
                  ) -> tuple[list[tuple[float, str, str]], list[str]]:
        """Erasures of the keyed hashes ``hashes_of(key)`` names, from this host's tombstone file
        and from the catalog (an erasure run on another node sharing it), and those hashes; both
        empty while nothing was ever erased (the key is not even read then)."""
        tomb = self._tomb()
        shared = conn is not None and shared_tombstones.any_recorded(conn)
        if tomb is None and not shared:
            return [], []
        # under the current key, and the previous one while a blind-index key rotation runs
        hashes = [h for key in self._lookup_keys(tomb) for h in hashes_of(key)]
        found = set(tomb.erasures(hashes) if tomb is not None else [])
        if shared:
            found.update(shared_tombstones.erasures(conn, hashes))
        return sorted(found, reverse=True), hashes

    # -- decisions ---------------------------------------------------------------------
    def verdict(self, conn: sqlite3.Connection, call_id: str, content: Any, started_at: float | None,
                recording_id: str = "") -> policy.LateCopyVerdict:
        if not call_id:
            return KEEP

        def hashes_of(key: bytes) -> list[str]:
            return [policy.subject_hash(key, call_id)] + [
                policy.subject_hash(key, n) for n in sorted(policy.numbers_in(content))]

        erasures, hashes = self._erasures(conn, hashes_of)
        if not erasures:
            return KEEP
        held = self.hold(conn, call_id, recording_id, set(hashes)) is not None
        return policy.late_copy_verdict(erasures, started_at, held=held)

    @staticmethod
    def hold(conn: sqlite3.Connection, call_id: str, recording_id: str,
             hashes: set[str]) -> tuple[str, str] | None:
        """An active legal hold on the recording, the call or a number the copy names."""
        if recording_id:
            hit = conn.execute(
                "SELECT h.hold_id, h.reason FROM hold_recordings hr JOIN holds h ON h.hold_id=hr.hold_id"
                " WHERE hr.recording_id=? AND h.released_at IS NULL LIMIT 1", (recording_id,)).fetchone()
            if hit:
                return str(hit[0]), str(hit[1])
        for hold_id, scope, value, reason in conn.execute(
                "SELECT hold_id, scope, value, reason FROM holds WHERE released_at IS NULL"
                " AND scope IN ('call','caller') ORDER BY created_at"):
            if (scope == "call" and value == call_id) or (
                    scope == "caller" and any(v in hashes for v in value.split(SUBJECT_SEPARATOR))):
                return str(hold_id), str(reason)
        return None

    # -- the writers' questions -----------------------------------------------------------
    def admit_call_row(self, conn: sqlite3.Connection, row: Mapping[str, Any]) -> bool:
        call_id = str(row.get("call_id") or "")
        v = self.verdict(conn, call_id, dict(row), _float(row.get("started_at")))
        if v.action != "destroy":
            return True
        self._destroyed(conn, v, call_id, "call_row")
        return False

    def admit_snapshot(self, conn: sqlite3.Connection, call_id: str,
                       snapshot: Mapping[str, Any] | str) -> bool:
        data = snapshot if isinstance(snapshot, Mapping) else json_object(snapshot)
        v = self.verdict(conn, call_id, snapshot, _float(data.get("created_at")))
        if v.action != "destroy":
            return True
        self._destroyed(conn, v, call_id, "live_call_snapshot")
        return False

    def call_destroyed(self, call_id: str, conn: Any = None) -> bool:
        """The call itself was erased (by call id, or destroyed on arrival): write nothing of it."""
        if not call_id:
            return False
        erasures, _ = self._erasures(conn, lambda key: [policy.subject_hash(key, call_id)])
        return bool(erasures)

    def admit_spool_entry(self, catalog: Catalog, entry: SpoolEntry) -> bool:
        """Shipper arrival check; False: the shipper removes the entry without storing it."""
        m, rid = entry.manifest, entry.recording_id
        call = catalog.get_call(m.call_id) or {}
        started = _float(call.get("started_at"))
        started = started if started is not None else _float(m.recorded_from or m.created_at or None)
        content = [m.to_dict(), {k: call.get(k) for k in ("caller_num", "callee_num", "did", "cdr")}]
        conn = connection_of(catalog)
        v = self.verdict(conn, m.call_id, content, started, rid)
        if v.action == "withhold":
            self._withheld(conn, v, rid, m.call_id, m.audio_sha256)
        if v.action != "destroy":
            return True
        self._destroyed(conn, v, m.call_id, "spool", rid, m.audio_sha256)
        return False

    def erasure_of_leftover(self, conn: sqlite3.Connection, call_id: str, recording_id: str) -> str:
        """The erasure request that removed the call a leftover file on this node belongs to (an
        orphan in the monitor folder, a quarantined original), run here or on another node sharing
        the catalog; '' when the file must be kept.  Only a call the erasure really removed: its
        call id is tombstoned (an erasure by call id, or one of the calls an erasure by number
        removed), no row of the call is left, and no row of the recording but an erased one.  A
        call ``erase`` withheld keeps its rows (a legal hold of any kind, the flag), and so its
        leftovers; a hold on the call or the recording found now keeps them too.  An erasure by
        call id names that very call (``policy.late_copy_verdict``): never a new one."""
        if not call_id:
            return ""
        if conn.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone() is not None:
            return ""
        if recording_id:
            row = conn.execute("SELECT state FROM recordings WHERE recording_id = ?",
                               (recording_id,)).fetchone()
            if row is not None and row[0] not in ("erased", "deleted"):
                return ""
        erasures, hashes = self._erasures(conn, lambda key: [policy.subject_hash(key, call_id)])
        if not erasures or self.hold(conn, call_id, recording_id, set(hashes)) is not None:
            return ""
        return str(erasures[0][1])

    @staticmethod
    def erased_call_of(conn: sqlite3.Connection, recording_id: str) -> str:
        """The call of an erased recording, from the ledger's ``erased`` entry (its payload names
        the call): what ties a leftover whose note is lost to its call once the erasure removed
        the recording's row.  '' when the ledger names none, or names a call ``recording_id`` is
        not one of the recordings of (``<call_id>_<kind><seq>``): an entry of another call never
        ties a file."""
        row = conn.execute("SELECT payload FROM ledger WHERE recording_id = ? AND event = 'erased' "
                           "ORDER BY seq DESC LIMIT 1", (recording_id,)).fetchone()
        payload = json_object(str(row[0] or "")) if row is not None else {}
        found = payload.get("call_id")
        return found if isinstance(found, str) and found and recording_id.startswith(found + "_") else ""

    def leftover_deleted(self, conn: sqlite3.Connection, request_id: str, call_id: str, recording_id: str,
                         copy: str, at: float | None = None) -> None:
        """After the file is gone: the erasure request's receipt lists it under ``late_copies``
        (``copy``: ``orphan`` or ``spool_quarantine``), once; ``at``: when it was deleted (a line
        written late, ``lifecycle.receipt_backlog``), else now."""
        item = {"call_id": call_id, "copy": copy, "recording_id": recording_id,
                "at": self.clock() if at is None else at,
                "action": "destroyed", "data_key": "none: a file on this node's disk, never stored"}
        with Tx(conn):
            new = self._update_receipt(conn, request_id, item)
        if new:
            log.warning("erasure %s: leftover of call=%s rec=%s (%s) on this node deleted: "
                        "the call was erased", request_id, call_id, recording_id or "-", copy)

    # -- what is recorded ------------------------------------------------------------------
    def _destroyed(self, conn: sqlite3.Connection, v: policy.LateCopyVerdict, call_id: str, copy: str,
                   recording_id: str = "", sha256: str = "") -> None:
        assert v.erased_at is not None
        tomb = self._tomb() or Tombstones(path_beside(self.hash_key_file), self._hash_key(None))
        pair = [("call_id", policy.subject_hash(key, call_id)) for key in lookup_keys(tomb.hash_key)]
        tomb.add(pair, request_id=v.request_id, now=v.erased_at)  # this host's file (a restore here)
        with Tx(conn):
            shared_tombstones.record(conn, pair, request_id=v.request_id, now=v.erased_at)
        self._tombstones = None  # the file may exist now: read it again
        now = self.clock()
        item = {"call_id": call_id, "copy": copy, "recording_id": recording_id, "at": now,
                "action": "destroyed",
                "data_key": "never made: removed before encryption" if recording_id else "none"}
        with Tx(conn):
            conn.execute("DELETE FROM live_calls WHERE call_id=?", (call_id,))
            if recording_id:
                for table in ("lifecycle_moves", "hold_recordings", "recordings"):
                    conn.execute(f"DELETE FROM {table} WHERE recording_id=?", (recording_id,))
                forget_recording(conn, recording_id)
                if not conn.execute("SELECT 1 FROM recordings WHERE call_id=?", (call_id,)).fetchone():
                    if conn.execute("DELETE FROM calls WHERE call_id=? AND seal != ''", (call_id,)).rowcount:
                        call_seal.record_removed(conn, call_id, f"erasure {v.request_id} (late copy)", now)
                    conn.execute("DELETE FROM calls WHERE call_id=?", (call_id,))
                    forget_call(conn, call_id)
                if not _logged(conn, recording_id, "erasure_late_copy", v.request_id):
                    conn.execute(
                        "INSERT INTO deletion_log (at, recording_id, call_id, sha256, reason, policy, actor)"
                        " VALUES (?,?,?,?,?,?,?)",
                        (now, recording_id, call_id, sha256, "erasure_late_copy", v.request_id, ACTOR))
                    default_ledger()(conn, "erased", recording_id,
                                     {"request_id": v.request_id, "call_id": call_id, "sha256": sha256,
                                      "late_copy": copy}, now)
            new = self._update_receipt(conn, v.request_id, item)
        if new:
            log.warning("erasure %s: late copy of call=%s (%s%s) destroyed on arrival: the call was live "
                        "when the erasure ran", v.request_id, call_id, copy,
                        f" rec={recording_id}" if recording_id else "")

    def _update_receipt(self, conn: sqlite3.Connection, request_id: str, item: Mapping[str, Any],
                        withheld: Mapping[str, Any] | None = None) -> bool:
        """Add the copy to the request's receipt; False when it is there already (or no request)."""
        found = conn.execute("SELECT receipt FROM erasure_requests WHERE request_id=?",
                             (request_id,)).fetchone()
        if found is None:  # a catalog restored from before the request: the tombstones still apply
            return False
        receipt = json_object(found[0] or "{}")
        late = receipt.setdefault("late_copies", [])
        same = [e for e in late if (e.get("call_id"), e.get("copy"), e.get("recording_id"))
                == (item["call_id"], item["copy"], item["recording_id"])]
        if same:
            return False
        late.append(dict(item))
        copies = receipt.setdefault("copies", {})
        if item["recording_id"] and item["action"] == "destroyed":
            where = _COPY_LABELS.get(str(item["copy"]), str(item["copy"]))
            copies["deleted"] = sorted([*copies.get("deleted", []), f"{where}:{item['recording_id']}"])
            counter = "late_recordings_destroyed" if item["copy"] == "spool" else "late_leftovers_deleted"
            receipt[counter] = int(receipt.get(counter, 0)) + 1
        if withheld is not None:
            receipt.setdefault("withheld", []).append(dict(withheld))
            receipt["status"] = "refused_partial"
            conn.execute("UPDATE erasure_requests SET status='refused_partial' WHERE request_id=?",
                         (request_id,))
        conn.execute("UPDATE erasure_requests SET receipt=? WHERE request_id=?",
                     (json.dumps(receipt, sort_keys=True), request_id))
        return True

    def _withheld(self, conn: sqlite3.Connection, v: policy.LateCopyVerdict, recording_id: str, call_id: str,
                  sha256: str) -> None:
        hold = self.hold(conn, call_id, recording_id, set())
        hold_id, reason = hold or ("", "legal hold on the subject")
        now = self.clock()
        why = f"erasure {v.request_id}; legal hold {hold_id or '-'}: {reason} (late copy)"
        item = {"call_id": call_id, "copy": "spool", "recording_id": recording_id, "at": now,
                "action": "withheld"}
        withheld = {"recording_id": recording_id, "call_id": call_id, "hold_id": hold_id,
                    "reason": f"legal hold (arrived after the erasure): {reason}"}
        with Tx(conn):
            if not _logged(conn, recording_id, "erasure_withheld", why):
                conn.execute(
                    "INSERT INTO deletion_log (at, recording_id, call_id, sha256, reason, policy, actor)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (now, recording_id, call_id, sha256, "erasure_withheld", why, ACTOR))
            new = self._update_receipt(conn, v.request_id, item, withheld)
        if new:
            log.warning("erasure %s: late copy of call=%s rec=%s withheld: %s", v.request_id, call_id,
                        recording_id, reason)


class ErasureAwareCatalog(Catalog):
    """The daemon's catalog: call rows, live-call snapshots and recording rows of an erased
    subject's call that was live during the erasure are not written (:class:`LateCopyGuard`)."""

    def __init__(self, path: str | Path, *, guard: LateCopyGuard, **kw: Any) -> None:
        super().__init__(path, **kw)
        self.guard = guard

    def upsert_call(self, row: Mapping[str, Any]) -> None:
        if self.guard.admit_call_row(self._conn(), row):
            super().upsert_call(row)

    def save_live_call(self, call_id: str, snapshot: Mapping[str, Any] | str) -> None:
        if self.guard.admit_snapshot(self._conn(), call_id, snapshot):
            super().save_live_call(call_id, snapshot)

    def upsert_recording(self, row: Mapping[str, Any]) -> None:
        if self.guard.call_destroyed(str(row.get("call_id") or ""), self._conn()):
            log.info("call=%s rec=%s: erased, recording row not written", row.get("call_id"),
                     row.get("recording_id"))
            return
        super().upsert_recording(row)


def _logged(conn: sqlite3.Connection, recording_id: str, reason: str, policy_text: str) -> bool:
    return conn.execute("SELECT 1 FROM deletion_log WHERE recording_id=? AND reason=? AND policy=?",
                        (recording_id, reason, policy_text)).fetchone() is not None


def _float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None
