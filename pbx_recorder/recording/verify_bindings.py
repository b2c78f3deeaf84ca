"""What ``verify`` compares a catalog row with besides storage: the ledger and the signed manifest.

A catalog row is only a claim.  The ledger (hash-chained, its head signed outside the
database: ``pbx_recorder.recording.chain_head``) says where each recording was stored, with which hash,
size and key; the signed manifest says which recording of which call it is and what the audio
hashes to.  A row that disagrees with either was edited (or swapped with another row's values).
Pure functions over rows and ledger entries; the caller reads the database.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pbx_recorder.catalog import engine
from pbx_recorder.core.naming import parse_storage_key
from pbx_recorder.recording import manifest_copy
from pbx_recorder.recording.ledger import wrapped_key_digest
from pbx_recorder.recording.manifest import canonical_json
from storage.hashing import digests_equal

LOCATION_EVENTS = ("stored", "migrated")


def ledger_expectation(conn: sqlite3.Connection, recording_id: str) -> dict[str, Any]:
    """What the ledger says the row must hold now: tier, key, sha256 (stored bytes), size,
    audio_sha256, encrypted, key_id, version_id; only the fields the ledger recorded."""
    return expectation_of(conn.execute(
        "SELECT event, payload FROM ledger WHERE recording_id = ? AND event IN "
        "('stored', 'migrated', 'rekeyed', 'reclassed') ORDER BY seq", (recording_id,)))


def expectation_of(entries: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """:func:`ledger_expectation` over one recording's ``(event, payload)`` entries in seq order
    (other events are ignored): pure, so ``verify`` can read a whole batch's entries at once."""
    expect: dict[str, Any] = {}
    retention: dict[str, Any] | None = None  # class and retain_until, once the ledger has said them
    for event, text in entries:
        if event not in ("stored", "migrated", "rekeyed", "reclassed"):
            continue
        try:
            payload = json.loads(text)
        except ValueError:
            continue  # the chain check names the broken row
        if not isinstance(payload, Mapping):
            continue
        if event == "stored":
            expect = {k: payload[k] for k in ("tier", "key", "sha256", "size", "audio_sha256", "encrypted",
                                              "key_id", "version_id", "objects", "wrapped_key_sha256",
                                              "created_at")
                      if k in payload}
            # stored since the class is in the payload: that class, no explicit end (the shipper
            # writes none); an older entry says nothing about either
            retention = ({"retention_class": str(payload["retention_class"]), "retain_until": None}
                         if "retention_class" in payload else None)
        elif event == "reclassed":
            retention = {"retention_class": str(payload.get("to", "")),
                         "retain_until": payload.get("retain_until")}
        elif event == "migrated":
            for src, dst in (("to", "tier"), ("key", "key"), ("sha256", "sha256")):
                if payload.get(src):
                    expect[dst] = payload[src]
            expect.pop("version_id", None)  # a new object on another tier
        elif payload.get("to_key_id"):
            expect["key_id"] = payload["to_key_id"]
            expect["wrapped_key_sha256"] = payload.get("wrapped_key_sha256", "")  # '' (older entry): unknown
    out = {k: v for k, v in expect.items() if v not in (None, "")}
    if retention is not None:  # ('' and None are values here: no class, no explicit end)
        out["retention"] = retention
    return out


