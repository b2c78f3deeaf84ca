"""The data step that records, in calls written before schema 20, the tags their recording rule set,
read from their recordings' signed manifests, and seals them with the row (call seal v2).

Why: four-eyes replay (``service.four_eyes.set_by_rule``) reads the tags a call's rule set from
``calls.rule_tags``; a row written before schema 20 has none (``''``), and for it the tags come
from the manifest copies in the catalog, which keep them only for recordings written before schema
11, else from the rule *as configured today*.  So for calls recorded under schemas 11-19 an admin
who edited a rule changed whether older calls need a replay grant.  The signed manifest in storage
holds the rule's tags when the call was recorded (``tags``); this step writes their union into the
row, sealed, as the recorder writes a new row.

:func:`run` (``pbx-recorder catalog migrate``, after the schema-11 shrink, so every stored
recording has its manifest apart) walks the calls with ``rule_tags = ''`` in ``call_id`` batches.
The batch's stored manifests are read from their tier and checked against ``manifest_sha256`` and
their Ed25519 signature (``manifest_numbers._read``; a whole copy left in the catalog is checked
against its signature), outside any transaction.  Then, in one transaction per batch, each call
whose every stored recording's manifest verified is re-read: a row or a recording that changed
since it was read is left for the next run (a concurrent writer); a row whose CURRENT seal does not
verify is left as it is and named (re-sealing it would launder an edit: ``verify`` keeps reporting
it); else ``rule_tags`` and the v2 seal (``CallSealer``, opening the numbers as the daemon does) are
written in one compare-and-set UPDATE.

A call without a stored recording is left as it is (``''``): nothing to play, download or export,
so nothing to re-seal for.  Resumable: the cursor is saved with each batch.  A call whose manifests
cannot all be read now (an archive class not restored, a tier down) or do not verify, whose row
does not open, whose seal is broken or that changed under the walk, is counted and named (ids only,
at most :data:`step_walk.MAX_NAMED`); the step is done only when a walk ended with none (the next run walks
again).  Nothing here logs a number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pbx_recorder.catalog import manifest_numbers, step_walk
from pbx_recorder.catalog.manifest_shrink import STORED_STATES
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.errors import CryptoError
from pbx_recorder.recording import manifest_copy
from pbx_recorder.recording.call_seal import CallSealer, seal_valid
from pbx_recorder.recording.signing import verify_manifest
from storage.base import Tier
from storage.keyring import KeyRing

log = logging.getLogger(__name__)

STATE = "rule_tags_pass"
DEFAULT_BATCH = 200


@dataclass
class Report:
    calls: int = 0  # calls without recorded rule tags walked
    read: int = 0  # signed manifests read back and verified
    recorded: int = 0  # calls that got their rule's tags, re-sealed (v2)
    bare: int = 0  # calls without a stored recording: left as they are
    unread: int = 0  # calls whose manifests could not all be read or verified
    broken: int = 0  # calls whose current seal does not verify (or whose row does not open): not re-sealed
    changed: int = 0  # calls changed by another writer during the walk (tried again next run)
    errors: list[str] = field(default_factory=list)  # "<id>: why" (at most step_walk.MAX_NAMED)
    done: bool = False
    skipped: bool = False  # done by an earlier run

    @property
    def left(self) -> int:
        return self.unread + self.broken + self.changed



def pending(conn: Any) -> bool:
    """Has this step still to run over this catalog?"""
    return step_walk.pending(conn, STATE)



def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]


def _stored(conn: Any, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Call id -> the rows of its recordings still stored (an erased or expired one has nothing to play)."""
    marks = ",".join("?" * len(ids))
    states = tuple(STORED_STATES)
    cur = conn.execute(f"SELECT * FROM recordings WHERE call_id IN ({marks}) AND state IN "
                       f"({','.join('?' * len(states))}) ORDER BY recording_id", (*ids, *states))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in _dicts(cur):
        out.setdefault(str(row["call_id"]), []).append(row)
    return out


