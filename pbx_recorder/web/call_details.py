"""What the call page shows beside the call row, read from the catalog (no decision here).

* recordings: tier, hash, signature, where it is (``hot``, ``cold``: an archive storage class,
  ``restoring``: a restore requested or under way), retention and holds;
* the timeline: the call's start/answer/end, the consent dialog's moments and digits, each
  recording's span and PCI pauses (from its manifest, where the recorder keeps them), the
  ledger's entries (stored, migrated, held, ...); legs are the call's channel ids, a transfer
  is the call's ``transferred`` flag (the catalog keeps no time for it);
* holds on the call or its recordings: their reason and creator only to roles holding
  ``holds.read`` (a hold's reason can name an investigation of the very agent looking; the hold
  pages and API refuse that agent too); anyone else sees that the call is held, nothing more;
* who viewed, played or downloaded it: the audit log's rows naming the call or a recording.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pbx_recorder.core.masking import sanitize
from pbx_recorder.recording import manifest_copy
from pbx_recorder.service.context import ServiceContext

ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "COLD", "ARCHIVE"})
RESTORING = frozenset({"requested", "in_progress"})
ACCESS_ACTIONS = ("calls.view", "calls.view.unmask", "calls.play", "calls.download", "calls.export",
                  "calls.export.item")
MAX_ACCESS_ROWS = 200


def where_stored(rec: Mapping[str, Any]) -> str:
    if str(rec.get("restore_state") or "") in RESTORING:
        return "restoring"
    cls = str(rec.get("storage_class") or "").upper()
    return "cold" if cls in ARCHIVE_CLASSES or "cold" in str(rec.get("tier") or "").lower() else "hot"


def recording_view(rec: Mapping[str, Any]) -> dict[str, Any]:
    manifest = manifest_copy.parse(rec.get("manifest"))  # the catalog copy keeps the pauses
    return {"recording_id": rec["recording_id"], "kind": rec.get("kind") or "call", "mode": rec.get("mode"),
            "format": rec.get("format"), "duration_s": rec.get("duration_s"), "tier": rec.get("tier"),
            "sha256": rec.get("sha256"), "hash_alg": rec.get("hash_alg") or "sha256",
            "signed": bool(rec.get("signature")), "encrypted": bool(rec.get("encrypted")),
            "state": rec.get("state"), "where": where_stored(rec), "retain_until": rec.get("retain_until"),
            "retention_class": rec.get("retention_class"), "legal_hold": bool(rec.get("legal_hold")),
            "pauses": [list(p) for p in manifest.get("pauses", ()) if isinstance(p, list | tuple)],
            "flags": recording_flags(rec.get("flags"))}


def recording_flags(value: Any) -> list[str]:
    """The recording's flags (``cut``, ``pause_missed``, ``pause_auto_resumed`` ...): what QA must
    know when judging its audio; the catalog column's JSON list, decoded or not yet."""
    if isinstance(value, str):
        try:
            value = json.loads(value or "[]")
        except ValueError:
            return []
    return [str(f) for f in value] if isinstance(value, list) else []


def timeline(row: Mapping[str, Any], recordings: list[dict[str, Any]],
             ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{"at", "what", "detail"}] oldest first."""
    events: list[dict[str, Any]] = []

    def add(at: Any, what: str, detail: str = "") -> None:
        if isinstance(at, int | float):
            events.append({"at": float(at), "what": what, "detail": detail})

    add(row.get("started_at"), "started")
    add(row.get("answered_at"), "answered")
    add(row.get("ended_at"), "ended")
    found = row.get("consent")
    consent: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    for key in ("notified_at", "asked_at", "answered_at", "decided_at"):
        add(consent.get(key), "consent." + key.removesuffix("_at"),
            str(consent.get("decision") or "") if key == "decided_at" else "")
    for rec in recordings:
        for start, end in rec["pauses"]:
            add(start, "pause", f"{rec['recording_id']} ({max(float(end) - float(start), 0):.0f} s)")
            add(end, "resume", rec["recording_id"])
    for entry in ledger:
        add(entry["at"], "ledger." + entry["event"], entry["recording_id"])
    return sorted(events, key=lambda e: e["at"])


def ledger_of(ctx: ServiceContext, recording_ids: list[str]) -> list[dict[str, Any]]:
    if not recording_ids:
        return []
    marks = ", ".join("?" for _ in recording_ids)
    rows = ctx.catalog.connection().execute(
        f"SELECT at, event, recording_id FROM ledger WHERE recording_id IN ({marks}) ORDER BY seq",
        recording_ids).fetchall()
    return [{"at": float(r[0]), "event": sanitize(r[1], limit=40), "recording_id": str(r[2])} for r in rows]


def holds_of(ctx: ServiceContext, call_id: str, recording_ids: list[str]) -> list[dict[str, Any]]:
    params: list[Any] = [call_id, *recording_ids]
    marks = ", ".join("?" for _ in recording_ids) or "NULL"
    rows = ctx.catalog.connection().execute(
        "SELECT hold_id, reason, created_by, created_at, released_at FROM holds "
        f"WHERE (scope = 'call' AND value = ?) OR hold_id IN (SELECT hold_id FROM hold_recordings "
        f"WHERE recording_id IN ({marks})) ORDER BY created_at", params).fetchall()
    return [{"hold_id": str(r[0]), "reason": str(r[1]), "created_by": str(r[2]), "created_at": r[3],
             "released_at": r[4]} for r in rows]


def holds_shown(holds: list[dict[str, Any]], may_read: bool) -> tuple[bool, list[dict[str, Any]] | None]:
    """(whether a hold is in force, the holds to list: None for a role without ``holds.read``)."""
    return any(h["released_at"] is None for h in holds), (holds if may_read else None)


def access_of(ctx: ServiceContext, call_id: str, recording_ids: list[str]) -> list[dict[str, Any]]:
    """Who viewed, played, downloaded or exported the call or its recordings, newest first."""
    targets = [call_id, *recording_ids]
    t_marks, a_marks = ", ".join("?" for _ in targets), ", ".join("?" for _ in ACCESS_ACTIONS)
    rows = ctx.catalog.connection().execute(
        f"SELECT at, actor, role, action, target, detail FROM audit_log WHERE target IN ({t_marks}) "
        f"AND action IN ({a_marks}) ORDER BY id DESC LIMIT {MAX_ACCESS_ROWS}",
        [*targets, *ACCESS_ACTIONS]).fetchall()
    out = []
    for r in rows:
        try:
            client = json.loads(r[5]).get("client", "") if r[5] else ""
        except (ValueError, AttributeError):
            client = ""
        out.append({"at": float(r[0]), "actor": str(r[1]), "role": str(r[2]), "action": str(r[3]),
                    "target": str(r[4]), "client": str(client)})
    return out
