"""Legal holds: by call, by caller (keyed hash, never the number in clear) or by query.

A hold sets ``recordings.legal_hold``, records the recordings it covered in
``hold_recordings``, asks tiers that enforce holds natively (S3 Object Lock) to set
theirs on every object of each recording (``recording_objects.objects_of``), and
appends ledger ``held`` / ``released``.  ``hold_for`` is what retention and
erasure ask before deleting: it also catches calls that arrived after a call/caller
hold was placed.
"""

from __future__ import annotations

import builtins
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pbx_recorder import scan
from pbx_recorder.catalog.number_protection import BlindIndex
from pbx_recorder.catalog.protected_rows import NumberProtection, call_ids_clause
from pbx_recorder.errors import NotFound, PolicyRefusal, StorageError
from pbx_recorder.lifecycle import number_lookup, policy, query_hold_rows
from pbx_recorder.lifecycle.journal import LedgerAppend, Tx, default_ledger, rows
from pbx_recorder.recording.recording_objects import objects_of
from storage.base import Tier

log = logging.getLogger(__name__)
SCOPES = ("call", "caller", "query")


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
        return number_lookup.row_has_number(call, self.hash_key, h)

    def active_holds(self) -> builtins.list[dict[str, Any]]:
        """Active call/caller holds (a small table: read once per batch by whole-catalog jobs)."""
        return rows(self.conn, "SELECT * FROM holds WHERE released_at IS NULL AND scope IN ('call','caller')")

    def hold_for(self, rec: Mapping[str, Any],
                 active: builtins.list[dict[str, Any]] | None = None) -> tuple[str, str] | None:
        """(hold_id, reason) of an active hold covering the recording, else None (``active``:
        :meth:`active_holds` already read)."""
        hit = self.conn.execute(
            "SELECT h.hold_id, h.reason FROM hold_recordings hr JOIN holds h ON h.hold_id=hr.hold_id"
            " WHERE hr.recording_id=? AND h.released_at IS NULL LIMIT 1",
            (rec["recording_id"],),
        ).fetchone()
        if hit:
            return str(hit[0]), str(hit[1])
        if active is None:
            active = self.active_holds()
        if not active:
            return None
        call = rows(self.conn, "SELECT * FROM calls WHERE call_id=?", (rec["call_id"],))
        for h in active:
            if h["scope"] == "call" and h["value"] == rec["call_id"]:
                return h["hold_id"], h["reason"]
            if h["scope"] == "caller" and call and self._call_has_number_hash(call[0], h["value"]):
                return h["hold_id"], h["reason"]
        return None

    # -- operations --------------------------------------------------------------------
    def add(
        self, scope: str, value: str, reason: str, actor: str, now: float | None = None
    ) -> dict[str, Any]:
        now = time.time() if now is None else now
        if scope not in SCOPES:
            raise PolicyRefusal(f"hold scope must be one of {', '.join(SCOPES)}")
        if not reason.strip():
            raise PolicyRefusal("a legal hold needs a reason")
        stored4 = ""
        if scope == "caller":  # = the full-number blind index (calls.caller_bi / callee_bi)
            # ``new|old`` while a blind-index key rotation runs (``number_lookup.subjects_of``);
            # its last-4 index beside it (``value4``): the index range a lookup reads (schema 15)
            index = BlindIndex(self.hash_key)
            stored = number_lookup.SUBJECT_SEPARATOR.join(index.fulls(value))
            stored4 = number_lookup.SUBJECT_SEPARATOR.join(index.last4s(value))
        elif scope == "query":
            try:
                stored = json.dumps(policy.parse_query(value), sort_keys=True)
            except ValueError as exc:
                raise PolicyRefusal(f"bad hold query: {exc}") from exc
        else:
            stored = value
        if scope == "call" and not self._matching_call_ids(scope, stored):
            raise NotFound(f"no call {value}")
        hold_id = "H-" + secrets.token_hex(6)
        with Tx(self.conn):
            self.conn.execute(
                "INSERT INTO holds (hold_id, scope, value, value4, reason, created_by, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (hold_id, scope, stored, stored4, reason, actor, now),
            )
        held: builtins.list[str] = []
        for call_ids in self._matching_batches(scope, stored, stored4):  # memory O(batch)
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
            "reason": reason,
            "recordings": held,
        }

    def _matching_batches(self, scope: str, stored_value: str, value4: str = "",
                          batch: int = 500) -> Iterator[builtins.list[str]]:
        """The matching call ids in lists of at most ``batch``, found as the catalog streams by."""
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
        sides = {"caller": ("caller",), "callee": ("callee",), "number": ("caller", "callee")}
        wanted = [(k, v) for k, v in q.items() if k in sides]
        parts: Iterable[builtins.list[Mapping[str, Any]]]
        indexed = query_hold_rows.search_filters(q, self.query_page) if not wanted else None
        if wanted and number_lookup.all_protected(self.conn):
            key, value = wanted[0]
            params: builtins.list[Any] = []
            clause = call_ids_clause(BlindIndex(self.hash_key), str(value), params, sides[key])
            parts = [rows(self.conn, f"SELECT * FROM calls WHERE {clause}", tuple(params))]
        elif indexed is not None:
            parts = query_hold_rows.candidate_pages(lambda sql, p: rows(self.conn, sql, p), indexed)
        else:
            parts = ([c for _, c in part]
                     for part in scan.batches(self.conn, "calls", scan.columns_of(self.conn, "calls")))
        for part in parts:
            opened = [self.numbers.open_call(c) for c in part] if self.numbers is not None else part
            yield from (str(c["call_id"]) for c in opened if policy.query_matches(c, q))
            if self.tick is not None:
                self.tick(len(part))

    def remove(self, hold_id: str, actor: str, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
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
        where = "" if include_released else " WHERE h.released_at IS NULL"
        return rows(
            self.conn,
            "SELECT h.*, (SELECT COUNT(*) FROM hold_recordings hr WHERE hr.hold_id=h.hold_id)"
            f" AS recordings FROM holds h{where} ORDER BY h.created_at",
        )

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
