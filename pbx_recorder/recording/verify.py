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
The storage checks are in ``verify_objects``, the catalog reads in ``verify_rows``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pbx_recorder import audit_trail
from pbx_recorder.catalog import named_rows_check
from pbx_recorder.catalog.protected_rows import MANIFEST_TOKEN, NumberProtection
from pbx_recorder.errors import CryptoError, NotFound, ObjectNotRestored, StorageError
from pbx_recorder.recording import call_seal, chain_head, ledger, manifest_copy, stored_manifest
from pbx_recorder.recording.chain_head import CheckpointStore
from pbx_recorder.recording.recording_objects import objects_of
from pbx_recorder.recording.signing import verify_manifest
from pbx_recorder.recording.verify_bindings import (
    expectation_of,
    hold_binding,
    holds_mismatches,
    ledger_entries,
    manifest_binding,
    row_binding,
    vanished_ids,
)
from pbx_recorder.recording.verify_objects import ObjectChecks
from pbx_recorder.recording.verify_report import Mismatch, ObjectCheck, VerifyReport
from pbx_recorder.recording.verify_rows import (
    BEFORE_STORE_STATES,
    COLUMNS,
    GONE_STATES,
    LIVE_STATES,
    OPTIONAL_COLUMNS,
    _gone_locations,
    _gone_places,
    _manifest_audio_hash,
    _refused,
    _removed_ids,
    catalog_connection,
    expected_plaintext_sha256,
    recording_rows,
    vanished_mismatch,
)
from storage.base import Tier
from storage.hashing import digests_equal
from storage.keyring import KeyRing

__all__ = ["COLUMNS", "GONE_STATES", "LIVE_STATES", "OPTIONAL_COLUMNS", "Mismatch", "ObjectCheck",
           "Verifier", "VerifyReport", "catalog_connection", "expected_plaintext_sha256", "recording_rows",
           "vanished_mismatch", "_gone_locations", "_refused"]


class Verifier(ObjectChecks):
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
            from pbx_recorder.recording.verify_stream import PassOptions, run_pass

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
        stats: dict[str, int] = {}
        audit_problems, legacy = audit_trail.verify_chain(self.conn, stats=stats)
        for a in audit_problems:
            add(Mismatch("", str(a), a.expected, a.found))
        if legacy:
            report.notes.append(f"{legacy} audit row(s) predate the audit chain (not covered)")
        report.notes += [n for n in [audit_trail.key_note(stats)] if n]
        held, notes = holds_mismatches(self.conn, self.numbers)  # the holds table against its ledger entries
        report.mismatches += [Mismatch(f"hold {hid}", what, want, found) for hid, what, want, found in held]
        report.notes += notes
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
            for cid in call_seal.resurrected_calls(self.conn):
                add(Mismatch(f"call {cid}", call_seal.RESURRECTED, "absent", "calls row"))
            report.notes += named_rows_check.orphan_notes(self.conn)

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
            if "stored" in events:  # a state edited to hide that its objects were deleted
                add(Mismatch(rid, f"the ledger records it stored but the catalog says {state!r} "
                                  "(neither stored nor deleted/erased)", "stored|expired|erased", str(state)))
            elif state not in BEFORE_STORE_STATES:
                add(Mismatch(rid, f"unknown recording state {state!r}", "a known state", str(state)))
            elif rid in self.spooled or state in ("spooled", "stopped", "recording", "paused"):
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

    def _check_signature(self, row: dict[str, Any], report: VerifyReport) -> None:
        rid = row["recording_id"]
        if manifest_copy.is_copy(row):  # schema 11: the signed manifest is the stored object
            self._check_stored_manifest(row, report)
            return
        try:
            manifest: Any = manifest_copy.parse(row["manifest"], strict=True)
        except ValueError:
            report.mismatches.append(Mismatch(rid, "manifest is not valid JSON"))
            return
        if MANIFEST_TOKEN in manifest:  # schema 6: numbers encrypted
            if self.numbers is None:
                report.notes.append(f"{rid}: manifest numbers encrypted; signature not checked without the "
                                    "catalog keys")
                return
            try:
                manifest = self.numbers.open_manifest(rid, manifest)
            except CryptoError as exc:
                report.mismatches.append(Mismatch(rid, f"manifest numbers: {exc}"))
                return
        self._check_signed(row, manifest, report)

    def _check_signed(self, row: dict[str, Any], manifest: Any, report: VerifyReport) -> None:
        """The signed manifest's audio hash against the row's, and its signature."""
        rid = row["recording_id"]
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

    def _check_stored_manifest(self, row: dict[str, Any], report: VerifyReport) -> None:
        """A schema-11 row: the stored manifest hashes to the row's ``manifest_sha256``, its
        signature verifies, and the row's fields and the catalog's copy agree with it."""
        rid, add = row["recording_id"], report.mismatches.append
        tier = self.tiers.get(row["tier"])
        if tier is None or tier.name in self._down:
            return  # _check_object names the unknown tier; an unreachable one is not a mismatch
        try:
            signed = stored_manifest.read_signed(row, tier, self.keyring)
        except ObjectNotRestored:
            report.notes.append(f"{rid}: manifest in an archive class, not restored: signature not checked")
            return
        except stored_manifest.KeyRingNeeded:
            report.notes.append(f"{rid}: manifest sealed; signature not checked without the key ring")
            return
        except (StorageError, NotFound) as exc:
            if not self._tier_down(tier, exc if isinstance(exc, StorageError) else None):
                add(Mismatch(rid, f"signed manifest not readable: {exc}", "stored manifest", "unreadable"))
            return
        except (CryptoError, ValueError) as exc:
            add(Mismatch(rid, f"signed manifest not readable: {exc}", "stored manifest", "unreadable"))
            return
        digest = manifest_copy.signed_sha256(signed)
        if not digests_equal(digest, str(row["manifest_sha256"])):
            add(Mismatch(rid, "stored manifest differs from the catalog's hash of it",
                         str(row["manifest_sha256"]), digest))
        for what, want, found in manifest_binding(row, signed):
            add(Mismatch(rid, what, want, found))
        differs = manifest_copy.copy_differences(manifest_copy.parse(row["manifest"]), signed)
        if differs:
            add(Mismatch(rid, "catalog copy of the manifest differs from the signed one", "as signed",
                         ", ".join(differs)))
        self._check_signed(row, signed, report)
