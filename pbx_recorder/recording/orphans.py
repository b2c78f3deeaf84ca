"""Recordings MixMonitor finished that nobody owns any more: find them, and settle each one.

A finished file can be left in Asterisk's monitor folder with no catalog row: the recorder
died between the hang-up and the spool, or spooling failed and the retry was lost with the
process.  At start-up (after the live calls are restored) and then periodically, the daemon
scans the folder; a file is an orphan when its name parses as one of ours
(:func:`naming.parse_recording_file`), no tracked call or pipeline job holds its recording,
its catalog row (if any) is not past the spool, and it is closed (MixMonitor's ``.closed``
marker, or unchanged for ``min_age_s``).

What happens to it is decided from the call's catalog row (:func:`decide`, pure):

* ``ship``   the call was recorded with consent (or none was needed): spooled like any
             recording, flagged ``orphan_recovered``;
* ``delete`` the call was refused / not recorded, or a consent segment whose consent was not
             granted: it must not be kept (what the lost discard would have done);
* ``hold``   nothing says whether it may be kept (no call row): left in place, a catalog row
             in state ``orphaned`` and an ERROR alert; an operator decides.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbx_recorder.core.consent_policy import allows_recording
from pbx_recorder.core.naming import parse_recording_file

log = logging.getLogger(__name__)

MIN_AGE_S = 30.0
PAST_SPOOL = {"spooled", "stored", "verified", "migrated", "missing", "erased", "deleted", "orphaned"}
SHIP, DELETE, HOLD = "ship", "delete", "hold"


@dataclass
class Orphan:
    recording_id: str
    call_id: str
    kind: str
    paths: list[Path] = field(default_factory=list)

    @property
    def mode(self) -> str:
        names = [p.name for p in self.paths]
        if any(n.endswith(("-rx.wav", "-tx.wav")) for n in names):
            return "dual"
        return "stereo" if any(n.endswith(".raw") for n in names) else "mixed"


def scan(monitor_dir: str | Path, busy: Iterable[str], now: float,
         min_age_s: float = MIN_AGE_S, node_prefix: str = "") -> list[Orphan]:
    """Our closed recording files in ``monitor_dir`` whose recording id is not in ``busy``
    (with ``node_prefix``, only this node's: other recorder nodes settle their own)."""
    skip = set(busy)
    found: dict[str, Orphan] = {}
    try:
        entries = list(os.scandir(monitor_dir))
    except OSError as exc:
        log.error("ALERT monitor folder %s unreadable: %s", monitor_dir, exc)
        return []
    names = {e.name for e in entries}
    for entry in entries:
        parsed = parse_recording_file(entry.name)
        if parsed is None or parsed.recording_id in skip or not parsed.call_id.startswith(node_prefix) \
                or not entry.is_file(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if entry.name + ".closed" not in names and age < min_age_s:
            continue  # maybe still being written
        orphan = found.setdefault(parsed.recording_id,
                                  Orphan(parsed.recording_id, parsed.call_id, parsed.kind))
        orphan.paths.append(Path(entry.path))
    for orphan in found.values():
        orphan.paths.sort()
    return sorted(found.values(), key=lambda o: o.recording_id)


def decide(kind: str, call_row: dict[str, Any] | None) -> str:
    """ship / delete / hold for an orphan of ``kind``, from its call's catalog row."""
    if not call_row or not call_row.get("started_at"):
        return HOLD
    record = str(call_row.get("record_decision", ""))
    consent = str(call_row.get("consent_decision", ""))
    if record in ("refused", "no_record"):
        return DELETE
    if kind == "consent":
        return SHIP if consent == "granted" else DELETE
    if consent and not allows_recording(consent):
        return DELETE
    return SHIP


def metadata(orphan: Orphan, call_row: dict[str, Any]) -> dict[str, Any]:
    """FinalizeRecording metadata for a recovered orphan, from what the catalog knows."""
    seq = orphan.recording_id[-3:]
    return {
        "call_id": orphan.call_id, "recording_id": orphan.recording_id, "kind": orphan.kind,
        "seq": int(seq) if seq.isdigit() else 1, "mode": orphan.mode,
        "linkedid": call_row.get("linkedid", ""), "uniqueids": list(call_row.get("uniqueids") or []),
        "direction": call_row.get("direction", ""), "region": call_row.get("region", ""),
        "rule": call_row.get("rule", ""), "tags": list(call_row.get("tags") or []),
        "retention_class": call_row.get("retention_class", ""),
        "consent_decision": call_row.get("consent_decision", ""),
        "consent": dict(call_row.get("consent") or {}), "cdr": dict(call_row.get("cdr") or {}),
        "flags": [*(call_row.get("flags") or []), "orphan_recovered"],
    }
