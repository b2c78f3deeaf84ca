"""Integrity check: storage tiers against the catalog against the ledger and the signatures.

What an insider with write access to the catalog and the tiers (but not the signing key)
cannot hide (see README "What verify detects"):

* every recording the catalog says is in storage (stored | verified | migrated): its row agrees
  with the ledger (tier, key, stored-bytes hash, size, audio hash, key id: ``verify_bindings``)
  and with its signed manifest (recording id, call id, audio hash, encryption); the manifest
  signature verifies; every object of it (``recording_objects.objects_of``) exists with its size;
  the primary object's bytes hash to what the ledger recorded at store time -- never to the
  object's own user metadata, which whoever re-puts an object copies: the server's own checksum
  when it keeps one (S3 ChecksumSHA256), else the bytes are re-read; an S3 version id other than
  the one recorded at store time is a replaced object.  ``deep`` also decrypts (envelope
  associated data must name the recording) and compares the plaintext hash;
* every recording that is gone (expired | erased | deleted, or a row removed by erasure) leaves
  no object behind; a recording the ledger says was stored whose row vanished without a
  ``deleted``/``erased`` entry is a mismatch;
* the ledger and the audit log chains recompute, and each agrees with its signed head outside
  the database (``chain_head``): truncation and rewritten chains are caught;
* every call row's metadata matches its seal (``call_seal``).

A tier that cannot be reached is reported as unreachable, not as a mismatch; recordings still in
the spool as pending.  Nothing here writes to the catalog or a tier; a whole-catalog pass keeps
its resume point and marks in a small state file beside the catalog (``verify_stream``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pbx_recorder import audit_trail, call_seal, chain_head, ledger
from pbx_recorder.catalog import engine
from pbx_recorder.catalog.protected_rows import MANIFEST_TOKEN, NumberProtection
from pbx_recorder.chain_head import CheckpointStore
from pbx_recorder.errors import (
    CatalogError,
    CryptoError,
    NotFound,
    ObjectNotRestored,
    StorageError,
    TierUnavailable,
)
from pbx_recorder.recording_objects import RecordingObject, is_listed, listed, objects_of
from pbx_recorder.signing import verify_manifest
from pbx_recorder.verify_bindings import (
    expectation_of,
    hold_binding,
    ledger_entries,
    locations_of,
    row_binding,
    vanished_ids,
)
from storage.base import ObjectInfo, Tier
from storage.envelope import decrypt_chunks
from storage.hashing import HashingReader, digests_equal, hash_stream
from storage.keyring import KeyRing

LIVE_STATES = ("stored", "verified", "migrated")
GONE_STATES = ("expired", "erased", "deleted")
COLUMNS = ("recording_id", "call_id", "state", "size", "sha256", "audio_sha256", "tier", "storage_key",
           "encrypted", "key_id", "wrapped_key", "manifest", "signature")
OPTIONAL_COLUMNS = ("objects",)  # schema migration 3
ObjectCheck = Callable[["VerifyReport"], None]


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
    """``mismatches``: integrity findings; ``unreachable``: tiers that could not be asked (an
    outage says nothing about integrity); ``pending``: recordings still on their way (spool)."""

    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "rid: why" the storage server refused for good

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def status(self) -> str:
        """``mismatch`` > ``refused`` > ``unreachable`` > ``pending`` > ``ok``."""
        if self.mismatches:
            return "mismatch"
        if self.refused:
            return "refused"
        if self.unreachable:
            return "unreachable"
        return "pending" if self.pending else "ok"


def catalog_connection(path: str | Path, *, read_only: bool = True) -> sqlite3.Connection:
    """Open an existing catalog database (read-only by default)."""
    if not engine.is_url(path) and not Path(path).is_file():
        raise CatalogError(f"catalog {path} does not exist")
    return engine.connect(path, read_only=read_only, legacy=True)  # type: ignore[no-any-return]


def recording_rows(conn: sqlite3.Connection, recording_id: str | None = None) -> Iterator[dict[str, Any]]:
    present = set(engine.table_columns(conn, "recordings"))
    columns = COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if c in present)  # older catalogs lack them
    sql = f"SELECT {', '.join(columns)} FROM recordings"
    params: tuple[Any, ...] = ()
    if recording_id is not None:
        sql, params = sql + " WHERE recording_id = ?", (recording_id,)
    for row in conn.execute(sql + " ORDER BY created_at, recording_id", params):
        yield dict(zip(columns, row, strict=True))


def _ledger_locations(conn: sqlite3.Connection, recording_id: str) -> set[tuple[str, str]]:
    """(tier, key) pairs from ``stored`` {tier, key} and ``migrated`` {to, key} payloads."""
    return locations_of(conn.execute("SELECT event, payload FROM ledger WHERE recording_id = ? "
                                     "AND event IN ('stored', 'migrated')", (recording_id,)))


def _gone_locations(conn: sqlite3.Connection, recording_id: str) -> set[tuple[str, str]]:
    """Ledger locations plus the objects derived from each (manifest sidecar, legs) by naming."""
    places = set()
    for tier, key in _ledger_locations(conn, recording_id):
        places |= {(tier, o.key) for o in objects_of({"recording_id": recording_id, "storage_key": key})}
    return places


def _gone_places(recording_id: str, entries: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """:func:`_gone_locations` from entries already read."""
    places = set()
    for tier, key in locations_of(entries):
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


def vanished_mismatch(rid: str) -> Mismatch:
    return Mismatch(rid, "catalog row removed without a deletion or erasure ledger entry", "catalog row",
                    "absent")


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
                 public_key: Ed25519PublicKey | None = None, deep: bool = False,
                 checkpoints: CheckpointStore | None = None, spooled: Iterable[str] = (),
                 numbers: NumberProtection | None = None) -> None:
        self.conn, self.tiers, self.keyring = conn, tiers, keyring
        self.numbers = numbers  # opens the catalog's encrypted numbers (call seals, manifests)
        self.public_key, self.deep = public_key, deep
        self.checkpoints, self.spooled = checkpoints, tuple(spooled)
        self._down: dict[str, str] = {}  # tier name -> why it is unreachable

    def run(self, recording_id: str | None = None, *, options: Any = None) -> VerifyReport:
        """One recording, or (``recording_id`` None) the whole catalog, streamed in keyset batches
        with storage checks in parallel (``verify_stream``; ``options``: its ``PassOptions``)."""
        if recording_id is None:
            from pbx_recorder.verify_stream import PassOptions, run_pass

            return run_pass(self, options if options is not None else PassOptions())
        report = VerifyReport()
        rows = list(recording_rows(self.conn, recording_id))
        present = {r["recording_id"] for r in rows}
        removed = _removed_ids(self.conn, present, recording_id)
        vanished = vanished_ids(self.conn, present, recording_id)
        waiting = [rid for rid in self.spooled if rid == recording_id]
        if not rows and not removed and not vanished and not waiting:
            raise NotFound(f"no recording {recording_id}")
        for row in rows:
            report.checked += 1
            self.check_recording(row, report)
        for rid in removed:  # erasure removes the row; the ledger still says where the audio was
            report.checked += 1
            self._check_gone(rid, "erased (catalog row removed)", _gone_locations(self.conn, rid), report)
        for rid in vanished:
            report.checked += 1
            report.mismatches.append(vanished_mismatch(rid))
        report.pending += [f"{rid}: waiting in the spool (not stored yet)" for rid in waiting
                           if rid not in present]
        self.check_chains(report, recording_id, {str(r["call_id"]) for r in rows})
        report.unreachable += [f"tier {name}: {why}" for name, why in sorted(self._down.items())]
        report.refused = _refused(self.conn, recording_id)
        return report

    def check_chains(self, report: VerifyReport, recording_id: str | None, call_ids: set[str]) -> None:
        add = report.mismatches.append
        for p in ledger.verify_chain(self.conn):
            add(Mismatch(p.recording_id, f"ledger seq {p.seq}: {p.what}", p.expected, p.found))
        audit_problems, legacy = audit_trail.verify_chain(self.conn)
        for a in audit_problems:
            add(Mismatch("", str(a), a.expected, a.found))
        if legacy:
            report.notes.append(f"{legacy} audit row(s) predate the audit chain (not covered)")
        if self.public_key is None:
            return
        if self.checkpoints is not None:
            for chain in chain_head.CHAINS:
                problems, notes = chain_head.check(self.conn, chain, self.checkpoints, self.public_key)
                report.mismatches += [Mismatch("", f"{p.chain} chain head: {p.what}", p.expected, p.found)
                                      for p in problems]
                report.notes += notes
        for call_id in sorted(call_ids) if recording_id is not None else [None]:
            for cid, what in call_seal.check_calls(self.conn, self.public_key, call_id, self.numbers):
                add(Mismatch(f"call {cid}", what))
        if recording_id is None:
            for cid in call_seal.vanished_calls(self.conn):
                add(Mismatch(f"call {cid}", "sealed call row removed (or replaced by an unsealed "
                                            "one) without an erasure ledger entry", "calls row", "absent"))

    def check_recording(self, row: dict[str, Any], report: VerifyReport) -> None:
        objects = self.prepare(row, report, ledger_entries(self.conn, [row["recording_id"]]))
        if objects is not None:
            objects(report)

    def prepare(self, row: dict[str, Any], report: VerifyReport,
                entries: Mapping[str, list[tuple[str, str]]]) -> ObjectCheck | None:
        """The catalog and ledger checks of one row (this thread: it owns the connection); returns
        the storage checks (stat, re-read, signature) to run, possibly on a worker thread, with
        their own report.  ``entries``: the ledger's (event, payload) per recording id, in seq order."""
        rid, state = row["recording_id"], row["state"]
        mine = entries.get(rid, [])
        events = {e for e, _ in mine}
        add = report.mismatches.append
        if state in GONE_STATES:
            if not events & {"deleted", "erased"}:
                add(Mismatch(rid, f"{state} but no deleted/erased ledger entry", "deleted|erased", "none"))
            places = {(row["tier"], o.key) for o in objects_of(row)} | _gone_places(rid, mine)
            return lambda out: self._check_gone(rid, state, places, out)
        if state not in LIVE_STATES:
            if rid in self.spooled or state in ("spooled", "stopped", "recording", "paused"):
                report.pending.append(f"{rid}: {state}, not stored yet")
            return None
        if "stored" not in events:
            add(Mismatch(rid, "no 'stored' ledger entry", "stored", ",".join(sorted(events)) or "none"))
        if events & {"deleted", "erased"}:
            add(Mismatch(rid, "ledger records a deletion but the catalog says it is stored", state,
                         ",".join(sorted(events & {"deleted", "erased"}))))
        expect = expectation_of(mine)
        holds = [e for e, _ in mine if e in ("held", "released")]
        bound = hold_binding(self.conn, row) if holds and holds[-1] == "held" else []
        for what, want, found in [*row_binding(row, expect), *bound]:
            add(Mismatch(rid, what, want, found))

        def objects(out: VerifyReport) -> None:
            self._check_signature(row, out)
            self._check_object(row, expect, out)
            self._check_other_objects(row, expect, out)
        return objects

    def _tier_down(self, tier: Tier, exc: BaseException | None = None) -> bool:
        """True (and remembered) when ``tier`` cannot be reached: an outage is not a mismatch."""
        if isinstance(exc, TierUnavailable):
            self._down.setdefault(tier.name, str(exc))
            return True
        root = getattr(tier, "root", None)  # a local tier whose folder (mount) is gone
        if exc is None and isinstance(root, Path) and not root.is_dir():
            self._down.setdefault(tier.name, f"root {root} is not available")
            return True
        return tier.name in self._down

    def _stat(self, tier: Tier, key: str, rid: str, what: str,
              report: VerifyReport) -> ObjectInfo | None | bool:
        """The object's info, None when absent, False when it could not be checked (reported)."""
        if tier.name in self._down:
            return False
        try:
            info = tier.stat(key)
        except StorageError as exc:
            if self._tier_down(tier, exc):
                return False
            report.mismatches.append(Mismatch(rid, f"cannot stat {what}: {exc}", f"{tier.name}:{key}"))
            return False
        if info is None and self._tier_down(tier):
            return False
        return info

    def _check_other_objects(self, row: dict[str, Any], expect: Mapping[str, Any],
                             report: VerifyReport) -> None:
        """Every listed object besides the primary: present, listed size, listed hash."""
        rid, tier = row["recording_id"], self.tiers.get(row["tier"])
        if tier is None:
            return  # _check_object named the unknown tier
        sizes = {str(o["key"]): o.get("size") for o in listed(row)}
        strict = is_listed(row)
        signed = dict(expect.get("objects") or {})  # the ledger's hashes win over the row's
        for obj in objects_of(row):
            if obj.key == row["storage_key"]:
                continue
            if signed.get(obj.key):
                obj = obj._replace(sha256=str(signed[obj.key]))
            self._check_one(tier, rid, obj, sizes.get(obj.key), strict, report)

    def _check_one(self, tier: Tier, rid: str, obj: RecordingObject, size: Any, strict: bool,
                   report: VerifyReport) -> None:
        add, where = report.mismatches.append, f"{tier.name}:{obj.key}"
        info = self._stat(tier, obj.key, rid, f"{obj.role} object", report)
        if info is False:
            return
        if info is None:
            if strict:
                add(Mismatch(rid, f"{obj.role} object missing", where, "absent"))
            else:
                report.notes.append(f"{rid}: {obj.role} object {where} (derived for an older row) absent")
            return
        assert isinstance(info, ObjectInfo)
        if size is not None and info.size != size:
            add(Mismatch(rid, f"{obj.role} object size differs from the catalog", str(size), str(info.size)))
        if not obj.sha256:
            return
        if info.server_sha256 and not self.deep:
            if not digests_equal(info.server_sha256, obj.sha256):
                add(Mismatch(rid, f"{obj.role} server checksum differs from the catalog", obj.sha256,
                             info.server_sha256))
            return
        digest = self._read_hash(tier, obj.key, rid, obj.role, report)
        if digest and not digests_equal(digest, obj.sha256):
            add(Mismatch(rid, f"{obj.role} stored bytes hash differs from the catalog", obj.sha256, digest))

    def _read_hash(self, tier: Tier, key: str, rid: str, role: str, report: VerifyReport) -> str:
        try:
            with tier.open(key) as raw:
                digest, _ = hash_stream(raw)
        except ObjectNotRestored:
            report.notes.append(f"{rid}: {role} in an archive class, not restored: bytes not re-read")
            return ""
        except StorageError as exc:
            if not self._tier_down(tier, exc):
                report.mismatches.append(Mismatch(rid, f"cannot read {role} object: {exc}",
                                                  f"{tier.name}:{key}"))
            return ""
        return digest

    def _check_gone(self, rid: str, state: str, places: set[tuple[str, str]], report: VerifyReport) -> None:
        """No object may be left at the row's location or any the ledger recorded (stored/migrated)."""
        for tier_name, key in sorted(places):
            tier = self.tiers.get(tier_name)
            if tier is None or not key:
                continue
            info = self._stat(tier, key, rid, "object", report)
            if isinstance(info, ObjectInfo):
                report.mismatches.append(Mismatch(rid, f"object still present after {state}", "absent",
                                                  f"{tier_name}:{key}"))

    def _check_signature(self, row: dict[str, Any], report: VerifyReport) -> None:
        rid = row["recording_id"]
        try:
            manifest = json.loads(row["manifest"] or "{}")
        except ValueError:
            report.mismatches.append(Mismatch(rid, "manifest is not valid JSON"))
            return
        if isinstance(manifest, dict) and MANIFEST_TOKEN in manifest:  # schema 6: numbers encrypted
            if self.numbers is None:
                report.notes.append(f"{rid}: manifest numbers encrypted; signature not checked without the "
                                    "catalog keys")
                return
            try:
                manifest = self.numbers.open_manifest(rid, manifest)
            except CryptoError as exc:
                report.mismatches.append(Mismatch(rid, f"manifest numbers: {exc}"))
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

    def _check_object(self, row: dict[str, Any], expect: Mapping[str, Any], report: VerifyReport) -> None:
        """The primary object against what the ledger recorded at store time (the row's own
        ``sha256`` only when the ledger has none): never against the object's user metadata,
        which whoever re-puts an object can copy."""
        rid, key, add = row["recording_id"], row["storage_key"], report.mismatches.append
        tier = self.tiers.get(row["tier"])
        if tier is None:
            add(Mismatch(rid, "catalog names an unknown tier", ", ".join(sorted(self.tiers)), row["tier"]))
            return
        info = self._stat(tier, key, rid, "object", report)
        if info is False:
            return
        if info is None:
            add(Mismatch(rid, "stored object missing", f"{tier.name}:{key}", "absent"))
            return
        assert isinstance(info, ObjectInfo)
        want = str(expect.get("sha256") or row["sha256"] or "")
        if row["size"] is not None and info.size != row["size"]:
            add(Mismatch(rid, "object size differs from the catalog", str(row["size"]), str(info.size)))
        if expect.get("version_id") and info.version_id and info.version_id != expect["version_id"]:
            add(Mismatch(rid, "object was replaced after it was stored (version id differs)",
                         str(expect["version_id"]), info.version_id))
        if self.deep:
            self._deep(tier, row, want, report)
        elif info.server_sha256:
            if want and not digests_equal(info.server_sha256, want):
                add(Mismatch(rid, "server checksum differs from the stored hash", want, info.server_sha256))
        elif want:  # no server checksum: read the bytes (cheap on local disk)
            digest = self._read_hash(tier, key, rid, "audio", report)
            if digest and not digests_equal(digest, want):
                add(Mismatch(rid, "stored bytes hash differs from the catalog", want, digest))

    def _deep(self, tier: Tier, row: dict[str, Any], want: str, report: VerifyReport) -> None:
        rid, key = row["recording_id"], row["storage_key"]
        decrypt = bool(row["encrypted"]) and self.keyring is not None
        if row["encrypted"] and self.keyring is None:
            report.notes.append(f"{rid}: encrypted, no key ring: plaintext hash not checked")
        try:
            with tier.open(key) as raw:
                if decrypt:
                    self._deep_decrypt(raw, row, want, report)
                    return
                digest, _ = hash_stream(raw)
        except ObjectNotRestored:
            report.notes.append(f"{rid}: in an archive class, not restored: deep check skipped")
            return
        except StorageError as exc:
            if not self._tier_down(tier, exc):
                report.mismatches.append(Mismatch(rid, f"cannot read object: {exc}", f"{tier.name}:{key}"))
            return
        if not digests_equal(digest, want):
            report.mismatches.append(Mismatch(rid, "stored bytes hash differs from the catalog", want,
                                              digest))

    def _deep_decrypt(self, raw: Any, row: dict[str, Any], want: str, report: VerifyReport) -> None:
        """One read pass: hash the ciphertext as it is decrypted, hash the plaintext out.  The
        envelope's associated data must name this recording (a swapped object fails here)."""
        rid, add = row["recording_id"], report.mismatches.append
        assert self.keyring is not None
        reader, plain, authentic = HashingReader(raw), hashlib.sha256(), True
        stream = cast(BinaryIO, reader)  # only .read() is used
        try:
            for block in decrypt_chunks(stream, self.keyring, wrapped_key=row["wrapped_key"] or None,
                                        key_id=row["key_id"] or None, expected_aad=rid):
                plain.update(block)
        except CryptoError as exc:
            add(Mismatch(rid, f"decryption failed: {exc}", "authentic ciphertext"))
            authentic = False
            hash_stream(stream)  # finish the pass so the stored-bytes hash is still compared
        if not digests_equal(reader.hexdigest(), want):
            add(Mismatch(rid, "stored bytes hash differs from the catalog", want, reader.hexdigest()))
        elif authentic and (expected := expected_plaintext_sha256(row)) \
                and not digests_equal(plain.hexdigest(), expected):
            add(Mismatch(rid, "decrypted audio hash differs from the catalog", expected, plain.hexdigest()))
