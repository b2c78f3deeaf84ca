"""Legal holds: by call, by caller (keyed hash, never the number in clear) or by query.

A hold sets ``recordings.legal_hold``, records the recordings it covered in
``hold_recordings``, asks tiers that enforce holds natively (S3 Object Lock) to set
theirs on every object of each recording (``recording_objects.objects_of``), and
appends ledger ``held`` / ``released``.  ``hold_for`` is what retention and
erasure ask before deleting: it also catches calls that arrived after a hold was placed
(call, caller and query holds alike).

The holds themselves are in the ledger (``hold_added`` / ``hold_rekeyed`` / ``hold_released``
under ``verify_bindings.HOLDS_LEDGER``: hold id, scope, the SHA-256 of the stored value, never a
number), because a hold protects a recording stored after it by its ``holds`` row alone: ``verify``
reports a row edited, removed or inserted by hand, and :meth:`HoldManager.active_holds` refuses
every deletion while an active hold of the ledger is missing or altered in the table.  Holds of a
catalog from before these entries get theirs once, at the first use of a ``HoldManager`` that
writes (``catalog_settings`` ``holds_ledgered``).  A recording stored while an active hold covers
it is held at once (:class:`HoldOnStore`, the shipper's hook): its own row and ``held`` entry.
A query hold's number filters are stored as blind indexes (``query_hold_rows.protect_numbers``),
and the whole query as one token under the catalog key bound to the hold id
(``query_hold_rows.sealed``): ``holds.value`` and the ledger's digest are of the token, and every
reader that decides what the hold covers opens it.  A token that does not open (or a value that
is no query) holds everything, and says so: ``hold list`` and the console mark the hold
``UNREADABLE: holds everything``, a recording it withholds is given the reason "<reason>
(unreadable: holds everything)", and ``verify`` names it in a note.
"""

from __future__ import annotations

import builtins
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pbx_recorder import scan
from pbx_recorder.catalog.number_protection import BlindIndex
from pbx_recorder.catalog.protected_rows import NumberProtection, call_ids_clause
from pbx_recorder.core.masking import mask_text
from pbx_recorder.errors import CryptoError, NotFound, PolicyRefusal, StorageError
from pbx_recorder.lifecycle import number_lookup, policy, query_hold_rows
from pbx_recorder.lifecycle.journal import LedgerAppend, Tx, default_ledger, rows
from pbx_recorder.lifecycle.request_ids import new_id
from pbx_recorder.recording.recording_objects import objects_of
from pbx_recorder.recording.verify_bindings import (
    HOLDS_LEDGER,
    HOLDS_LEDGERED,
    hold_ledger,
    hold_value_digest,
    holds_binding,
)
from storage.base import Tier

log = logging.getLogger(__name__)
SCOPES = ("call", "caller", "query")
#: what the reason of a recording held by an unreadable query hold adds (``HoldManager._reason_of``)
UNREADABLE_REASON = "unreadable: holds everything"