def ledger_entries(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """The ledger's (event, payload) for each of ``ids``, in seq order: one statement per batch."""
    out: dict[str, list[tuple[str, str]]] = {rid: [] for rid in ids}
    if not ids:
        return out
    marks = ",".join("?" * len(ids))
    for rid, event, payload in conn.execute(f"SELECT recording_id, event, payload FROM ledger WHERE "
                                            f"recording_id IN ({marks}) ORDER BY seq", tuple(ids)):
        out[rid].append((str(event), str(payload)))
    return out


def locations_of(entries: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """(tier, key) pairs from ``stored`` {tier, key} and ``migrated`` {to, key} payloads."""
    places = set()
    for event, text in entries:
        if event not in ("stored", "migrated"):
            continue
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


def ledger_object_keys(entries: Iterable[tuple[str, str]]) -> set[str]:
    """The keys of the objects besides the primary (legs, kept original, manifest sidecar) that
    ``stored`` entries recorded: they keep their keys on every tier the recording moves to."""
    keys: set[str] = set()
    for event, text in entries:
        if event != "stored":
            continue
        try:
            payload = json.loads(text)
        except ValueError:
            continue  # verify_chain reports the broken row
        if isinstance(payload, dict) and isinstance(payload.get("objects"), dict):
            keys |= {str(k) for k in payload["objects"]}
    return keys


def manifest_binding(row: Mapping[str, Any], manifest: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(what, expected, found) for every field of ``row`` that ``manifest`` contradicts: the
    catalog's own copy (rows from before schema 11) or the stored signed manifest."""
    out: list[tuple[str, str, str]] = []
    for field in ("recording_id", "call_id"):
        if manifest.get(field) and str(manifest[field]) != str(row.get(field) or ""):
            out.append((f"row {field} differs from its signed manifest", str(manifest[field]),
                        str(row.get(field) or "")))
    signed_at = manifest.get("created_at")
    if isinstance(signed_at, (int, float)) and signed_at > 0 and "created_at" in row \
            and not _same_time(signed_at, row["created_at"]):
        out.append(("row created_at differs from its signed manifest (retention counts its period "
                    "from it)", str(signed_at), str(row["created_at"])))
    processing = manifest.get("processing")
    if isinstance(processing, Mapping) and "encrypted" in processing \
            and bool(processing["encrypted"]) != bool(row.get("encrypted")):
        out.append(("row encryption flag differs from its signed manifest",
                    str(bool(processing["encrypted"])), str(bool(row.get("encrypted")))))
    return out


def call_binding_problem(conn: Any, row: Mapping[str, Any]) -> str:
    """What says a recording row was moved to another call ('' when nothing): its storage key or its
    catalog manifest copy names another call or recording, or the ledger never recorded the row's
    storage key for it (a key rewritten to match the new call).  The service asks it before it serves
    audio: the call a row names decides the row scope and four-eyes replay, and ``call_id`` is not
    sealed in the row (``verify`` compares all of it; this is its cheap part: one indexed read)."""
    found = [f for f in manifest_binding(row, manifest_copy.parse(row.get("manifest"))) + key_binding(row)
             if "call_id" in f[0] or "recording_id" in f[0]]
    if found:
        return f"{found[0][0]} (expected {found[0][1]})"
    keys: set[str] = set()
    for (text,) in conn.execute("SELECT payload FROM ledger WHERE recording_id = ? AND event IN "
                                "('stored', 'migrated')", (str(row.get("recording_id") or ""),)):
        try:
            payload = json.loads(text)
        except ValueError:
            continue
        if isinstance(payload, Mapping) and payload.get("key"):
            keys.add(str(payload["key"]))
    if keys and str(row.get("storage_key") or "") not in keys:
        return "row storage_key is not one the ledger recorded for this recording"
    return ""


def key_binding(row: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The row's call and recording ids against its primary storage key, which names both
    (``naming.storage_key``) and which the ledger binds: what keeps a recording from being moved
    to another call while its signed manifest cannot be read (an archive class, schema 11)."""
    try:
        parsed = parse_storage_key(str(row.get("storage_key") or ""))
    except ValueError:
        return []  # a key of another layout (imported, hand-made): nothing to compare
    out: list[tuple[str, str, str]] = []
    for field, named in (("call_id", parsed.call_id), ("recording_id", parsed.recording_id)):
        if named != str(row.get(field) or ""):
            out.append((f"row {field} differs from its storage key", named, str(row.get(field) or "")))
    return out


def row_binding(row: Mapping[str, Any], expect: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(what, expected, found) for every field of ``row`` that its manifest, storage key or ledger
    contradicts."""
    out = manifest_binding(row, manifest_copy.parse(row.get("manifest"))) + key_binding(row)
    checks = (("tier", "tier"), ("key", "storage_key"), ("sha256", "sha256"), ("size", "size"),
              ("audio_sha256", "audio_sha256"), ("key_id", "key_id"))
    for ledger_field, column in checks:
        if ledger_field not in expect:
            continue
        want, have = str(expect[ledger_field]), str(row.get(column) if row.get(column) is not None else "")
        same = digests_equal(want, have) if ledger_field.endswith("sha256") and have else want == have
        if not same:
            out.append((f"row {column} differs from the ledger", want, have))
    if expect.get("wrapped_key_sha256"):
        have = wrapped_key_digest(str(row.get("wrapped_key") or ""))
        if not digests_equal(str(expect["wrapped_key_sha256"]), have):
            out.append(("row wrapped_key differs from the ledger (another recording's data key?)",
                        str(expect["wrapped_key_sha256"]), have))
    listed_hashes = _listed_hashes(row)
    lists_objects = _lists_objects(row)
    for key, signed in sorted(dict(expect.get("objects") or {}).items()):
        if lists_objects and str(key) not in listed_hashes:  # a leg or original struck off the row
            out.append((f"row objects no longer list {key}, which the ledger recorded stored", str(key),
                        "absent"))
            continue
        listed_hash = listed_hashes.get(str(key), "")
        if listed_hash and not digests_equal(str(signed), listed_hash):
            out.append((f"row objects[{key}] hash differs from the ledger", str(signed), listed_hash))
    if "created_at" in expect and "created_at" in row \
            and not _same_time(expect["created_at"], row["created_at"]):
        out.append(("row created_at differs from the ledger (retention counts its period from it)",
                    str(expect["created_at"]), str(row["created_at"])))
    if "encrypted" in expect and bool(expect["encrypted"]) != bool(row.get("encrypted")):
        out.append(("row encryption flag differs from the ledger", str(bool(expect["encrypted"])),
                    str(bool(row.get("encrypted")))))
    return out + retention_binding(row, expect.get("retention"))


def retention_binding(row: Mapping[str, Any], said: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    """The row's retention class and explicit end against the ledger's last word on them (the
    ``stored`` entry, then ``reclassed`` ones): a class or ``retain_until`` edited by hand would
    change when retention may dispose of the recording.  Rows read without these columns, or
    stored before the ledger recorded the class, are not compared."""
    if said is None or "retention_class" not in row:
        return []
    out: list[tuple[str, str, str]] = []
    want_class, have_class = str(said.get("retention_class") or ""), str(row.get("retention_class") or "")
    if want_class != have_class:
        out.append(("row retention_class differs from the ledger", want_class, have_class))
    want, have = said.get("retain_until"), row.get("retain_until")
    if "retain_until" in row and not _same_time(want, have):
        out.append(("row retain_until differs from the ledger", _time_text(want), _time_text(have)))
    return out


def _same_time(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return abs(float(a) - float(b)) < 1e-3
    except (TypeError, ValueError):
        return False


def _time_text(value: Any) -> str:
    return "none" if value is None else str(value)


def _lists_objects(row: Mapping[str, Any]) -> bool:
    """The row has an ``objects`` list (schema 3 on; a catalog read without the column: no)."""
    raw = row.get("objects")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "[]")
        except ValueError:
            return True  # a broken list lists nothing the ledger recorded
    return isinstance(raw, list) and bool(raw)


def _listed_hashes(row: Mapping[str, Any]) -> dict[str, str]:
    raw = row.get("objects")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "[]")
        except ValueError:
            return {}
    if not isinstance(raw, list):
        return {}
    return {str(o.get("key")): str(o.get("sha256") or "") for o in raw if isinstance(o, Mapping)}


def vanished_ids(conn: sqlite3.Connection, present: set[str], only: str | None) -> list[str]:
    """Recordings the ledger says were stored that have no catalog row and no deletion entry:
    someone removed the row (and maybe the objects) outside the lifecycle."""
    sql = ("SELECT DISTINCT recording_id FROM ledger WHERE event = 'stored' AND recording_id NOT IN "
           "(SELECT recording_id FROM ledger WHERE event IN ('deleted', 'erased')) ORDER BY recording_id")
    return [rid for (rid,) in conn.execute(sql) if rid not in present and (only is None or rid == only)]


def hold_binding(conn: sqlite3.Connection, row: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """A recording the ledger says is under legal hold (its last hold event is ``held``) must
    have an active hold in the catalog: deleting the ``holds`` row (or setting ``released_at``)
    and clearing ``legal_hold`` by hand would let retention delete evidence without a trace."""
    last = conn.execute("SELECT event FROM ledger WHERE recording_id=? AND event IN ('held', 'released') "
                        "ORDER BY seq DESC LIMIT 1", (row["recording_id"],)).fetchone()
    if last is None or last[0] != "held":
        return []
    active = conn.execute("SELECT 1 FROM hold_recordings hr JOIN holds h ON h.hold_id=hr.hold_id "
                          "WHERE hr.recording_id=? AND h.released_at IS NULL LIMIT 1",
                          (row["recording_id"],)).fetchone()
    found = []
    if active is None:
        found.append(("legal hold in the ledger has no active hold in the catalog (removed without a "
                      "release entry)", "active hold", "none"))
    flag = conn.execute("SELECT legal_hold FROM recordings WHERE recording_id=?",
                        (row["recording_id"],)).fetchone()
    if flag is not None and not flag[0]:
        found.append(("legal hold in the ledger but the row's legal_hold flag is cleared", "1", "0"))
    return found


# -- the holds table against the ledger --------------------------------------------------------
#: the ledger's ``recording_id`` of every hold event (one index range: ``ledger_recording``)
HOLDS_LEDGER = "legal-holds"
HOLD_EVENTS = ("hold_added", "hold_rekeyed", "hold_released")
#: ``catalog_settings`` row written once the holds that predate hold entries got theirs
HOLDS_LEDGERED = "holds_ledgered"


def hold_value_digest(value: Any, value4: Any) -> str:
    """What the ledger keeps of a hold's value (call id, blind index, query): its SHA-256 with the
    last-4 index beside it, never the value (a query may name a number)."""
    return hashlib.sha256(canonical_json([str(value or ""), str(value4 or "")])).hexdigest()


def hold_ledger_of(entries: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Each hold the ledger knows (``hold_id`` -> scope, value digest, released), from its hold
    events in seq order: pure."""
    said: dict[str, dict[str, Any]] = {}
    for event, text in entries:
        try:
            payload = json.loads(text)
        except ValueError:
            continue  # the chain check names the broken row
        if not isinstance(payload, Mapping) or not payload.get("hold_id"):
            continue
        hid = str(payload["hold_id"])
        if event == "hold_added":
            said[hid] = {"scope": str(payload.get("scope", "")),
                         "value_sha256": str(payload.get("value_sha256", "")), "released": False}
        elif event == "hold_rekeyed" and hid in said:
            said[hid]["value_sha256"] = str(payload.get("value_sha256", ""))
        elif event == "hold_released" and hid in said:
            said[hid]["released"] = True
    return said


def hold_ledger(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """:func:`hold_ledger_of` over the catalog's hold entries (one index range)."""
    return hold_ledger_of((str(e), str(p)) for e, p in conn.execute(
        "SELECT event, payload FROM ledger WHERE recording_id = ? ORDER BY seq", (HOLDS_LEDGER,)))


def holds_binding(holds: Iterable[Mapping[str, Any]], said: Mapping[str, Mapping[str, Any]],
                  ledgered: bool) -> list[tuple[str, str, str, str]]:
    """(hold id, what, expected, found) for every ``holds`` row the ledger contradicts: a hold
    removed, its scope or value edited, released without a release entry, or made active again;
    and (``ledgered``: every older hold has its entries) a row no ``hold add`` wrote.  A hold
    protects recordings stored after it by its row alone: an edited row unprotects them."""
    out: list[tuple[str, str, str, str]] = []
    seen: set[str] = set()
    for row in holds:
        hid = str(row["hold_id"])
        seen.add(hid)
        entry = said.get(hid)
        if entry is None:
            if ledgered:
                out.append((hid, "hold has no ledger entry (not written by hold add)", "hold_added", "none"))
            continue
        if str(row.get("scope") or "") != entry["scope"]:
            out.append((hid, "hold scope differs from the ledger", entry["scope"], str(row.get("scope"))))
        found = hold_value_digest(row.get("value"), row.get("value4"))
        if found != entry["value_sha256"]:
            out.append((hid, "hold value differs from the ledger (edited)", entry["value_sha256"], found))
        released = row.get("released_at") is not None
        if released and not entry["released"]:
            out.append((hid, "hold released in the catalog without a hold_released ledger entry",
                        "active", "released"))
        elif entry["released"] and not released:
            out.append((hid, "hold active in the catalog but released in the ledger", "released", "active"))
    for hid in sorted(set(said) - seen):
        if not said[hid]["released"]:
            out.append((hid, "active legal hold in the ledger has no holds row (removed)", "holds row",
                        "absent"))
    return out


def holds_mismatches(conn: sqlite3.Connection, numbers: Any = None
                     ) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """:func:`holds_binding` over the catalog (the whole holds table: a small one), and a note for
    holds from before hold entries that no hold, erasure or retention command has recorded yet,
    and (given the catalog's number keys) one for each active query hold whose stored query does
    not open: it holds every recording (``HoldManager.hold_for``) -- a note, not a mismatch, unless
    the ledger disagrees with the row too (then that is reported above it)."""
    if "value4" not in engine.table_columns(conn, "holds"):
        return [], []  # a catalog from before schema 15 (verify reads old catalogs as they are)
    holds = [dict(zip(("hold_id", "scope", "value", "value4", "released_at"), r, strict=True))
             for r in conn.execute("SELECT hold_id, scope, value, value4, released_at FROM holds")]
    ledgered = conn.execute("SELECT 1 FROM catalog_settings WHERE name = ?",
                            (HOLDS_LEDGERED,)).fetchone() is not None
    said = hold_ledger(conn)
    notes = []
    if not ledgered:
        old = sum(1 for h in holds if str(h["hold_id"]) not in said)
        if old:
            notes.append(f"{old} legal hold(s) predate hold ledger entries (not covered until the next "
                         "hold, erase or retention command records them)")
    if numbers is not None:
        notes += unreadable_hold_notes(holds, numbers)
    return holds_binding(holds, said, ledgered), notes


def unreadable_hold_notes(holds: Iterable[Mapping[str, Any]], numbers: Any) -> list[str]:
    """A note naming each active query hold whose stored query cannot be read with ``numbers``
    (``query_hold_rows.unreadable_because``: what hold_for and ``hold list`` decide by)."""
    from pbx_recorder.lifecycle.query_hold_rows import UNREADABLE, unreadable_because

    notes = []
    for h in holds:
        if h.get("scope") != "query" or h.get("released_at") is not None:
            continue
        why = unreadable_because(numbers, str(h["hold_id"]), str(h.get("value") or ""))
        if why:
            notes.append(f"legal hold {h['hold_id']} {UNREADABLE} (its stored query cannot be read: {why}; "
                         "it is kept until released: release it and place it again, or restore the key "
                         "it was sealed under)")
    return notes


# -- streaming forms for whole-catalog passes (no Python set of every id) -----------------------
_GONE = "('deleted', 'erased')"


def removed_ids(conn: sqlite3.Connection, after_seq: int = 0) -> Iterator[str]:
    """Recordings with a deletion/erasure ledger entry (after ``after_seq``) and no catalog row,
    streamed from SQLite (the recordings primary key answers each probe; ``NOT INDEXED``: the
    ledger is walked by ``seq``, never through the recording-id index, so an incremental pass
    reads only the entries after its marks)."""
    hint = engine.no_index_hint(conn)
    yield from (str(r[0]) for r in conn.execute(
        f"SELECT DISTINCT l.recording_id FROM ledger l {hint} WHERE l.event IN {_GONE} AND l.seq > ? "
        "AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.recording_id = l.recording_id) "
        "ORDER BY l.recording_id", (after_seq,)))


def vanished_stream(conn: sqlite3.Connection, after_seq: int = 0) -> Iterator[str]:
    """:func:`vanished_ids` for the whole catalog, streamed (``after_seq``: only ``stored`` entries
    after it, for an incremental pass; a deletion entry always follows its recording's ``stored``
    entry, so only those after it are read too: the cost is that of the changes)."""
    hint = engine.no_index_hint(conn)
    yield from (str(r[0]) for r in conn.execute(
        f"SELECT DISTINCT l.recording_id FROM ledger l {hint} WHERE l.event = 'stored' AND l.seq > ? "
        f"AND l.recording_id NOT IN (SELECT recording_id FROM ledger {hint} WHERE event IN "
        f"{_GONE} AND seq > ?) AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.recording_id = "
        "l.recording_id) ORDER BY l.recording_id", (after_seq, after_seq)))
