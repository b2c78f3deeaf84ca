"""The data step of schema 11: rows written before keep their whole signed manifest; shrink them.

Schema 11 only adds ``recordings.manifest_sha256``; a row written before it holds the whole signed
manifest in ``recordings.manifest`` (its numbers sealed by schema 6's data step) and is verified
from that copy. :func:`shrink` walks the recordings still stored (stored | verified | migrated) in
key order, in batches of one transaction each (``number_migration``'s walk), and for each row
whose copy is whole: opens its numbers, checks its Ed25519 signature, and only then keeps the
short copy and the hash of the signed bytes (``pbx_recorder.recording.manifest_copy``), as the recorder
writes rows now; the numbers the copy named that the call's row does not hold are sealed first, in
the same transaction (``catalog.extra_numbers``), so ``keys rotate-index`` still re-indexes them.
``verify`` then checks the stored manifest object against that hash, so a copy that differed from
the stored object is reported there. A row whose copy does not verify (edited in the catalog,
unsigned, numbers that do not open) is left whole and reported, never dropped. Rows of recordings
that are gone keep what they have (their data key was removed from the copy, so its signature no
longer verifies; ``verify`` does not read them).

Run by ``pbx-recorder catalog migrate`` when the signing key is configured.  Resumable: a row
shrunk has a hash and is skipped by the next run.  SQLite frees the pages; ``VACUUM`` returns them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pbx_recorder.catalog import engine, extra_numbers
from pbx_recorder.catalog.number_migration import DEFAULT_BATCH, _walk
from pbx_recorder.catalog.protected_rows import CLEAR_MANIFEST_FIELDS, NumberProtection, named_digits
from pbx_recorder.errors import CatalogError, CryptoError
from pbx_recorder.recording import manifest_copy
from pbx_recorder.recording.signing import verify_manifest

log = logging.getLogger(__name__)

STORED_STATES = ("stored", "verified", "migrated")


@dataclass
class ShrinkReport:
    shrunk: int = 0
    kept: list[str] = field(default_factory=list)  # "<recording id>: why", left whole
    vacuumed: bool = False


def shrink(conn: sqlite3.Connection, numbers: NumberProtection | None, public_key: Ed25519PublicKey, *,
           batch: int = DEFAULT_BATCH, vacuum: bool = True) -> ShrinkReport:
    """Keep only the copy and the hash of every stored recording's signed manifest; see the module doc."""
    report = ShrinkReport()
    states = {str(s) for s in STORED_STATES}

    def recording(row: dict[str, Any]) -> bool:
        if row.get("manifest_sha256") or str(row.get("state")) not in states:
            return False
        rid = str(row["recording_id"])
        try:
            signed = manifest_copy.parse(row.get("manifest"), strict=True)
            if numbers is not None:
                signed = manifest_copy.parse(numbers.open_manifest(rid, signed), strict=True)
        except (ValueError, CryptoError) as exc:
            report.kept.append(f"{rid}: manifest not readable ({exc})")
            return False
        if not signed.get("recording_id"):
            return False  # not a signed manifest (nothing to shrink)
        if not row.get("signature") or not verify_manifest(signed, str(row["signature"]), public_key):
            report.kept.append(f"{rid}: the catalog's copy does not verify against its signature")
            return False
        keep = () if numbers is not None else CLEAR_MANIFEST_FIELDS  # as the repository writes them
        copy, digest = manifest_copy.catalog_copy(signed, keep)
        if numbers is not None:  # the copy's numbers go: those the call's row lacks are sealed first
            call_id = str(row["call_id"])
            extra = named_digits(signed.get("cdr"), signed.get("callee_num"))
            extra -= extra_numbers.row_digits(conn, numbers, call_id)
            extra_numbers.add(conn, numbers, call_id, extra)
        conn.execute("UPDATE recordings SET manifest = ?, manifest_sha256 = ? WHERE recording_id = ?",
                     (json.dumps(copy, sort_keys=True, separators=(",", ":")), digest, rid))
        report.shrunk += 1
        return True

    try:
        _walk(conn, "recordings", "recording_id", batch, recording, [])
        if report.shrunk and vacuum and not engine.is_postgres(conn):
            engine.compact(conn)
            conn.execute("VACUUM")
            engine.compact(conn)
            report.vacuumed = True
    except engine.db_errors() as exc:
        raise CatalogError(f"shrinking the catalog's manifest copies failed (run `pbx-recorder catalog "
                           f"migrate` again: it resumes): {exc}") from exc
    for line in report.kept:
        log.warning("manifest copy kept whole: %s", line)
    log.info("catalog manifest copies shrunk: %d (%d kept whole)", report.shrunk, len(report.kept))
    return report