class HoldManager:
    def __init__(
        self,
        conn: sqlite3.Connection,
        tiers: Mapping[str, Tier],
        *,
        hash_key: bytes,
        ledger: LedgerAppend | None = None,
        numbers: NumberProtection | None = None,
    ) -> None:
        self.numbers = numbers  # opens encrypted rows for query holds (catalog.protected_rows)
        self.conn = conn
        self.tiers = tiers
        self.hash_key = hash_key
        self.ledger = ledger or default_ledger()
        self.tick: Callable[[int], None] | None = None  # rows read while matching (progress)
        self.query_page = 500  # calls read a page by a hold by query (``query_hold_rows``)
        #: the blind index of number filters (a manager built without the key: the catalog's)
        self.index: BlindIndex | None = (BlindIndex(hash_key) if hash_key
                                         else numbers.index if numbers is not None else None)
        self._ledgered = False  # the older holds' ledger entries checked (``_ledger_old_holds``)
        #: (hold id, stored value) -> its opened query (None: unreadable): one decryption a hold
        self._queries: dict[tuple[str, str], dict[str, Any] | None] = {}

    # -- matching ----------------------------------------------------------------------
    def _matching_call_ids(self, scope: str, stored_value: str, value4: str = "") -> builtins.list[str]:
        if scope == "call":
            return [
                r["call_id"]
                for r in rows(self.conn, "SELECT call_id FROM calls WHERE call_id=?", (stored_value,))
            ]
        if scope == "caller":  # the stored value is the number's full-number blind index
            return list(number_lookup.calls_with_number(self.conn, self.hash_key, stored_value,
                                                        subject4=value4))
        q = policy.parse_query(stored_value)
        return list(self._query_matches(q))

    def _call_has_number_hash(self, call: Mapping[str, Any], h: str) -> bool:
        if not self.hash_key and not (call.get("caller_bi") or call.get("callee_bi")):
            return False  # a clear row and no key to hash it with (``HoldOnStore``)
        return number_lookup.row_has_number(call, self.hash_key, h)

    def active_holds(self) -> builtins.list[dict[str, Any]]:
        """Active holds of every scope (a small table: read once per batch by whole-catalog jobs),
        held to their ledger entries: while an active hold of the ledger is missing from the table
        or altered there, what it covered cannot be known, so no deletion may go on
        (``PolicyRefusal``; ``verify`` names the hold)."""
        self._ledger_old_holds()
        table = rows(self.conn, "SELECT * FROM holds")
        said = hold_ledger(self.conn)
        problems = [p for p in holds_binding(table, said, ledgered=False)
                    if not p[1].startswith("hold active in the catalog")]  # (re-activated: holds more)
        if problems:
            hid, what, _, _ = problems[0]
            raise PolicyRefusal(f"legal hold {hid}: {what}; no recording is deleted until the holds table "
                                f"agrees with the ledger again (run `verify`; {len(problems)} problem(s))")
        # a hold the ledger says is active stays active even if its row says released (caught above)
        return [h for h in table if h["released_at"] is None]

    def hold_for(self, rec: Mapping[str, Any],
                 active: builtins.list[dict[str, Any]] | None = None) -> tuple[str, str] | None:
        """(hold_id, reason) of an active hold covering the recording, else None (``active``:
        :meth:`active_holds` already read)."""
        hit = rows(self.conn,
                   "SELECT h.hold_id, h.reason, h.scope, h.value FROM hold_recordings hr JOIN holds h"
                   " ON h.hold_id=hr.hold_id WHERE hr.recording_id=? AND h.released_at IS NULL LIMIT 1",
                   (rec["recording_id"],))
        if hit:
            return str(hit[0]["hold_id"]), self._reason_of(hit[0])
        if active is None:
            active = self.active_holds()
        if not active:
            return None
        return self._covering(rec, active)

    def hold_now(self, rec: Mapping[str, Any]) -> tuple[str, str] | None:
        """:meth:`hold_for` on the row as it is now, holds read afresh (the flag counts too): what
        retention and erasure ask just before deleting a recording's objects, so a hold placed
        while a long run goes on stops the deletions after it."""
        found = rows(self.conn, "SELECT * FROM recordings WHERE recording_id=?", (rec["recording_id"],))
        now_rec = found[0] if found else rec
        if now_rec.get("legal_hold"):
            return "", "legal hold flag set"
        return self.hold_for(now_rec, active=self.active_holds())

    def _covering(self, rec: Mapping[str, Any],
                  active: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
        """The first of ``active`` covering ``rec`` (by its call row: call id, numbers, query)."""
        call = rows(self.conn, "SELECT * FROM calls WHERE call_id=?", (rec["call_id"],))
        for h in active:
            if h["scope"] == "call" and h["value"] == rec["call_id"]:
                return h["hold_id"], h["reason"]
            if h["scope"] == "caller" and call and self._call_has_number_hash(call[0], h["value"]):
                return h["hold_id"], h["reason"]
            if h["scope"] == "query" and (self._query_of(h) is None  # unreadable: even without a call row
                                          or (call and self._call_matches_query(call[0], self._query_of(h)))):
                return h["hold_id"], self._reason_of(h)
            if h["scope"] not in SCOPES:
                return h["hold_id"], f"{h['reason']} (unknown scope: holds everything)"
        return None

    def _call_matches_query(self, call: Mapping[str, Any], q: Mapping[str, Any] | None) -> bool:
        """A calls row (stored form) against a stored query (None: unreadable, holds everything):
        number filters by their blind index, the others (and an older hold's clear number
        filters) on the row with its protected fields opened, as ``calls search`` sees it."""
        if q is None:
            return True
        opened = self.numbers.open_call(call) if self.numbers is not None else call
        if not query_hold_rows.number_filters_match(opened, q, self.index):
            return False
        indexed = query_hold_rows.indexed_number_filters(q)
        return policy.query_matches(opened, {k: v for k, v in q.items() if k not in indexed})

    def _query_of(self, hold: Mapping[str, Any]) -> dict[str, Any] | None:
        """A query hold's stored filters, opened (``query_hold_rows.query_of``), or None when they
        cannot be read -- a token that does not open (moved from another hold, no keys) or a
        value that is no query: the hold then holds everything it could mean, and says so where
        it is shown (``hold list``, the console: ``query_hold_rows.displayed``), in the reason a
        withheld recording is given (:meth:`_reason_of`) and in a ``verify`` note."""
        key = (str(hold["hold_id"]), str(hold["value"]))
        if key not in self._queries:
            try:
                self._queries[key] = query_hold_rows.query_of(self.numbers, *key)
            except (ValueError, CryptoError) as exc:
                log.warning("query hold %s cannot be read (%s): it holds every recording", key[0], exc)
                self._queries[key] = None
        return self._queries[key]

    def _reason_of(self, hold: Mapping[str, Any]) -> str:
        """The reason a recording held by ``hold`` is given (erasure's withheld entries, retention's
        refusals): an unreadable query hold's says that it holds everything."""
        if hold["scope"] == "query" and self._query_of(hold) is None:
            return f"{hold['reason']} ({UNREADABLE_REASON})"
        return str(hold["reason"])

    # -- operations --------------------------------------------------------------------
    def add(
        self, scope: str, value: str, reason: str, actor: str, now: float | None = None
    ) -> dict[str, Any]:
        now = time.time() if now is None else now
        if scope not in SCOPES:
            raise PolicyRefusal(f"hold scope must be one of {', '.join(SCOPES)}")
        if not reason.strip():
            raise PolicyRefusal("a legal hold needs a reason")
        # (kept as long as the catalog: no number in it, however it is written; the hold itself
        # names its subject through a blind index)
        reason = mask_text(reason)
        stored4 = ""
        shown = value if scope == "call" else ""
        hold_id = new_id("H")  # (a query hold's token is bound to it)
        query = ""  # a query hold's filters as matched (number filters as blind indexes)
        if scope == "caller":  # = the full-number blind index (calls.caller_bi / callee_bi)
            # ``new|old`` while a blind-index key rotation runs (``number_lookup.subjects_of``);
            # its last-4 index beside it (``value4``): the index range a lookup reads (schema 15)
            index = BlindIndex(self.hash_key)
            stored = number_lookup.SUBJECT_SEPARATOR.join(index.fulls(value))
            stored4 = number_lookup.SUBJECT_SEPARATOR.join(index.last4s(value))
        elif scope == "query":
            try:
                parsed = policy.parse_query(value)
            except ValueError as exc:
                raise PolicyRefusal(f"bad hold query: {exc}") from exc
            # number filters as blind indexes, as a caller hold stores its number (never in clear),
            # then the whole query one token bound to the hold (its free fields may name a number)
            protected = query_hold_rows.protect_numbers(parsed, BlindIndex(self.hash_key))
            query = json.dumps(protected, sort_keys=True)
            stored = query_hold_rows.sealed(self.numbers, hold_id, protected)
            shown = json.dumps(query_hold_rows.shown(parsed), sort_keys=True)
        else:
            stored = value
        if scope == "call" and not self._matching_call_ids(scope, stored):
            raise NotFound(f"no call {value}")
        self._ledger_old_holds()
        with Tx(self.conn):
            self.conn.execute(
                "INSERT INTO holds (hold_id, scope, value, value4, reason, created_by, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (hold_id, scope, stored, stored4, reason, actor, now),
            )
            self._ledger_hold(hold_id, scope, stored, stored4, now)
        held: builtins.list[str] = []
        for call_ids in self._matching_batches(scope, query or stored, stored4):  # memory O(batch)
            recs = self._recordings_of(call_ids)
            with Tx(self.conn):  # the holds row above already protects call/caller scopes (hold_for)
                for r in recs:
                    self.conn.execute(
                        "INSERT INTO hold_recordings VALUES (?,?) ON CONFLICT DO NOTHING",
                        (hold_id, r["recording_id"]),
                    )
                    self.conn.execute(
                        "UPDATE recordings SET legal_hold=1 WHERE recording_id=?", (r["recording_id"],)
                    )
                    self.ledger(
                        self.conn,
                        "held",
                        r["recording_id"],
                        {"hold_id": hold_id, "scope": scope, "call_id": r["call_id"]},
                        now,
                    )
            for r in recs:
                self._tier_hold(r, True)
            held += [r["recording_id"] for r in recs]
        log.info("hold %s (%s) placed by %s on %d recording(s)", hold_id, scope, actor, len(held))
        return {
            "hold_id": hold_id,
            "scope": scope,
            "value": stored,
            "shown": shown,  # what output may print: a call id, or the query with numbers masked
            "reason": reason,
            "recordings": held,
        }

    def _matching_batches(self, scope: str, stored_value: str, value4: str = "",
                          batch: int = 500) -> Iterator[builtins.list[str]]:
        """The matching call ids in lists of at most ``batch``, found as the catalog streams by
        (``stored_value``: a query hold's query JSON as opened, never its token)."""
        if scope == "call":
            found: Iterable[str] = self._matching_call_ids(scope, stored_value)
        elif scope == "caller":
            found = number_lookup.calls_with_number(self.conn, self.hash_key, stored_value, tick=self.tick,
                                                    subject4=value4)
        else:
            found = self._query_matches(policy.parse_query(stored_value))
        chunk: builtins.list[str] = []
        for call_id in found:
            chunk.append(call_id)
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _query_matches(self, q: Mapping[str, Any]) -> Iterator[str]:
        """Calls matching a query hold, numbers opened before matching.  A number filter on a
        fully protected catalog is one blind-index lookup; a filter the search has an index for
        reads that index range in pages (``query_hold_rows``); otherwise the table streams by in
        batches.  Memory O(batch) either way; ``policy.query_matches`` decides every row."""
        sides = query_hold_rows.NUMBER_SIDES
        wanted = [(k, v) for k, v in q.items() if k in sides]
        parts: Iterable[builtins.list[Mapping[str, Any]]]
        indexed = query_hold_rows.search_filters(q, self.query_page) if not wanted else None
        params: builtins.list[Any] = []
        clause = None
        if wanted and number_lookup.all_protected(self.conn):
            key, value = wanted[0]
            clause = (query_hold_rows.number_clause(q, params, self.index) if isinstance(value, Mapping)
                      else call_ids_clause(BlindIndex(self.hash_key), str(value), params, sides[key]))
        if clause is not None:
            parts = [rows(self.conn, f"SELECT * FROM calls WHERE {clause}", tuple(params))]
        elif indexed is not None:
            parts = query_hold_rows.candidate_pages(lambda sql, p: rows(self.conn, sql, p), indexed)
        else:
            parts = ([c for _, c in part]
                     for part in scan.batches(self.conn, "calls", scan.columns_of(self.conn, "calls")))
        for part in parts:
            yield from (str(c["call_id"]) for c in part if self._call_matches_query(c, q))
            if self.tick is not None:
                self.tick(len(part))

    def remove(self, hold_id: str, actor: str, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        self._ledger_old_holds()
        found = rows(self.conn, "SELECT * FROM holds WHERE hold_id=?", (hold_id,))
        if not found:
            raise NotFound(f"no hold {hold_id}")
        if found[0]["released_at"] is not None:
            raise PolicyRefusal(f"hold {hold_id} was already released")
        covered = (
            self._recordings_of(self._matching_call_ids(found[0]["scope"], found[0]["value"],
                                                        str(found[0].get("value4") or "")))
            if found[0]["scope"] != "query"
            else []
        )
        covered += rows(
            self.conn,
            "SELECT r.* FROM recordings r JOIN hold_recordings hr"
            " ON hr.recording_id=r.recording_id WHERE hr.hold_id=?",
            (hold_id,),
        )
        released = []
        with Tx(self.conn):
            self.conn.execute(
                "UPDATE holds SET released_at=?, released_by=? WHERE hold_id=?", (now, actor, hold_id)
            )
            self.ledger(self.conn, "hold_released", HOLDS_LEDGER, {"hold_id": hold_id}, now)
            for r in {r["recording_id"]: r for r in covered}.values():
                if self.hold_for(r) is None:
                    self.conn.execute(
                        "UPDATE recordings SET legal_hold=0 WHERE recording_id=?", (r["recording_id"],)
                    )
                    self.ledger(self.conn, "released", r["recording_id"], {"hold_id": hold_id}, now)
                    released.append(r)
        for r in released:
            self._tier_hold(r, False)
        return {"hold_id": hold_id, "released": [r["recording_id"] for r in released]}

    def list(self, include_released: bool = False) -> builtins.list[dict[str, Any]]:
        """The holds for display: a query hold's ``value`` opened (its JSON, number filters as
        blind indexes, as before it was sealed), a token that does not open left as it is, and
        ``unreadable`` for a hold that holds everything because its query cannot be read (or its
        scope is unknown).  Every output shows them through ``query_hold_rows.displayed`` (it
        masks the query's free fields; never the value as it is here)."""
        where = "" if include_released else " WHERE h.released_at IS NULL"
        found = rows(
            self.conn,
            "SELECT h.*, (SELECT COUNT(*) FROM hold_recordings hr WHERE hr.hold_id=h.hold_id)"
            f" AS recordings FROM holds h{where} ORDER BY h.created_at",
        )
        for h in found:
            h["unreadable"] = h["scope"] not in SCOPES
            if h["scope"] == "query":
                h["unreadable"] = self._query_of(h) is None  # (logs why)
                if not h["unreadable"]:
                    h["value"] = query_hold_rows.opened(self.numbers, str(h["hold_id"]), str(h["value"]))
        return found

    def record_old_holds(self) -> None:
        """The ledger entries of holds from before holds had them, written now if not yet (what
        a pass that rewrites ``holds.value`` runs first, so its ``hold_rekeyed`` follows them)."""
        self._ledger_old_holds()

    # -- the holds' own ledger entries ---------------------------------------------------
    def _ledger_hold(self, hold_id: str, scope: str, value: str, value4: str, now: float,
                     **extra: Any) -> None:
        """``hold_added``: id, scope and a digest of the stored value (in the caller's transaction)."""
        self.ledger(self.conn, "hold_added", HOLDS_LEDGER,
                    {"hold_id": hold_id, "scope": scope, "value_sha256": hold_value_digest(value, value4),
                     **extra}, now)

    def _ledger_old_holds(self) -> None:
        """Once per catalog: ledger entries for the holds written before holds had them (what
        ``verify`` then holds them to); ``catalog_settings`` says it is done."""
        if self._ledgered:
            return
        done = self.conn.execute("SELECT 1 FROM catalog_settings WHERE name=?", (HOLDS_LEDGERED,)).fetchone()
        if done is None:
            now = time.time()
            with Tx(self.conn):
                said = hold_ledger(self.conn)
                for h in rows(self.conn, "SELECT * FROM holds ORDER BY created_at, hold_id"):
                    if h["hold_id"] in said:
                        continue
                    self._ledger_hold(h["hold_id"], h["scope"], h["value"], h.get("value4") or "", now,
                                      backfilled=True)
                    if h["released_at"] is not None:
                        self.ledger(self.conn, "hold_released", HOLDS_LEDGER,
                                    {"hold_id": h["hold_id"], "backfilled": True}, now)
                self.conn.execute("INSERT INTO catalog_settings (name, value) VALUES (?, ?) "
                                  "ON CONFLICT (name) DO NOTHING", (HOLDS_LEDGERED, str(now)))
        self._ledgered = True

    # -- helpers -----------------------------------------------------------------------
    def _recordings_of(self, call_ids: builtins.list[str]) -> builtins.list[dict[str, Any]]:
        out: builtins.list[dict[str, Any]] = []
        for i in range(0, len(call_ids), 500):
            chunk = call_ids[i : i + 500]
            out += rows(
                self.conn, f"SELECT * FROM recordings WHERE call_id IN ({','.join('?' * len(chunk))})", chunk
            )
        return out

    def _tier_hold(self, rec: Mapping[str, Any], on: bool) -> None:
        tier = self.tiers.get(rec.get("tier") or "")
        if tier is None or rec.get("state") not in policy.LIVE_STATES:
            return
        for obj in objects_of(rec):  # every object: audio, legs, kept original, manifest sidecar
            if not obj.sha256 and tier.stat(obj.key) is None:
                continue  # derived for an older row and never stored
            try:
                native = tier.set_legal_hold(obj.key, on)
                log.debug("hold %s rec=%s %s on tier %s (native=%s)", on, rec["recording_id"], obj.role,
                          tier.name, native)
            except StorageError as exc:  # the catalog flag still protects it
                log.error("tier legal hold failed call=%s rec=%s %s: %s", rec["call_id"],
                          rec["recording_id"], obj.role, exc)


def note_rekeyed(conn: sqlite3.Connection, hold_id: str, value: str, value4: str, now: float,
                 **extra: Any) -> None:
    """``hold_rekeyed`` for a hold whose stored value was rewritten by one of the other legitimate
    writers of ``holds.value`` -- a caller hold's blind indexes by a key rotation
    (``catalog.index_rotation``), a query hold sealed or sealed again under the current catalog
    key (``catalog.query_holds_sealed_pass``) -- in the caller's transaction: ``verify`` then holds
    the row to its new value."""
    default_ledger()(conn, "hold_rekeyed", HOLDS_LEDGER,
                     {"hold_id": hold_id, "value_sha256": hold_value_digest(value, value4), **extra}, now)


class HoldOnStore:
    """Shipper ``after_store`` hook: a recording stored while an active hold covers its call (by
    call id, caller or query) is held at once -- ``legal_hold`` on its row, a ``hold_recordings``
    row and a ``held`` ledger entry -- so it is protected by its own row and entry too, not by the
    ``holds`` row alone.  No hold: one read of the (small) active holds, nothing written.

    It needs no key: a protected call row is matched by its stored blind indexes (a clear row,
    written before ``catalog migrate``, is left to :meth:`HoldManager.hold_for`, which still
    covers it at deletion time).  A tier's native hold is not set here (retention and erasure
    never delete a held recording)."""

    before_row = True  # it returns the flag for the row and appends to the ledger only

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def __call__(self, catalog: Any, recording_id: str, manifest: Any, record: Any = None) -> Any:
        from pbx_recorder.recording.ledger import append, connection_of

        conn = connection_of(catalog)
        active = rows(conn, "SELECT * FROM holds WHERE released_at IS NULL")
        if not active:
            return None
        call_id = str(getattr(manifest, "call_id", "") or "")
        manager = HoldManager(conn, {}, hash_key=b"", numbers=getattr(catalog, "numbers", None))
        hit = manager._covering({"recording_id": recording_id, "call_id": call_id}, active)
        if hit is None:
            return None
        scope = next((str(h["scope"]) for h in active if h["hold_id"] == hit[0]), "")
        conn.execute("INSERT INTO hold_recordings VALUES (?,?) ON CONFLICT DO NOTHING",
                     (hit[0], recording_id))
        append(conn, "held", recording_id, {"hold_id": hit[0], "scope": scope, "call_id": call_id,
                                            "at_store": True}, self.clock())
        log.info("recording %s (call %s) stored under legal hold %s: held", recording_id, call_id, hit[0])
        return {"legal_hold": 1}
