"""The storage side of ``verify``: every object a row names is present with its size and
hash (the server's checksum, or the bytes re-read), nothing is left where a recording is gone,
and ``deep`` decrypts (the primary as the ``audio`` object, every other encrypted object as the
object its role names: one put in another's place fails).  A tier that cannot be reached is
remembered as unreachable, never reported as a mismatch.  Mixed into
:class:`pbx_recorder.recording.verify.Verifier`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, cast

from pbx_recorder.errors import CryptoError, ObjectNotRestored, StorageError, TierUnavailable
from pbx_recorder.recording.recording_objects import (
    AUDIO,
    MANIFEST,
    RecordingObject,
    is_listed,
    listed,
    objects_of,
)
from pbx_recorder.recording.verify_report import Mismatch, VerifyReport
from pbx_recorder.recording.verify_rows import expected_plaintext_sha256
from storage.base import ObjectInfo, Tier
from storage.envelope import decrypt_chunks
from storage.hashing import HashingReader, digests_equal, hash_stream
from storage.keyring import KeyRing


class ObjectChecks:
    """Needs ``tiers``, ``keyring``, ``deep`` and the ``_down`` map (set by the verifier)."""

    tiers: Mapping[str, Tier]
    keyring: KeyRing | None
    deep: bool
    _down: dict[str, str]

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
            self._check_one(tier, rid, obj, sizes.get(obj.key), strict, report, row)

    def _check_one(self, tier: Tier, rid: str, obj: RecordingObject, size: Any, strict: bool,
                   report: VerifyReport, row: Mapping[str, Any] | None = None) -> None:
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
        # deep: an encrypted leg / kept original is decrypted as the object its role names (the
        # manifest sidecar is opened by stored_manifest, which names its role itself)
        opened = row if (self.deep and row is not None and row.get("encrypted") and self.keyring is not None
                         and obj.role != MANIFEST) else None
        digest = self._read_hash(tier, obj.key, rid, obj.role, report, opened)
        if digest and not digests_equal(digest, obj.sha256):
            add(Mismatch(rid, f"{obj.role} stored bytes hash differs from the catalog", obj.sha256, digest))

    def _read_hash(self, tier: Tier, key: str, rid: str, role: str, report: VerifyReport,
                   decrypt_row: Mapping[str, Any] | None = None) -> str:
        """SHA-256 of the stored bytes; with ``decrypt_row`` also decrypted in the same pass as
        the object ``role`` of that row (a failure is a mismatch)."""
        try:
            with tier.open(key) as raw:
                if decrypt_row is None:
                    digest, _ = hash_stream(raw)
                else:
                    digest = self._decrypt_hash(raw, decrypt_row, role, report)
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

    def _decrypt_hash(self, raw: Any, row: Mapping[str, Any], role: str, report: VerifyReport) -> str:
        """Decrypt ``raw`` as the row's object ``role`` (authenticity only: the plaintext hash of a
        leg is not in the catalog); returns the SHA-256 of the stored bytes."""
        assert self.keyring is not None
        rid, reader = str(row["recording_id"]), HashingReader(raw)
        stream = cast(BinaryIO, reader)  # only .read() is used
        try:
            for _ in decrypt_chunks(stream, self.keyring, wrapped_key=row.get("wrapped_key") or None,
                                    key_id=row.get("key_id") or None, expected_aad=rid, expected_role=role):
                pass
        except CryptoError as exc:
            report.mismatches.append(Mismatch(rid, f"{role} object decryption failed: {exc}",
                                              "authentic ciphertext"))
        hash_stream(stream)  # the rest, if any: the stored-bytes hash covers every byte
        return reader.hexdigest()

    def _deep_decrypt(self, raw: Any, row: dict[str, Any], want: str, report: VerifyReport) -> None:
        """One read pass: hash the ciphertext as it is decrypted, hash the plaintext out.  The
        envelope's associated data must name this recording and its header the ``audio`` object
        (another recording's object, or a leg of this one, put in its place fails here)."""
        rid, add = row["recording_id"], report.mismatches.append
        assert self.keyring is not None
        reader, plain, authentic = HashingReader(raw), hashlib.sha256(), True
        stream = cast(BinaryIO, reader)  # only .read() is used
        try:
            for block in decrypt_chunks(stream, self.keyring, wrapped_key=row["wrapped_key"] or None,
                                        key_id=row["key_id"] or None, expected_aad=rid,
                                        expected_role=AUDIO):
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
