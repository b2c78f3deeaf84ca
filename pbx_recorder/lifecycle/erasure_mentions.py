"""What names an erasure's subject outside its calls: saved searches (deleted) and query holds
(kept: a legal hold wins, but the receipt says which ones).

A saved search (``catalog.saved_search_rows``) keeps its query sealed under the catalog key, which
is not the subject's, so crypto-shredding does not reach it; its name is the row's key and is in
clear.  One whose name or query names a subject number is deleted.  One whose token does not open
is kept (nothing can read it without its key either) and counted: the receipt says the request
could not check it (``saved_searches_unreadable``).

A query hold (``lifecycle.query_hold_rows``) may name the subject in a free field (an agent's dial
string) or as the blind index of a number filter; it outlives the erasure by design.  Its id is
listed in the receipt (``held_by_query_holds``), and one whose stored query does not open in
``query_holds_unreadable``: it holds everything, and nobody can say whom it names.

Erasure by call id has no number as subject: the call's own numbers (caller, callee), read before
its row goes (:func:`numbers_of_calls`), are the ones looked for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pbx_recorder.catalog import saved_search_rows
from pbx_recorder.catalog.number_protection import BlindIndex, digits_of, is_token
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.errors import CryptoError
from pbx_recorder.lifecycle import query_hold_rows
from pbx_recorder.lifecycle.journal import Tx, rows

log = logging.getLogger(__name__)


@dataclass
class SavedSearchPurge:
    deleted: int = 0
    unreadable: int = 0  # kept: the token does not open, so whom it names is unknown


@dataclass
class QueryHoldMentions:
    held_by: list[str] = field(default_factory=list)  # active query holds naming a subject number
    unreadable: list[str] = field(default_factory=list)  # active query holds whose query does not open


def numbers_of_calls(numbers: NumberProtection | None, calls: Sequence[Mapping[str, Any]]) -> list[str]:
    """The caller and callee numbers (5+ digits) of ``calls`` (stored rows), opened with the catalog
    keys; a row whose token does not open is logged and gives none."""
    found: set[str] = set()
    for call in calls:
        row: Mapping[str, Any] = call
        if is_token(call.get("numbers")):
            if numbers is None:
                log.error("erasure: call %s is encrypted and this catalog has no number keys",
                          call["call_id"])
                continue
            try:
                row = numbers.open_call(call)
            except CryptoError as exc:
                log.error("erasure: the numbers of call %s cannot be opened: %s", call["call_id"], exc)
                continue
        found |= {str(row.get(side) or "") for side in ("caller_num", "callee_num")
                  if len(digits_of(str(row.get(side) or ""))) >= 5}
    return sorted(found)


def names_any(subjects: Sequence[str], *texts: str) -> bool:
    return any(saved_search_rows.text_names_number(s, *texts) for s in subjects)


def purge_saved_searches(conn: Any, numbers: NumberProtection | None, subjects: Sequence[str],
                         call_ids: Collection[str] = ()) -> SavedSearchPurge:
    """Delete the saved searches whose name or query names one of ``subjects`` (numbers), or whose
    query filters on one of the erased ``call_ids`` (a search that would find an erased call, or
    none any more, and that an auditor could read as "someone looked for this call"); the table is
    bounded (``MAX_PER_USER`` per user), so it is read whole.  Nothing here logs a name."""
    out = SavedSearchPurge()
    if not subjects and not call_ids:
        return out
    gone = []
    for r in rows(conn, "SELECT user_name, name, query FROM saved_searches"):
        user, name = str(r["user_name"]), str(r["name"])
        if names_any(subjects, name):  # the name is in clear: whatever the query holds
            gone.append((user, name))
            continue
        try:
            query = saved_search_rows.opened(numbers, user, name, str(r["query"]))
        except CryptoError as exc:
            log.error("erasure: a saved search of %s cannot be opened, kept: %s", user, exc)
            out.unreadable += 1
            continue
        if any(saved_search_rows.names_number(query, s) for s in subjects) \
                or saved_search_rows.filters_call(query, call_ids):
            gone.append((user, name))
    with Tx(conn):
        for user, name in gone:
            conn.execute("DELETE FROM saved_searches WHERE user_name=? AND name=?", (user, name))
    out.deleted = len(gone)
    if gone:
        log.info("erasure: %d saved search(es) naming the subject deleted", len(gone))
    return out


def hold_names(q: Mapping[str, Any], subjects: Sequence[str], index: BlindIndex | None,
               call_id: str | None = None) -> bool:
    """Does an opened query hold ``q`` name a subject: a number filter that is a subject's full
    index (or, from before, the number in clear), a free field holding its digits, or the erased
    call's id?  Pure."""
    if call_id and str(q.get("call_id") or "") == call_id:
        return True
    fulls = {f for s in subjects for f in (index.fulls(s) if index is not None else ())}
    for key in query_hold_rows.NUMBER_SIDES:
        spec = q.get(key)
        if isinstance(spec, Mapping):
            if spec.get("index") != "last4" and fulls & {str(v) for v in spec.get("bi") or ()}:
                return True
        elif spec is not None and names_any(subjects, str(spec)):
            return True
    free = [str(v) for k, v in q.items() if k not in query_hold_rows.NOT_FREE]
    return bool(free) and names_any(subjects, *free)


def query_holds_naming(conn: Any, numbers: NumberProtection | None, index: BlindIndex | None,
                       subjects: Sequence[str], call_id: str | None = None) -> QueryHoldMentions:
    """The active query holds naming the subject (kept: they are listed), and those whose stored
    query does not open (they may)."""
    out = QueryHoldMentions()
    if not subjects and not call_id:
        return out
    for h in rows(conn, "SELECT hold_id, value FROM holds WHERE scope='query' AND released_at IS NULL "
                  "ORDER BY hold_id"):
        hold_id = str(h["hold_id"])
        try:
            q = json.loads(query_hold_rows.opened(numbers, hold_id, str(h["value"])))
        except (CryptoError, ValueError) as exc:
            log.error("erasure: query hold %s cannot be opened: %s", hold_id, exc)
            out.unreadable.append(hold_id)
            continue
        if not isinstance(q, Mapping):
            out.unreadable.append(hold_id)
        elif hold_names(q, subjects, index, call_id):
            out.held_by.append(hold_id)
    return out
