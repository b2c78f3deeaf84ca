"""Realistic calls for bench_catalog.py: one deterministic generator feeds both the project's
catalog (call row + stored recording, as the daemon and the shipper build them) and Asterisk's
default ``cdr`` table (the baseline), so both hold the same calls.

Scaled from the issue's 10M-call figure: 2M distinct Chinese mobile callers per 10M calls (a few
heavy callers, many occasional ones), 500 agents, 20 queues, 24 months, tags on some calls.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pbx_recorder.catalog.repository import StoredRecording
from pbx_recorder.core import naming
from pbx_recorder.recording import recording_objects
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.shipper import ShipRecord
from storage.base import StoredObject

SPAN = 730 * 86400.0  # 24 months
AGENTS = [f"agent{i:03d}" for i in range(500)]
QUEUES = [
    "sales",
    "support",
    "billing",
    "claims",
    "cards",
    "loans",
    "fraud",
    "vip",
    "mortgage",
    "retention",
    "collections",
    "savings",
    "invest",
    "insurance",
    "corporate",
    "sme",
    "complaints",
    "tech",
    "online",
    "en",
]
STATUSES = (
    ("answered", "ANSWERED", 72),
    ("no_answer", "NO ANSWER", 18),
    ("busy", "BUSY", 6),
    ("failed", "FAILED", 4),
)
CONSENTS = (
    ("granted", 62),
    ("not_required", 25),
    ("refused", 5),
    ("timeout", 4),
    ("hangup", 3),
    ("invalid", 1),
)
TAGS = (("sales-lead", 10), ("vip", 8), ("complaint", 3), ("callback", 2), ("escalated", 1))
MOBILE = (
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "177",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "198",
    "199",
)
DIDS = ("4008001234", "4008005678", "02161234567", "01065432100")
CDR_SCHEMA = """
CREATE TABLE IF NOT EXISTS cdr (
    calldate    TEXT NOT NULL DEFAULT '0000-00-00 00:00:00',
    clid        TEXT NOT NULL DEFAULT '', src TEXT NOT NULL DEFAULT '', dst TEXT NOT NULL DEFAULT '',
    dcontext    TEXT NOT NULL DEFAULT '', channel TEXT NOT NULL DEFAULT '',
    dstchannel  TEXT NOT NULL DEFAULT '',
    lastapp     TEXT NOT NULL DEFAULT '', lastdata TEXT NOT NULL DEFAULT '',
    duration    INTEGER NOT NULL DEFAULT 0, billsec INTEGER NOT NULL DEFAULT 0,
    disposition TEXT NOT NULL DEFAULT '', amaflags INTEGER NOT NULL DEFAULT 0,
    accountcode TEXT NOT NULL DEFAULT '', uniqueid TEXT NOT NULL DEFAULT '',
    userfield   TEXT NOT NULL DEFAULT '',
    linkedid    TEXT NOT NULL DEFAULT '', peeraccount TEXT NOT NULL DEFAULT '',
    sequence    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS calldate ON cdr(calldate);
"""  # Asterisk's cdr table (contrib MySQL/alembic layout) with its one index, on calldate


def _weighted(rnd: random.Random, table: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    pick = rnd.uniform(0, sum(t[-1] for t in table))
    for entry in table:
        pick -= entry[-1]
        if pick <= 0:
            return entry
    return table[-1]


def caller_number(index: int) -> str:
    digest = hashlib.blake2b(index.to_bytes(8, "big"), digest_size=8).digest()
    return MOBILE[digest[0] % len(MOBILE)] + f"{int.from_bytes(digest[1:], 'big') % 10**8:08d}"


def cdr_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class Generated:
    call: dict[str, Any]
    recording: StoredRecording
    cdr: tuple[Any, ...]


class CallGenerator:
    def __init__(self, total: int, now: float, seed: int = 1) -> None:
        self.total, self.now = total, now
        self.callers = max(100, total // 5)  # 2M distinct callers per 10M calls
        self.seed, self.rnd = seed, random.Random(seed)

    def caller(self, rnd: random.Random) -> str:
        return caller_number(int(self.callers * rnd.random() ** 2))  # heavy callers first

    def calls(
        self, start: int = 0, count: int | None = None, *, at: float | None = None, batch_seed: bool = False
    ) -> Iterator[Generated]:
        """Calls ``start .. start+count`` in time order over 24 months (``at``: all at that time).
        ``batch_seed``: the draws seeded by ``start`` (the same calls in every run, whatever came
        before: a resumed fill makes the batches it did not write yet as a whole run would)."""
        end = self.total if count is None else start + count
        if batch_seed:
            self.rnd = random.Random(f"{self.seed}:{start}")
        for i in range(start, end):
            started = at if at is not None else self.now - SPAN + (i + self.rnd.random()) * SPAN / self.total
            yield self.one(i, started)

    def one(self, i: int, started: float) -> Generated:
        rnd = self.rnd
        status, disposition, _ = _weighted(rnd, STATUSES)
        consent = _weighted(rnd, CONSENTS)[0]
        tags = [t for t, pct in TAGS if rnd.random() * 100 < pct]
        agent, queue = rnd.choice(AGENTS), rnd.choice(QUEUES)
        inbound = rnd.random() < 0.8
        caller = self.caller(rnd) if inbound else "8001" + f"{AGENTS.index(agent):03d}"
        callee = rnd.choice(DIDS) if inbound else self.caller(rnd)
        answered = started + rnd.uniform(2, 30) if status == "answered" else None
        billsec = int(rnd.expovariate(1 / 240)) if answered else 0
        ended = (answered or started + 20) + billsec
        linkedid = f"{int(started)}.{i}"
        call_id = naming.make_call_id("pbx1", linkedid)
        cdr = {
            "start": cdr_time(started),
            "answer": cdr_time(answered) if answered else "",
            "end": cdr_time(ended),
            "duration": int(ended - started),
            "billsec": billsec,
            "src": caller,
            "dst": callee,
            "disposition": disposition,
            "accountcode": "bank",
            "queue": queue,
            "agent": agent,
        }
        evidence = {
            "decision": consent,
            "digit": "1" if consent == "granted" else "",
            "language": "zh",
            "prompt": "zh/consent-1",
            "at": started + 1.5,
        }
        call = {
            "call_id": call_id,
            "pbx_node": "pbx1",
            "linkedid": linkedid,
            "uniqueids": [linkedid],
            "direction": "inbound" if inbound else "outbound",
            "caller_num": caller,
            "caller_name": "",
            "callee_num": callee,
            "did": callee if inbound else "",
            "queue": queue,
            "agent": agent,
            "region": "cn",
            "accountcode": "bank",
            "started_at": started,
            "answered_at": answered,
            "ended_at": ended,
            "duration": int(ended - started),
            "billsec": billsec,
            "disposition": disposition,
            "status": status,
            "rule": "all-inbound" if inbound else "outbound",
            "record_decision": "record",
            "consent_decision": consent,
            "consent": evidence,
            "tags": tags,
            "rule_tags": tags,  # as the recorder writes it (core.call_model.call_row): sealed
            "retention_class": "standard",
            "cdr": cdr,
            "flags": [],
            "updated_at": ended,
        }
        rid = naming.make_recording_id(call_id, "call", 1)
        key = naming.storage_key(call_id, rid, started, "opus", "cn")
        audio = hashlib.sha256(rid.encode()).hexdigest()
        size = 2000 * max(billsec, 1)
        wrapped = base64.b64encode(hashlib.sha512(rid.encode()).digest()[:60]).decode()
        processing = {"format": "opus", "encrypted": True, "key_id": "catalog-2026", "wrapped_key": wrapped}
        manifest = Manifest(
            recording_id=rid,
            call_id=call_id,
            linkedid=linkedid,
            uniqueids=(linkedid,),
            files=(ManifestFile(f"{rid}.wav", size * 8, audio, float(billsec)),),
            cdr=cdr,
            consent=evidence,
            rule=call["rule"],
            tags=tuple(tags),
            retention_class="standard",
            region="cn",
            callee_num=callee,
            did=call["did"],
            recorded_from=answered or started,
            recorded_to=ended,
            created_at=ended,
            processing=processing,
        )
        obj = StoredObject("hot", key, size, hashlib.sha256(key.encode()).hexdigest(), "STANDARD")
        row = {
            "recording_id": rid,
            "call_id": call_id,
            "kind": "call",
            "mode": "mixed",
            "tier": "hot",
            "storage_key": key,
            "storage_class": "STANDARD",
            "sha256": obj.sha256,
            "audio_sha256": audio,
            "size": size,
            "duration_s": float(billsec),
            "format": "opus",
            "manifest": manifest.to_dict(),
            "retention_class": "standard",
            "region": "cn",
            "flags": [],
            "created_at": ended,
            "stored_at": ended + 5,
            "encrypted": 1,
            "key_id": "catalog-2026",
            "wrapped_key": wrapped,
            "objects": recording_objects.to_json(
                [{"key": key, "role": "audio", "sha256": obj.sha256, "size": size}]
            ),
        }
        record = ShipRecord(rid, call_id, manifest, None, (obj,), ("audio",))  # type: ignore[arg-type]
        userfield = f"consent={consent};tags={','.join(tags)}"
        cdr_row = (
            cdr_time(started),
            f'"" <{caller}>',
            caller,
            callee,
            "from-pstn" if inbound else "from-internal",
            f"PJSIP/trunk-{i:08x}",
            f"PJSIP/{agent}-{i:08x}",
            "Queue",
            f"{queue},t,,,300",
            int(ended - started),
            billsec,
            disposition,
            3,
            "bank",
            linkedid,
            userfield,
            linkedid,
            "",
            i,
        )
        return Generated(call, StoredRecording(row, manifest, record), cdr_row)