def _signed(row: Mapping[str, Any], numbers: NumberProtection, tiers: Mapping[str, Tier],
            keyring: KeyRing | None, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The recording's signed manifest, verified; ValueError naming what is wrong."""
    if row.get("manifest_sha256"):  # stored apart (schema 11 on): read back from its tier
        return manifest_numbers._read(row, tiers, keyring, public_key)
    try:  # a whole copy the schema-11 shrink left in the catalog
        copy = manifest_copy.parse(row.get("manifest"), strict=True)
        signed = manifest_copy.parse(numbers.open_manifest(str(row["recording_id"]), copy), strict=True)
    except (ValueError, CryptoError) as exc:
        raise ValueError(f"the catalog's manifest copy does not open ({exc})") from exc
    if not row.get("signature") or not verify_manifest(signed, str(row["signature"]), public_key):
        raise ValueError("the catalog's manifest copy does not verify against its signature")
    if signed.get("recording_id") != row["recording_id"] or signed.get("call_id") != row["call_id"]:
        raise ValueError("the manifest copy is another recording's")
    return signed


def tags_of(manifests: list[Mapping[str, Any]]) -> list[str]:
    """The union of the manifests' ``tags`` (the rule's tags when each was recorded), sorted. Pure."""
    found: set[str] = set()
    for manifest in manifests:
        tags = manifest.get("tags")
        if isinstance(tags, list):
            found |= {str(t) for t in tags if t is not None}
    return sorted(found)


def _read(recordings: dict[str, list[dict[str, Any]]], numbers: NumberProtection, tiers: Mapping[str, Tier],
          keyring: KeyRing | None, public_key: Ed25519PublicKey, report: Report) -> dict[str, list[str]]:
    """Call id -> its rule's tags, for the calls whose every stored manifest verified (no transaction)."""
    out: dict[str, list[str]] = {}
    for call_id, rows in sorted(recordings.items()):
        manifests: list[Mapping[str, Any]] = []
        for row in rows:
            try:
                manifests.append(_signed(row, numbers, tiers, keyring, public_key))
            except ValueError as exc:
                report.unread += 1
                step_walk.name(report.errors, f"{call_id}: recording {row['recording_id']}: {exc}")
                break
        else:
            report.read += len(manifests)
            out[call_id] = tags_of(manifests)
    return out


def _key(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(str(r["recording_id"]), str(r.get("manifest_sha256") or ""), str(r.get("signature") or ""))
            for r in rows]


def _write(conn: Any, sealer: CallSealer, numbers: NumberProtection, public_key: Ed25519PublicKey,
           seen: dict[str, dict[str, Any]], recordings: dict[str, list[dict[str, Any]]],
           tags: dict[str, list[str]], report: Report) -> None:
    """Record and seal each call's tags (in the caller's transaction)."""
    if not tags:
        return
    now = step_walk.call_rows(conn, sorted(tags), lock=True)
    again = _stored(conn, sorted(tags))
    for call_id, found in sorted(tags.items()):
        row = now.get(call_id)
        if row is None:
            continue  # erased since it was read: nothing to record
        if row != seen.get(call_id) or _key(again.get(call_id, [])) != _key(recordings.get(call_id, [])):
            report.changed += 1
            step_walk.name(report.errors,
                           f"{call_id}: changed while it was read (tried again by the next run)")
            continue
        try:
            intact = seal_valid(numbers.open_call(row), public_key)
        except CryptoError as exc:
            report.broken += 1
            step_walk.name(report.errors, f"{call_id}: its numbers do not open ({exc}); not re-sealed")
            continue
        if not intact:
            report.broken += 1
            step_walk.name(report.errors,
                           f"{call_id}: its seal does not verify (see `pbx-recorder verify`); not re-sealed")
            continue
        recorded = json.dumps(found)
        sealed = sealer.seal_of({**row, "rule_tags": recorded})
        cur = conn.execute("UPDATE calls SET rule_tags = ?, seal = ? WHERE call_id = ? AND rule_tags = '' "
                           "AND seal = ?", (recorded, sealed, call_id, row["seal"]))
        if cur.rowcount == 1:
            report.recorded += 1
        else:
            report.changed += 1
            step_walk.name(report.errors,
                           f"{call_id}: changed while it was written (tried again by the next run)")


def run(conn: Any, numbers: NumberProtection, sealer: CallSealer, tiers: Mapping[str, Tier],
        keyring: KeyRing | None, public_key: Ed25519PublicKey, *, batch: int = DEFAULT_BATCH,
        force: bool = False, progress: Callable[[str, int], None] | None = None) -> Report:
    """Record the tags older calls' rules set, from their signed manifests; see the module doc."""
    report = Report()

    def read(ids: list[str]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
        """The batch's rows, stored recordings and verified manifests' tags (storage is read
        before the batch's transaction, never inside one)."""
        seen = step_walk.call_rows(conn, ids)
        recordings = _stored(conn, ids) if ids else {}
        report.bare += sum(1 for c in ids if c in seen and c not in recordings)
        return seen, recordings, _read(recordings, numbers, tiers, keyring, public_key, report)

    step_walk.run(
        conn, STATE, report, force=force, label="rule tags", progress=progress,
        ids=lambda cursor: [str(r[0]) for r in conn.execute(
            "SELECT call_id FROM calls WHERE rule_tags = '' AND call_id > ? ORDER BY call_id LIMIT ?",
            (cursor, batch)).fetchall()],
        read=read, write=lambda found: _write(conn, sealer, numbers, public_key, *found, report),
        left=lambda: report.left)
    for line in report.errors:
        log.warning("rule tags not recorded: %s", line)
    log.info("rule tags data step: %d calls, %d manifests read, %d calls recorded and re-sealed, %d without "
             "recording, %d unread, %d with a broken seal, %d changed, done=%s", report.calls, report.read,
             report.recorded, report.bare, report.unread, report.broken, report.changed, report.done)
    return report
