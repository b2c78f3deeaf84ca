"""Caller holds and open erasure requests under a new index key (``keys rotate-index``).

A caller hold keeps the keyed hash of its number (``holds.value``/``value4``) and an erasure
request its subject's; neither keeps the number.  A rotation finds the number again through a call
that has it (:func:`by_index`, at most 20 calls opened) and writes ``new|old`` for a hold (either
key matches while the calls are re-indexed), the new hash for a request; a request found through
no such call is translated while the calls pass opens every call (:meth:`SubjectRekey.translate`).
At the end (:meth:`SubjectRekey.collapse_holds`) each hold keeps the new hash alone.  Every change
of a hold is a ledger entry (``hold_rekeyed``): holds are tamper-evident.

The rotation itself (key files, passes, progress) is :mod:`pbx_recorder.catalog.index_rotation`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pbx_recorder.catalog import extra_numbers
from pbx_recorder.catalog.number_protection import BlindIndex, is_token
from pbx_recorder.catalog.protected_rows import NumberProtection, stored_side_clause
from pbx_recorder.errors import CryptoError
from pbx_recorder.lifecycle import policy
from pbx_recorder.lifecycle.number_lookup import SUBJECT_SEPARATOR, subjects_of

#: at most this many calls are opened to find a hold's or a request's number
CALLS_OPENED = 20


class Counts(Protocol):
    """What the rotation's report counts of this part (``index_rotation.Report``)."""

    holds_rekeyed: int
    requests_rekeyed: int
    untranslated_holds: list[str]
    errors: list[str]


def by_index(full: str, last4: str = "") -> tuple[str, list[Any]]:
    """SQL over ``calls`` (and its parameters): the calls that have the full-number index ``full``
    as caller or callee, or name it (``call_numbers``).  With its last-4 index ``last4`` (a caller
    hold's ``value4``) each side is one index range (schema 15); without it (an erasure request
    keeps only its subject) every call is read."""
    params: list[Any] = []
    last4s = [last4] if last4 else []
    sides = [stored_side_clause(side, [full], last4s, params) for side in ("caller", "callee")]
    params.append(full)
    return " OR ".join([*sides, "call_id IN (SELECT call_id FROM call_numbers WHERE bi = ?)"]), params


def note_rekeyed(conn: Any, hold_id: str, value: str, value4: str, now: float) -> None:
    """A caller hold re-keyed: its ledger entry (``lifecycle.holds.note_rekeyed``, imported here
    lazily: the lifecycle package imports the catalog's)."""
    from pbx_recorder.lifecycle.holds import note_rekeyed as note

    note(conn, hold_id, value, value4, now)


def first(stored: Any) -> str:
    """The current key's part of a stored ``new|old`` hold value ('' for none)."""
    return (subjects_of(str(stored or "")) or [""])[0]


