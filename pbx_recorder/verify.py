"""Integrity check: storage tiers against the catalog against the ledger.

For every recording the catalog says is in storage (stored | verified | migrated):
every object of it (``recording_objects.objects_of``: audio, legs, kept original,
manifest sidecar) exists in its tier with its listed size and (tier-kept / ``deep``) hash;
the primary object exists in its tier, its size and (tier-kept) hash match the catalog; with
``deep`` the bytes are re-read and re-hashed, and an encrypted object is also decrypted
(when the key ring is available) and its plaintext hash compared with ``audio_sha256``;
the manifest signature verifies (when a public key is given); the ledger has a ``stored``
entry.  For every recording that is gone (expired | erased | deleted) no object of it is left.
The ledger chain itself is verified.  Every finding names the recording, what, expected
and found.  Nothing here writes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pbx_recorder import ledger
from pbx_recorder.errors import CatalogError, CryptoError, NotFound, ObjectNotRestored, StorageError
from pbx_recorder.recording_objects import RecordingObject, is_listed, listed, objects_of
from pbx_recorder.signing import verify_manifest
from storage.base import Tier
from storage.envelope import decrypt_chunks
from storage.hashing import HashingReader, digests_equal, hash_stream
from storage.keyring import KeyRing

LIVE_STATES = ("stored", "verified", "migrated")
GONE_STATES = ("expired", "erased", "deleted")
COLUMNS = ("recording_id", "call_id", "state", "size", "sha256", "audio_sha256", "tier", "storage_key",
           "encrypted", "key_id", "wrapped_key", "manifest", "signature")
OPTIONAL_COLUMNS = ("objects",)  # schema migration 3


@dataclass(frozen=True, slots=True)
class Mismatch:
    recording_id: str
    what: str
    expected: str = ""
    found: str = ""

    def __str__(self) -> str:
        text = f"{self.recording_id or '-'}: {self.what}"
        if self.expected or self.found:
            text += f" (expected {self.expected or '-'}, found {self.found or '-'})"
        return text


@dataclass
class VerifyReport:
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "rid: why" the storage server refused for good

    @property
    def ok(self) -> bool:
        return not self.mismatches


def catalog_connection(path: str | Path, *, read_only: bool = True) -> sqlite3.Connection:
    """Open an existing catalog database (read-only by default)."""
    p = Path(path)
    if not p.is_file():
        raise CatalogError(f"catalog {p} does not exist")
    try:
        if read_only:
            conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5)
        else:
            conn = sqlite3.connect(p, timeout=5)
        conn.execute("PRAGMA busy_timeout=5000")
    except sqlite3.Error as exc:
        raise CatalogError(f"cannot open catalog {p}: {exc}") from exc
    return conn


def recording_rows(conn: sqlite3.Connection, recording_id: str | None = None) -> Iterator[dict[str, Any]]:
    present = {r[1] for r in conn.execute("PRAGMA table_info(recordings)")}
    columns = COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if c in present)  # older catalogs lack them
    sql = f"SELECT {', '.join(columns)} FROM recordings"
    params: tuple[Any, ...] = ()
    if recording_id is not None:
        sql, params = sql + " WHERE recording_id = ?", (recording_id,)
    for row in conn.execute(sql + " ORDER BY created_at, recording_id", params):
        yield dict(zip(columns, row, strict=True))


def _ledger_events(conn: sqlite3.Connection, recording_id: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT event FROM ledger WHERE recording_id = ?", (recording_id,))}


def _ledger_locations(conn: sqlite3.Connection, recording_id: str) -> set[tuple[str, str]]:
    """(tier, key) pairs from ``stored`` {tier, key} and ``migrated`` {to, key} payloads."""
    places = set()
    for event, text in conn.execute("SELECT event, payload FROM ledger WHERE recording_id = ? "
                                    "AND event IN ('stored', 'migrated')", (recording_id,)):
        try:
            payload = json.loads(text)
        except ValueError:
            continue  # verify_chain reports the broken row
        if not isinstance(payload, dict):
            continue
        tier = payload.get("tier") if event == "stored" else payload.get("to")
        if tier and payload.get("key"):
            places.add((str(tier), str(payload["key"])))
    return places


def _gone_locations(conn: sqlite3.Connection, recording_id: str) -> set[tuple[str, str]]:
    """Ledger locations plus the objects derived from each (manifest sidecar, legs) by naming."""
    places = set()
    for tier, key in _ledger_locations(conn, recording_id):
        places |= {(tier, o.key) for o in objects_of({"recording_id": recording_id, "storage_key": key})}
    return places


def _removed_ids(conn: sqlite3.Connection, present: set[str], only: str | None) -> list[str]:
    sql = "SELECT DISTINCT recording_id FROM ledger WHERE event IN ('deleted', 'erased')"
    found = [r[0] for r in conn.execute(sql + " ORDER BY recording_id")]
    return [rid for rid in found if rid not in present and (only is None or rid == only)]


def _refused(conn: sqlite3.Connection, only: str | None) -> list[str]:
    """Recordings the shipper parked after a permanent refusal (state ship_failed), with why."""
    out = []
    for rid, flags in conn.execute("SELECT recording_id, flags FROM recordings WHERE state='ship_failed'"
                                   " ORDER BY created_at, recording_id"):
        if only is not None and rid != only:
            continue
        try:
            why = [str(f) for f in json.loads(flags or "[]") if str(f).startswith("ship_refused")]
        except ValueError:
            why = []
        out.append(f"{rid}: {why[-1] if why else 'ship_refused'} (waiting in the spool, not retried)")
    return out


def expected_plaintext_sha256(row: Mapping[str, Any]) -> str:
    """What the primary object decrypts to: ``manifest.processing.plaintext_sha256`` (set by
    EncryptStage; differs from ``audio_sha256`` after transcoding), else ``audio_sha256``."""
    manifest = row.get("manifest")
    if isinstance(manifest, str):
        try:
            manifest = json.loads(manifest or "{}")
        except ValueError:
            manifest = {}
    processing = manifest.get("processing") if isinstance(manifest, Mapping) else None
    if isinstance(processing, Mapping) and processing.get("plaintext_sha256"):
        return str(processing["plaintext_sha256"])
    return str(row.get("audio_sha256") or "")


def _manifest_audio_hash(manifest: Any) -> str:
    files = manifest.get("files") if isinstance(manifest, Mapping) else None
    if files and isinstance(files[0], Mapping):
        return str(files[0].get("sha256", ""))
    return ""


class Verifier:
    def __init__(self, conn: sqlite3.Connection, tiers: Mapping[str, Tier], *, keyring: KeyRing | None = None,
                 public_key: Ed25519PublicKey | None = None, deep: bool = False) -> None:
        self.conn, self.tiers, self.keyring = conn, tiers, keyring
        self.public_key, self.deep = public_key, deep

    def run(self, recording_id: str | None = None) -> VerifyReport:
        report = VerifyReport()
        rows = list(recording_rows(self.conn, recording_id))
        removed = _removed_ids(self.conn, {r["recording_id"] for r in rows}, recording_id)
        if recording_id is not None and not rows and not removed:
            raise NotFound(f"no recording {recording_id}")
        for row in rows:
            report.checked += 1
            self.check_recording(row, report)
        for rid in removed:  # erasure removes the row; the ledger still says where the audio was
            report.checked += 1
            self._check_gone(rid, "erased (catalog row removed)", set(), report)
        report.refused = _refused(self.conn, recording_id)
        for p in ledger.verify_chain(self.conn):
            report.mismatches.append(Mismatch(p.recording_id, f"ledger seq {p.seq}: {p.what}",
                                              p.expected, p.found))
        return report

    def check_recording(self, row: dict[str, Any], report: VerifyReport) -> None:
        rid, state = row["recording_id"], row["state"]
        events = _ledger_events(self.conn, rid)
        add = report.mismatches.append
        if state in GONE_STATES:
            if not events & {"deleted", "erased"}:
                add(Mismatch(rid, f"{state} but no deleted/erased ledger entry", "deleted|erased", "none"))
            self._check_gone(rid, state, {(row["tier"], o.key) for o in objects_of(row)}, report)
            return
        if state not in LIVE_STATES:
            return  # not shipped yet: nothing to check in storage
        if "stored" not in events:
            add(Mismatch(rid, "no 'stored' ledger entry", "stored", ",".join(sorted(events)) or "none"))
        if events & {"deleted", "erased"}:
            add(Mismatch(rid, "ledger records a deletion but the catalog says it is stored", state,
                         ",".join(sorted(events & {"deleted", "erased"}))))
        self._check_signature(row, report)
        self._check_object(row, report)
        self._check_other_objects(row, report)

    def _check_other_objects(self, row: dict[str, Any], report: VerifyReport) -> None:
        """Every listed object besides the primary: present, listed size, listed hash."""
        rid, tier = row["recording_id"], self.tiers.get(row["tier"])
        if tier is None:
            return  # _check_object named the unknown tier
        sizes = {str(o["key"]): o.get("size") for o in listed(row)}
        strict = is_listed(row)
        for obj in objects_of(row):
            if obj.key == row["storage_key"]:
                continue
            self._check_one(tier, rid, obj, sizes.get(obj.key), strict, report)

    def _check_one(self, tier: Tier, rid: str, obj: RecordingObject, size: Any, strict: bool,
                   report: VerifyReport) -> None:
        add, where = report.mismatches.append, f"{tier.name}:{obj.key}"
        try:
            info = tier.stat(obj.key)
        except StorageError as exc:
            add(Mismatch(rid, f"cannot stat {obj.role} object: {exc}", where))
            return
        if info is None:
            if strict:
                add(Mismatch(rid, f"{obj.role} object missing", where, "absent"))
            else:
                report.notes.append(f"{rid}: {obj.role} object {where} (derived for an older row) absent")
            return
        if size is not None and info.size != size:
            add(Mismatch(rid, f"{obj.role} object size differs from the catalog", str(size), str(info.size)))
        if info.sha256 and obj.sha256 and not digests_equal(info.sha256, obj.sha256):
            add(Mismatch(rid, f"{obj.role} tier-recorded hash differs from the catalog", obj.sha256,
                         info.sha256))
        if not self.deep or not obj.sha256:
            return
        try:
            with tier.open(obj.key) as raw:
                digest, _ = hash_stream(raw)
        except ObjectNotRestored:
            report.notes.append(f"{rid}: {obj.role} in an archive class, not restored: deep check skipped")
            return
        except StorageError as exc:
            add(Mismatch(rid, f"cannot read {obj.role} object: {exc}", where))
            return
        if not digests_equal(digest, obj.sha256):
            add(Mismatch(rid, f"{obj.role} stored bytes hash differs from the catalog", obj.sha256, digest))

    def _check_gone(self, rid: str, state: str, places: set[tuple[str, str]], report: VerifyReport) -> None:
        """No object may be left at the row's location or any the ledger recorded (stored/migrated)."""
        for tier_name, key in sorted(places | _gone_locations(self.conn, rid)):
            tier = self.tiers.get(tier_name)
            if tier is not None and key and tier.stat(key) is not None:
                report.mismatches.append(Mismatch(rid, f"object still present after {state}", "absent",
                                                  f"{tier_name}:{key}"))

    def _check_signature(self, row: dict[str, Any], report: VerifyReport) -> None:
        rid = row["recording_id"]
        try:
            manifest = json.loads(row["manifest"] or "{}")
        except ValueError:
            report.mismatches.append(Mismatch(rid, "manifest is not valid JSON"))
            return
        audio = _manifest_audio_hash(manifest)
        if audio and row["audio_sha256"] and not digests_equal(audio, row["audio_sha256"]):
            report.mismatches.append(Mismatch(rid, "manifest audio hash differs from the catalog",
                                              row["audio_sha256"], audio))
        if self.public_key is None:
            return
        if not row["signature"]:
            report.mismatches.append(Mismatch(rid, "manifest not signed", "signature", "none"))
        elif not verify_manifest(manifest, row["signature"], self.public_key):
            report.mismatches.append(Mismatch(rid, "manifest signature does not verify", "valid", "invalid"))

    def _check_object(self, row: dict[str, Any], report: VerifyReport) -> None:
        rid, key, add = row["recording_id"], row["storage_key"], report.mismatches.append
        tier = self.tiers.get(row["tier"])
        if tier is None:
            add(Mismatch(rid, "catalog names an unknown tier", ", ".join(sorted(self.tiers)), row["tier"]))
            return
        try:
            info = tier.stat(key)
        except StorageError as exc:
            add(Mismatch(rid, f"cannot stat object: {exc}", f"{tier.name}:{key}"))
            return
        if info is None:
            add(Mismatch(rid, "stored object missing", f"{tier.name}:{key}", "absent"))
            return
        if row["size"] is not None and info.size != row["size"]:
            add(Mismatch(rid, "object size differs from the catalog", str(row["size"]), str(info.size)))
        if info.sha256 and row["sha256"] and not digests_equal(info.sha256, row["sha256"]):
            add(Mismatch(rid, "tier-recorded hash differs from the catalog", row["sha256"], info.sha256))
        if self.deep:
            self._deep(tier, row, report)

    def _deep(self, tier: Tier, row: dict[str, Any], report: VerifyReport) -> None:
        rid, key = row["recording_id"], row["storage_key"]
        decrypt = bool(row["encrypted"]) and self.keyring is not None
        if row["encrypted"] and self.keyring is None:
            report.notes.append(f"{rid}: encrypted, no key ring: plaintext hash not checked")
        try:
            with tier.open(key) as raw:
                if decrypt:
                    self._deep_decrypt(raw, row, report)
                    return
                digest, _ = hash_stream(raw)
        except ObjectNotRestored:
            report.notes.append(f"{rid}: in an archive class, not restored: deep check skipped")
            return
        except StorageError as exc:
            report.mismatches.append(Mismatch(rid, f"cannot read object: {exc}", f"{tier.name}:{key}"))
            return
        if not digests_equal(digest, row["sha256"]):
            report.mismatches.append(Mismatch(rid, "stored bytes hash differs from the catalog",
                                              row["sha256"], digest))

    def _deep_decrypt(self, raw: Any, row: dict[str, Any], report: VerifyReport) -> None:
        """One read pass: hash the ciphertext as it is decrypted, hash the plaintext out."""
        rid, add = row["recording_id"], report.mismatches.append
        assert self.keyring is not None
        reader, plain, authentic = HashingReader(raw), hashlib.sha256(), True
        stream = cast(BinaryIO, reader)  # only .read() is used
        try:
            for block in decrypt_chunks(stream, self.keyring, wrapped_key=row["wrapped_key"] or None,
                                        key_id=row["key_id"] or None):
                plain.update(block)
        except CryptoError as exc:
            add(Mismatch(rid, f"decryption failed: {exc}", "authentic ciphertext"))
            authentic = False
            hash_stream(stream)  # finish the pass so the stored-bytes hash is still compared
        if not digests_equal(reader.hexdigest(), row["sha256"]):
            add(Mismatch(rid, "stored bytes hash differs from the catalog", row["sha256"],
                         reader.hexdigest()))
        elif authentic and (want := expected_plaintext_sha256(row)) \
                and not digests_equal(plain.hexdigest(), want):
            add(Mismatch(rid, "decrypted audio hash differs from the catalog", want, plain.hexdigest()))
