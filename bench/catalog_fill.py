"""A catalog of N calls for the whole-catalog operations (bench and scale tests).

Each call has one stored recording with a ~600-byte signed-manifest-shaped JSON and its
``stored`` ledger entry (chained by ``ledger.append``, as the shipper's hook writes it).  Every
``subject_every``-th call is from ``SUBJECT`` (erasure), every ``held_every``-th (counted
from 1) from ``HELD`` (legal hold by caller).  Recordings are old enough to be due for cold
storage and half are past retention.  ``StatTier`` answers every object as present with the recorded size and
server checksum (what an S3 tier with ChecksumSHA256 answers), so ``verify`` measures the
catalog side rather than a disk; it remembers deletions so erasure can prove them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from pbx_recorder.recording import ledger
from storage.base import ObjectInfo, StoredObject

SUBJECT = "+8613800138000"
HELD = "+8613900139000"
SIZE = 1000
SHA = hashlib.sha256(b"audio").hexdigest()
DAY = 86400.0


class StatTier:
    def __init__(self, name: str = "hot") -> None:
        self.name = name
        self.deleted: set[str] = set()

    def stat(self, key: str) -> ObjectInfo | None:
        if key in self.deleted:
            return None
        return ObjectInfo(self.name, key, SIZE, server_sha256=SHA)

    def delete(self, key: str) -> int:
        self.deleted.add(key)
        return 1

    def set_legal_hold(self, key: str, on: bool) -> bool:
        return False

    def put(self, key: str, source: Any, **_: Any) -> StoredObject:  # not used by the measured paths
        raise NotImplementedError("StatTier stores nothing")


def _manifest(rid: str, cid: str, caller: str) -> str:
    return json.dumps({"recording_id": rid, "call_id": cid, "files": [{"sha256": SHA, "size": SIZE}],
                       "cdr": {"src": caller, "dst": "4000", "disposition": "ANSWERED", "billsec": 42,
                               "lastapp": "Queue", "lastdata": "sales,t,,,300", "accountcode": "cc1"},
                       "processing": {"encrypted": False, "pipeline": ["wav"]},
                       "consent": {"decision": "granted", "prompt": "consent-zh", "digit": "1"},
                       "node": "n1", "agent": "agent-042", "queue": "sales"}, sort_keys=True)


def fill(conn: sqlite3.Connection, n: int, *, now: float, start: int = 0, subject_every: int = 1000,
         held_every: int = 997, batch: int = 5000) -> None:
    """Append calls ``start`` .. ``start + n - 1`` (committed every ``batch``)."""
    for first in range(start, start + n, batch):
        conn.execute("BEGIN")
        for i in range(first, min(first + batch, start + n)):
            cid, rid = f"c{i:08d}", f"r{i:08d}"
            caller = SUBJECT if i % subject_every == 0 else HELD if i % held_every == 1 else \
                f"+86138{i % 2_000_000:08d}"
            created = now - (400 - (i % 300)) * DAY  # 100..400 days old: due for cold, half expired
            key = f"2026/01/{cid}/{rid}.wav"
            conn.execute("INSERT INTO calls (call_id, caller_num, callee_num, queue, agent, started_at, "
                         "retention_class, status, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                         (cid, caller, "4000", "sales", "agent-042", created, "standard", "answered",
                          created))
            conn.execute("INSERT INTO recordings (recording_id, call_id, state, size, sha256, audio_sha256, "
                         "tier, storage_key, manifest, retention_class, retain_until, created_at, stored_at) "
                         "VALUES (?,?,'stored',?,?,?,?,?,?,'standard',?,?,?)",
                         (rid, cid, SIZE, SHA, SHA, "hot", key, _manifest(rid, cid, caller),
                          created + 250 * DAY, created, created))
            ledger.append(conn, "stored", rid, {"tier": "hot", "key": key, "sha256": SHA, "size": SIZE,
                                                "audio_sha256": SHA, "encrypted": False, "key_id": ""},
                          created)
        conn.execute("COMMIT")
