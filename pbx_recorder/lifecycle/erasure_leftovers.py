"""What an erasure removes besides the catalog's rows and the tiers' objects (lifecycle/erasure.py
``Eraser.erase``): the subject's recordings still waiting in the spool and their leftovers in the
spool's quarantine, and the saved live-call snapshots that name the number."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pbx_recorder.catalog.number_protection import BlindIndex, is_token, lookup_keys
from pbx_recorder.lifecycle import number_lookup, policy, spool_erasure
from pbx_recorder.lifecycle.journal import Tx, rows
from pbx_recorder.lifecycle.late_copies import LateCopyGuard

if TYPE_CHECKING:
    from pbx_recorder.lifecycle.erasure import Eraser

Plan = list[tuple[dict[str, Any], list[Any], bool]]  #: (call, its recordings to erase now, kept)


def purge_spool(eraser: Eraser, plan: Plan, caller: str | None, call_id: str | None,
                withheld: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Recordings of the subject still waiting in the spool (not yet in any tier); those a
    legal hold covers (by call, or by a number the manifest names) are withheld.  Then the
    leftovers of those calls kept in the spool's quarantine (a crash's ``.raw`` original):
    found by call id and recording id (their note names no number), kept for a held call.
    Returns (removed recording ids, removed ``<recording id>/<file>`` of the quarantine)."""
    if eraser.spool_root is None:
        return [], []
    kept = {c["call_id"] for c, _, k in plan if k}
    erased = {c["call_id"] for c, _, k in plan if not k} | ({call_id} - kept if call_id else set())
    callers = {h: r["hold_id"] for r in rows(
        eraser.conn, "SELECT hold_id, value FROM holds WHERE released_at IS NULL AND scope='caller'")
        for h in number_lookup.subjects_of(r["value"])}

    index = BlindIndex(eraser.hash_key)

    def held(manifest: Any) -> str | None:
        found = (eraser.holds.hold_for({"recording_id": manifest.recording_id, "call_id": manifest.call_id})
                 or eraser.protected_reason(getattr(manifest, "retention_class", ""), False))
        if found:
            return found[0]
        named = spool_erasure.numbers_of(manifest)  # a caller hold is the digits' blind index
        hashes = ({policy.number_hash(k, n) for n in named for k in lookup_keys(eraser.hash_key)}
                  | {h for n in named for h in index.fulls(n)})
        return next((callers[h] for h in hashes if h in callers), None)

    spooled: dict[str, str] = {}
    removed = spool_erasure.purge(eraser.spool_root, call_ids=erased, number=caller, keep_call_ids=kept,
                                  held=held, withheld=withheld, removed_calls=spooled)
    kept |= {str(w["call_id"]) for w in withheld}  # (a held spooled entry keeps its call's leftovers)
    recordings = {r["recording_id"]: c["call_id"] for c, erase_now, k in plan if not k for r in erase_now}
    recordings.update(spooled)

    def holding(rid: str, cid: str) -> str | None:
        found = eraser.holds.hold_for({"recording_id": rid, "call_id": cid})
        return found[0] if found else None

    # kept calls too: their leftovers stay, and the receipt says so
    quarantined = spool_erasure.purge_quarantine(
        eraser.spool_root, call_ids=erased | kept | set(spooled.values()), recordings=recordings,
        keep_call_ids=kept, held=holding, withheld=withheld)
    return removed, quarantined

def purge_live(eraser: Eraser, plan: Plan, caller: str | None, request_id: str, now: float) -> int:
    """Saved live-call snapshots naming the number (a call without a catalog row yet, a stale
    snapshot left by a crash): they hold it in clear and would outlive the erasure.  The
    daemon does not store the rest of such a call (``lifecycle.late_copies``)."""
    if not caller:
        return 0
    digits = "".join(ch for ch in caller if ch.isdigit())
    kept = {c["call_id"] for c, _, k in plan if k}
    if len(digits) < 3:
        return 0
    found = [r for r in ({"call_id": r["call_id"], "state": live_text(eraser, r)}
                         for r in rows(eraser.conn, "SELECT call_id, state FROM live_calls"))
             if digits in r["state"]]
    hits = [r["call_id"] for r in found if r["call_id"] not in kept]
    if eraser.tombstones is not None:  # the call itself, should its next copy name no number
        wanted = policy.number_variants(caller)
        subject = {policy.number_hash(k, caller) for k in lookup_keys(eraser.hash_key)}
        calls = [r["call_id"] for r in found
                 if r["call_id"] not in kept and wanted & policy.numbers_in(r["state"])
                 and LateCopyGuard.hold(eraser.conn, r["call_id"], "", subject) is None]
        eraser._add_tombstones([("call_id", policy.subject_hash(k, c)) for c in calls
                              for k in lookup_keys(eraser.hash_key)],
                             request_id=request_id, now=now)
    with Tx(eraser.conn):
        for cid in hits:
            eraser.conn.execute("DELETE FROM live_calls WHERE call_id=?", (cid,))
    return len(hits)

def live_text(eraser: Eraser, row: Mapping[str, Any]) -> str:
    """A saved snapshot in clear (encrypted since schema 6: opened with the catalog keys)."""
    state = str(row["state"])
    if eraser.numbers is None or not is_token(state):
        return state
    return eraser.numbers.open_text("live_calls", str(row["call_id"]), state)