class SubjectRekey:
    """Holds and requests of one rotation from the key ``old`` (``old_key``) to ``new``
    (``new_key``); ``old`` is None for a re-index, which translates nothing."""

    def __init__(self, conn: Any, numbers: NumberProtection, report: Counts, *,
                 new: BlindIndex, new_key: bytes, old: BlindIndex | None = None, old_key: bytes = b"",
                 clock: Callable[[], float] = time.time) -> None:
        self.conn = conn
        self.numbers = numbers
        self.report = report
        self.new, self.new_key = new, new_key
        self.old, self.old_key = old, old_key
        self.clock = clock
        self.pending: dict[str, str] | None = None if old is not None else {}  # old subject -> request
        self.requests_done: list[str] = []

    def numbers_of_calls(self, where: str, params: list[Any]) -> set[str]:
        """The numbers (caller, callee, CDR runs, the sealed numbers its row does not hold) of a few
        calls, opened."""
        found: set[str] = set()
        sql = f"SELECT call_id, numbers FROM calls WHERE {where} LIMIT {CALLS_OPENED}"
        for call_id, token in self.conn.execute(sql, params).fetchall():
            try:
                found |= extra_numbers.of_call(self.conn, self.numbers, str(call_id))
                if not is_token(token):
                    continue
                plain = self.numbers.open_call({"call_id": call_id, "numbers": token})
            except CryptoError as exc:
                self.report.errors.append(f"call {call_id}: {exc}")
                continue
            found |= {str(plain["caller_num"] or ""), str(plain["callee_num"] or "")}
            found |= policy.numbers_in(plain["cdr"])
        return {n for n in found if n}

    def rekey_holds(self) -> None:
        """Each active caller hold still under the old key alone becomes ``new|old`` (one
        transaction and ledger entry each); a hold whose number no call has is reported."""
        assert self.old is not None, "a re-index does not re-key holds"
        holds = self.conn.execute("SELECT hold_id, value, value4 FROM holds WHERE scope = 'caller' AND "
                                  "released_at IS NULL ORDER BY hold_id").fetchall()
        for hold_id, value, value4 in holds:
            parts = subjects_of(str(value))
            if len(parts) > 1:
                continue  # already new|old (an earlier run, or a hold added during the rotation)
            old, old4 = parts[0], first(value4)
            numbers = self.numbers_of_calls(*by_index(old, old4))
            number = next((n for n in sorted(numbers) if self.old.full(n) == old), None)
            if number is None:
                if not any(self.new.full(n) == old for n in numbers):
                    self.report.untranslated_holds.append(str(hold_id))
                continue
            both = (SUBJECT_SEPARATOR.join((self.new.full(number), old)),
                    SUBJECT_SEPARATOR.join((self.new.last4(number), self.old.last4(number))))
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("UPDATE holds SET value = ?, value4 = ? WHERE hold_id = ?", (*both, hold_id))
            note_rekeyed(self.conn, str(hold_id), *both, self.clock())  # the hold's ledger entry follows
            self.conn.execute("COMMIT")
            self.report.holds_rekeyed += 1

    def request_pairs(self, state: dict[str, Any]) -> list[tuple[str, str]]:
        """(request id, new subject) of the erasure requests still to be completed (open, or
        partial: a re-run once the hold ends, or the console's execution of an opened request,
        must find its own request) that a call they withheld or an index lookup finds; the rest
        are translated while the calls pass opens every call (:meth:`translate`)."""
        self.load_pending(state)
        pairs: list[tuple[str, str]] = []
        for request_id, receipt in self.conn.execute("SELECT request_id, receipt FROM erasure_requests WHERE "
                                                     "status <> 'done' ORDER BY request_id").fetchall():
            call_ids = sorted({str(w.get("call_id")) for w in json.loads(receipt or "{}").get("withheld", [])
                               if w.get("call_id")})
            if call_ids and request_id not in self.requests_done:
                marks = ",".join("?" * len(call_ids))
                pairs += self.translate(self.numbers_of_calls(f"call_id IN ({marks})", call_ids), call_ids)
        for subject in sorted(self.pending or {}):
            pairs += self.translate(self.numbers_of_calls(*by_index(subject)), [])
        return pairs

    def load_pending(self, state: dict[str, Any]) -> None:
        """The requests to complete not re-keyed yet, by old subject (``state['requests']``: the
        ones an earlier run of this rotation re-keyed)."""
        self.requests_done = list(state.get("requests", []))
        done = set(self.requests_done)
        rows = self.conn.execute("SELECT request_id, subject FROM erasure_requests WHERE status <> 'done'")
        self.pending = {str(subject): str(request_id) for request_id, subject in rows
                        if request_id not in done}

    def translate(self, numbers: Iterable[str], call_ids: Iterable[str]) -> list[tuple[str, str]]:
        """(request id, new subject) of each pending request one of ``numbers`` / ``call_ids`` is."""
        out: list[tuple[str, str]] = []
        if not self.pending:
            return out
        for call_id in call_ids:
            request_id = self.pending.pop(policy.subject_hash(self.old_key, call_id), None)
            if request_id is not None:
                out.append((request_id, policy.subject_hash(self.new_key, call_id)))
        for number in sorted(set(numbers)):
            for variant in sorted(policy.number_variants(number)):
                request_id = self.pending.pop(policy.number_hash(self.old_key, variant), None)
                if request_id is not None:
                    out.append((request_id, policy.number_hash(self.new_key, variant)))
        return out

    def apply(self, pairs: list[tuple[str, str]]) -> None:
        """Write re-keyed request subjects (in the caller's transaction)."""
        for request_id, subject in pairs:
            self.conn.execute("UPDATE erasure_requests SET subject = ? WHERE request_id = ?",
                              (subject, request_id))
            self.requests_done.append(request_id)
            self.report.requests_rekeyed += 1

    def collapse_holds(self) -> None:
        """Every ``new|old`` hold back to the new hash alone, with its ledger entry (in the
        caller's transaction: the rotation's last)."""
        for hold_id, value, value4 in self.conn.execute(
                "SELECT hold_id, value, value4 FROM holds WHERE scope = 'caller' AND value LIKE ?",
                (f"%{SUBJECT_SEPARATOR}%",)).fetchall():
            self.conn.execute("UPDATE holds SET value = ?, value4 = ? WHERE hold_id = ?",
                              (first(value), first(value4), hold_id))
            note_rekeyed(self.conn, str(hold_id), first(value), first(value4), self.clock())
