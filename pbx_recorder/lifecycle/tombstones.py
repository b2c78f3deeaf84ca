"""Erasure tombstones: what was erased, as keyed hashes only, kept outside every backup.

One JSON object per line, ``{"hmac": "hmac-sha256:...", "kind": "number" | "call_id",
"request_id": ..., "at": ...}``, in a 0600 file beside the privacy HMAC key (both are needed
to use it; escrow them together).  Never a number, never a call id in clear.

``apply`` runs on a restored catalog (``catalog restore``): every call whose caller number,
callee number or call id hashes to a tombstone is removed with its recordings (their data keys
with them), and audit rows quoting such a number get it replaced by its keyed hash -- so a
backup older than an erasure never brings the subject back.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pbx_recorder import call_seal
from pbx_recorder.lifecycle import policy
from storage import atomic

FILE_NAME = "erasure-tombstones.jsonl"
_NUMBER_RUN = re.compile(r"\+?\d[\d ()./-]{3,}\d")
_TABLES_BY_RECORDING = ("lifecycle_moves", "hold_recordings", "recordings")


def path_beside(hash_key_file: str | Path) -> Path:
    return Path(hash_key_file).with_name(FILE_NAME)


class Tombstones:
    def __init__(self, path: str | Path, hash_key: bytes) -> None:
        self.path = Path(path)
        self.hash_key = hash_key

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def hashes(self) -> set[str]:
        return {str(e["hmac"]) for e in self.entries()}

    def add(self, hashes: Iterable[tuple[str, str]], *, request_id: str, now: float) -> int:
        """Record ``(kind, hmac)`` pairs (idempotent); the file is rewritten atomically, 0600."""
        known = self.hashes()
        new = [{"hmac": h, "kind": kind, "request_id": request_id, "at": now}
               for kind, h in dict.fromkeys(hashes) if h not in known]
        if not new:
            return 0
        for h in (e["hmac"] for e in new):
            if not str(h).startswith("hmac-sha256:"):
                raise ValueError("a tombstone holds keyed hashes only")
        lines = [json.dumps(e, sort_keys=True) for e in [*self.entries(), *new]]
        atomic.write_bytes(self.path, ("\n".join(lines) + "\n").encode())
        return len(new)

    def _erased(self, call: sqlite3.Row | tuple[Any, ...], dead: set[str]) -> bool:
        call_id, caller, callee = call[0], call[1], call[2]
        candidates = [policy.subject_hash(self.hash_key, call_id)]
        candidates += [policy.number_hash(self.hash_key, n) for n in (caller, callee) if n]
        return any(c in dead for c in candidates)

    def apply(self, conn: sqlite3.Connection) -> int:
        """Remove tombstoned calls from ``conn`` (a restored catalog); returns how many."""
        dead = self.hashes()
        if not dead:
            return 0
        calls = [c[0] for c in conn.execute("SELECT call_id, caller_num, callee_num FROM calls")
                 if self._erased(c, dead)]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for call_id in calls:
                rids = [r[0] for r in conn.execute("SELECT recording_id FROM recordings WHERE call_id=?",
                                                   (call_id,))]
                for rid in rids:
                    for table in _TABLES_BY_RECORDING:
                        conn.execute(f"DELETE FROM {table} WHERE recording_id=?", (rid,))
                conn.execute("DELETE FROM live_calls WHERE call_id=?", (call_id,))
                if conn.execute("DELETE FROM calls WHERE call_id=? AND seal != ''", (call_id,)).rowcount:
                    call_seal.record_removed(conn, call_id, "erased (tombstone on restore)", time.time())
                conn.execute("DELETE FROM calls WHERE call_id=?", (call_id,))
            self._redact_audit(conn, dead)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return len(calls)

    def _redact_audit(self, conn: sqlite3.Connection, dead: set[str]) -> None:
        def redact(text: str) -> str:
            def one(m: re.Match[str]) -> str:
                h = policy.number_hash(self.hash_key, m.group(0))
                return h if h in dead else m.group(0)
            return _NUMBER_RUN.sub(one, text)

        for row_id, target, detail in conn.execute("SELECT id, target, detail FROM audit_log").fetchall():
            new_target, new_detail = redact(target or ""), redact(detail or "")
            if (new_target, new_detail) != (target, detail):
                conn.execute("UPDATE audit_log SET target=?, detail=? WHERE id=?",
                             (new_target, new_detail, row_id))
