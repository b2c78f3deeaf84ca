"""Erasure tombstones: what was erased, as keyed hashes only, kept outside every backup.

One JSON object per line, ``{"hmac": "hmac-sha256:...", "kind": "number" | "call_id",
"request_id": ..., "at": ...}``, in a 0600 file beside the privacy HMAC key (both are needed
to use it; escrow them together).  Never a number, never a call id in clear.  ``at`` is the
erasure time (a re-run of the same request moves it on); one entry per hash and request.  An
entry with ``"restore": false`` (the subject of a partial erasure: a held call must survive a
restore) is not applied on restore; it only serves ``erasures``.

``erasures`` is what the recorder asks when a copy arrives after an erasure
(``lifecycle.late_copies``): a call of an erased subject that started before the erasure is
destroyed on arrival, one that started after it is a new call.

``apply`` runs on a restored catalog (``catalog restore``), with the tombstones of this file and
those the shared catalog holds (``lifecycle.shared_tombstones``: erasures made on other nodes):
every call whose caller number, callee number or call id hashes to a tombstone is removed with
its recordings (their data keys with them), and audit rows quoting such a number get it replaced
by its keyed hash -- so a backup older than an erasure never brings the subject back.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pbx_recorder.catalog import engine
from pbx_recorder.catalog.marks import forget_call, forget_recording
from pbx_recorder.catalog.number_protection import lookup_keys
from pbx_recorder.lifecycle import policy, shared_tombstones
from pbx_recorder.recording import call_seal
from storage import atomic

FILE_NAME = "erasure-tombstones.jsonl"
_NUMBER_RUN = re.compile(r"\+?\d[\d ()./-]{3,}\d")
_DIGITS = re.compile(r"\d{5,}")  # (protected_rows.MIN_NAMED_DIGITS: what erasure indexes as a number)
_TABLES_BY_RECORDING = ("lifecycle_moves", "hold_recordings", "recordings")


def path_beside(hash_key_file: str | Path) -> Path:
    return Path(hash_key_file).with_name(FILE_NAME)


class Tombstones:
    def __init__(self, path: str | Path, hash_key: bytes) -> None:
        self.path = Path(path)
        self.hash_key = hash_key
        self._cache: tuple[tuple[int, int, int], dict[str, list[dict[str, Any]]]] | None = None

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def hashes(self) -> set[str]:
        """The hashes a restored catalog is scrubbed of."""
        return {str(e["hmac"]) for e in self.entries() if e.get("restore", True)}

    def erasures(self, hashes: Iterable[str]) -> list[tuple[float, str, str]]:
        """``(erased at, request id, kind)`` of every erasure of one of ``hashes``, latest first
        (the file is read again only when it changed: the daemon asks on every call update)."""
        index = self._index()
        found = {(float(e["at"]), str(e["request_id"]), str(e["kind"]))
                 for h in dict.fromkeys(hashes) for e in index.get(h, ())}
        return sorted(found, reverse=True)

    def _index(self) -> dict[str, list[dict[str, Any]]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != stamp:
            index: dict[str, list[dict[str, Any]]] = {}
            for e in self.entries():
                index.setdefault(str(e["hmac"]), []).append(e)
            self._cache = (stamp, index)
        return self._cache[1]

    def add(self, hashes: Iterable[tuple[str, str]], *, request_id: str, now: float,
            restore: bool = True) -> int:
        """Record ``(kind, hmac)`` pairs erased at ``now`` by ``request_id`` (a re-run moves the
        time on; a restore-applied entry is never turned into a live-only one); the file is
        rewritten atomically, 0600.  Returns how many entries were added or moved on."""
        pairs = list(dict.fromkeys(hashes))
        for _, h in pairs:
            if not str(h).startswith("hmac-sha256:"):
                raise ValueError("a tombstone holds keyed hashes only")
        if not pairs:
            return 0
        # the CLI (erase) and the daemon (late copies) both add: one writer at a time
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return self._add_locked(pairs, request_id, now, restore)
        finally:
            os.close(fd)

    def _add_locked(self, pairs: list[tuple[str, str]], request_id: str, now: float, restore: bool) -> int:
        entries = self.entries()
        mine = {(str(e["hmac"]), str(e["request_id"])): e for e in entries}
        changed = 0
        for kind, h in pairs:
            e = mine.get((h, request_id))
            if e is None:
                e = {"hmac": h, "kind": kind, "request_id": request_id, "at": now}
                if not restore:
                    e["restore"] = False
                entries.append(e)
                mine[(h, request_id)] = e
                changed += 1
            elif float(e["at"]) < now or (restore and e.get("restore", True) is False):
                e["at"] = max(float(e["at"]), now)
                if restore:
                    e.pop("restore", None)
                changed += 1
        if changed:
            lines = [json.dumps(e, sort_keys=True) for e in entries]
            atomic.write_bytes(self.path, ("\n".join(lines) + "\n").encode())
        return changed

    def _erased(self, call: sqlite3.Row | tuple[Any, ...], dead: set[str]) -> bool:
        call_id, caller, callee = call[0], call[1], call[2]
        candidates = []
        for key in lookup_keys(self.hash_key):  # both while a blind-index key rotation runs
            candidates.append(policy.subject_hash(key, call_id))
            candidates += [policy.number_hash(key, n) for n in (caller, callee) if n]
        return any(c in dead for c in candidates)

    def _live_only(self, conn: sqlite3.Connection, dead: set[str]) -> set[str]:
        """Saved live-call snapshots of an erased call that has no catalog row (an erasure while the
        call was live tombstones its call id: ``Eraser._purge_live``); a backup taken before the
        erasure still holds the snapshot, and the number in it."""
        if not engine.table_columns(conn, "live_calls"):
            return set()
        return {r[0] for r in conn.execute("SELECT call_id FROM live_calls")
                if self._erased((r[0], None, None), dead)}

    @staticmethod
    def _named(conn: sqlite3.Connection, dead: set[str]) -> set[str]:
        """Calls that name a tombstoned number besides their own caller and callee (``call_numbers``,
        keyed by the number's full-number index: one lookup each)."""
        found: set[str] = set()
        hashes = sorted(dead)
        for start in range(0, len(hashes), 300):
            chunk = hashes[start:start + 300]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT call_id FROM call_numbers WHERE bi IN ({marks})"
            found |= {r[0] for r in conn.execute(sql, chunk)}
        return found

    def apply(self, conn: sqlite3.Connection, extra: Iterable[str] = ()) -> int:
        """Remove tombstoned calls from ``conn`` (a restored catalog); returns how many.  Applied:
        this file, ``extra`` (the live catalog's shared tombstones: erasures made on any node,
        ``catalog restore``) and the shared tombstones the restored catalog itself holds."""
        dead = self.hashes() | set(extra) | shared_tombstones.restore_hashes(conn)
        if not dead:
            return 0
        # every call is read once (call-id tombstones), its own two full-number indexes with it: since
        # schema 15 no index is keyed by them alone (the number's last 4 digits, which would find
        # it, are not in a tombstone)
        indexed = "caller_bi" in engine.table_columns(conn, "calls")  # (a backup before schema 6: in clear)
        scan = conn.execute("SELECT call_id, caller_num, callee_num"
                            + (", caller_bi, callee_bi" if indexed else "") + " FROM calls")
        calls = sorted((self._named(conn, dead) if indexed else set()) | {
            c[0] for c in scan if self._erased(c, dead) or (indexed and (c[3] in dead or c[4] in dead))}
            | self._live_only(conn, dead))
        conn.execute("BEGIN IMMEDIATE")
        try:
            for call_id in calls:
                rids = [r[0] for r in conn.execute("SELECT recording_id FROM recordings WHERE call_id=?",
                                                   (call_id,))]
                for rid in rids:
                    for table in _TABLES_BY_RECORDING:
                        conn.execute(f"DELETE FROM {table} WHERE recording_id=?", (rid,))
                    forget_recording(conn, rid)
                conn.execute("DELETE FROM live_calls WHERE call_id=?", (call_id,))
                if conn.execute("DELETE FROM calls WHERE call_id=? AND seal != ''", (call_id,)).rowcount:
                    call_seal.record_removed(conn, call_id, "erased (tombstone on restore)", time.time())
                conn.execute("DELETE FROM calls WHERE call_id=?", (call_id,))
                forget_call(conn, call_id)
            self._redact_audit(conn, dead)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return len(calls)

    def _redact_audit(self, conn: sqlite3.Connection, dead: set[str]) -> None:
        keys = lookup_keys(self.hash_key)

        def erased(number: str) -> str | None:
            for key in keys:
                for form in (number, "+" + number.lstrip("+")):  # (written with or without its +)
                    h = policy.number_hash(key, form)
                    if h in dead:
                        return h
            return None

        def redact(text: str) -> str:
            def one(m: re.Match[str]) -> str:
                # the whole run, else each plain run of digits inside it (a number glued to a
                # channel's suffix or another number: SIP/<number>-00000001, '<number> 12345')
                whole = erased(m.group(0))
                if whole is not None:
                    return whole
                return _DIGITS.sub(lambda d: erased(d.group(0)) or d.group(0), m.group(0))
            return _NUMBER_RUN.sub(one, text)

        for row_id, target, detail in conn.execute("SELECT id, target, detail FROM audit_log").fetchall():
            new_target, new_detail = redact(target or ""), redact(detail or "")
            if (new_target, new_detail) != (target, detail):
                conn.execute("UPDATE audit_log SET target=?, detail=? WHERE id=?",
                             (new_target, new_detail, row_id))
