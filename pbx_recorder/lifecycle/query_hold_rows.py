"""The calls a legal hold by query may cover, read through the search's index ranges.

A hold by query (``hold add --query '{"queue": "sales", "start": ...}'``) used to read the whole
``calls`` table, opening every row's numbers, and test each row: minutes at 10 M calls (issue
11). When the query names a filter ``calls search`` serves from an index (a time range, status,
call id, agent, queue, tag, consent), the candidates are read the way a search reads them:
keyset pages of one index range each (``catalog.queries.build_search``, the timed rows newest
first, then, when no time range is given, the untimed rows by call id). The candidates are a
superset of the matches, not the decision: :func:`policy.query_matches` still decides every row
(the filters the search has no index for -- DID, direction, region, retention class -- are
tested there only). A query with no indexed filter, or one the search refuses (an unknown
status) or a time that is not a finite number (JSON allows NaN), reads the table as before.

A query hold's number filters (``caller``, ``callee``, ``number``) are stored as blind indexes,
never in clear (:func:`protect_numbers`): ``{"index": "full"|"last4", "bi": [...], "bi4": [...],
"key": ...}``, the full number's (or last 4 digits') index under the privacy HMAC key -- what a
caller hold stores -- and ``key``, the index of a fixed probe number, which tells a hold written
under a key that has since been rotated away: its filter then matches every call (a hold fails
safe). :func:`number_filters_match` decides a calls row (stored form) against them.

The other filters are free text a number can hide in (``agent`` as a remote agent's dial string
``Local/4915112345678@from-internal``, a DID, anything the legal team typed), and a hold's
``value`` outlives every call it covers.  So the stored query (blind indexes included) is one
token of the catalog's number protection (:func:`sealed`, ``NumberProtection.seal_text``,
AES-256-GCM; associated data ``query_holds/<hold id>``: a token copied onto another hold does not
open), as saved searches are (``catalog.saved_search_rows``).  The token is what ``holds.value``
holds and what the ledger's ``value_sha256`` is the digest of, so ``verify`` compares it as it
compares any hold.  A catalog without number keys keeps the query in clear and refuses one whose
free fields name a number (a 5+ digit run).  Rows in clear from before are sealed by ``catalog
migrate`` (``catalog.query_holds_sealed_pass``); :func:`opened` reads both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pbx_recorder.catalog.number_protection import BlindIndex, is_token
from pbx_recorder.catalog.protected_rows import (
    NumberProtection,
    equals_any,
    in_both_parts,
    is_last4,
    named_digits,
    stored_side_clause,
)
from pbx_recorder.catalog.queries import MAX_LIMIT, CallFilters, Cursor, build_search
from pbx_recorder.core.masking import mask_number, mask_text, sanitize
from pbx_recorder.errors import CryptoError, PolicyRefusal
from pbx_recorder.exports import stored_filter
from pbx_recorder.lifecycle.policy import parse_query

#: query keys ``build_search`` narrows by (each the ``CallFilters`` field of that name)
INDEXED = ("start", "end", "status", "call_id", "agent", "queue", "tag", "consent")

RowsOf = Callable[[str, tuple[Any, ...]], Sequence[Mapping[str, Any]]]


def search_filters(q: Mapping[str, Any], batch: int) -> CallFilters | None:
    """The search filters for ``q``'s indexed keys (pages of ``batch``), or None: no indexed key,
    or a value the search would refuse (the caller then reads the table)."""
    given = {k: v for k, v in q.items() if k in INDEXED}
    if not given:
        return None
    try:
        fields: dict[str, Any] = {
            name: float(v) if name in ("start", "end") else str(v) for name, v in given.items()
        }
        if not all(math.isfinite(fields[k]) for k in ("start", "end") if k in fields):
            return None  # NaN or infinity: no index range selects what the row test keeps
        filters = CallFilters(**fields, limit=max(1, min(int(batch), MAX_LIMIT)))
        build_search(filters, 0.0, probe=True)  # an unknown status raises here
    except (TypeError, ValueError, OverflowError):
        return None
    return filters


def candidate_pages(rows_of: RowsOf, filters: CallFilters) -> Iterator[list[Mapping[str, Any]]]:
    """Pages of ``calls`` rows (stored form) that may match ``filters``: every one that does."""
    untimed_follow = filters.start is None and filters.end is None
    cursor: Cursor | None = None
    while True:
        sql, params = build_search(filters, 0.0, cursor=cursor, probe=True)
        page: list[Mapping[str, Any]] = list(rows_of(sql, tuple(params)))
        more = len(page) > filters.limit
        page = page[: filters.limit]
        if page:
            yield page
        if more:
            last = page[-1]
            cursor = Cursor(last["started_at"], str(last["call_id"]))
        elif untimed_follow and (cursor is None or cursor.started_at is not None):
            cursor = Cursor(None, "")  # the timed rows are done: the untimed ones, by call id
        else:
            return


#: a query hold's number filters and the sides of a call each one names
NUMBER_SIDES = {"caller": ("caller",), "callee": ("callee",), "number": ("caller", "callee")}
KEY_PROBE = "0000000000"  # a meaningless number: its full index fingerprints the index key


def protect_numbers(q: Mapping[str, Any], index: BlindIndex) -> dict[str, Any]:
    """``q`` with each number filter replaced by its blind indexes (what the hold stores)."""
    out = dict(q)
    for key in NUMBER_SIDES:
        if key not in out or isinstance(out[key], Mapping):
            continue
        value = str(out[key])
        last4 = is_last4(value)
        out[key] = {"index": "last4" if last4 else "full",
                    "bi": list(index.last4s(value) if last4 else index.fulls(value)),
                    "bi4": list(index.last4s(value)), "key": index.full(KEY_PROBE)}
    return out


def shown(q: Mapping[str, Any]) -> dict[str, Any]:
    """``q`` for output (what ``hold add`` echoes and audits, and, through :func:`displayed`, every
    listing): a number filter given in clear masked, a stored one named by its kind; a time as it
    is; every other filter masked as an export's stored filter is (``exports.stored_filter``:
    ``agent`` as a dial string, ``Local/491******5678@from-internal``, the rest as free text).
    Never unmasked, whatever the role: the number filters are blind indexes no one can show, and
    what a hold covers is read through ``calls search``, whose ``--unmask`` is checked and audited."""
    out: dict[str, Any] = {}
    for key, value in q.items():
        key = sanitize(key)
        if key in NUMBER_SIDES:
            out[key] = (f"<{value.get('index', 'number')} index>" if isinstance(value, Mapping)
                        else mask_number(value))
        elif key in ("start", "end") and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            out[key] = stored_filter.masked_value(key, sanitize(text, limit=stored_filter.MAX_VALUE))
    return out


#: what every listing shows of a hold that holds everything because it cannot be read
UNREADABLE = "UNREADABLE: holds everything"


def displayed(hold: Mapping[str, Any]) -> dict[str, Any]:
    """A holds row (``HoldManager.list``: a query hold's value opened, ``unreadable`` set) as every
    output shows it -- ``hold list`` and its ``--json``, ``GET /api/holds``, the console's holds
    page: a query masked (:func:`shown`), a caller hold's blind indexes left out, the reason masked
    as free text, and ``unreadable`` (with the value :data:`UNREADABLE`) for a hold whose stored
    query does not open or is no query, or whose scope is unknown: it holds every recording
    (``HoldManager.hold_for``) until it is released."""
    out = dict(hold)
    scope = str(out.get("scope") or "")
    unreadable = bool(out.get("unreadable")) or scope not in ("call", "caller", "query")
    if scope == "caller":
        out["value"] = ""
    elif scope == "call":
        out["value"] = sanitize(out.get("value"), limit=128)
    elif scope == "query" and not unreadable:
        try:
            q = json.loads(str(out.get("value") or ""))
            if not isinstance(q, dict) or not q:
                raise ValueError("not a query object")
            out["value"] = json.dumps(shown(q), sort_keys=True)
        except ValueError:
            unreadable = True
    if unreadable:
        out["value"] = UNREADABLE
    out["value4"] = ""  # (a caller hold's last-4 blind index: stays inside)
    out["reason"] = mask_text(str(out.get("reason") or ""))
    out["unreadable"] = unreadable
    return out


def indexed_number_filters(q: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The number filters of a stored query that are blind indexes (a hold from before they were
    stored so keeps its clear filter: the caller decides those on the opened row)."""
    return {k: v for k, v in q.items() if k in NUMBER_SIDES and isinstance(v, Mapping)}


def _stale(spec: Mapping[str, Any], index: BlindIndex | None) -> bool:
    return index is not None and str(spec.get("key") or "") not in index.fulls(KEY_PROBE)


def number_filters_match(call: Mapping[str, Any], q: Mapping[str, Any], index: BlindIndex | None) -> bool:
    """Does a calls row (stored form: ``<side>_bi``/``_bi4``, or clear ``<side>_num`` hashed with
    ``index``) match every indexed number filter of ``q``?  A filter under a retired key matches."""
    for key, spec in indexed_number_filters(q).items():
        if _stale(spec, index):
            continue  # written under a key no lookup uses any more: fail safe, hold
        wanted = {str(v) for v in spec.get("bi") or ()}
        last4 = spec.get("index") == "last4"
        if not any(_side_has(call, side, wanted, last4, index) for side in NUMBER_SIDES[key]):
            return False
    return True


def _side_has(call: Mapping[str, Any], side: str, wanted: set[str], last4: bool,
              index: BlindIndex | None) -> bool:
    column = f"{side}_bi4" if last4 else f"{side}_bi"
    if call.get(f"{side}_bi") or call.get(f"{side}_bi4"):  # a protected row: its stored index
        return str(call.get(column) or "") in wanted
    number = str(call.get(f"{side}_num") or "")
    if not number or index is None:
        return False
    return bool(wanted & set(index.last4s(number) if last4 else index.fulls(number)))


def _last4_lookup(side: str, bi4: list[str]) -> Callable[[list[Any]], str]:
    """The last-4 lookup of one side, for :func:`in_both_parts`."""
    return lambda p: equals_any(f"{side}_bi4", bi4, p)


def number_clause(q: Mapping[str, Any], params: list[Any], index: BlindIndex | None) -> str | None:
    """SQL over ``calls`` narrowing to the first indexed number filter of ``q`` (one index range
    per side), or None (none, or one under a retired key: the caller reads the table)."""
    for key, spec in indexed_number_filters(q).items():
        if _stale(spec, index):
            return None
        bi, bi4 = [str(v) for v in spec.get("bi") or ()], [str(v) for v in spec.get("bi4") or ()]
        if spec.get("index") == "last4":
            parts = [in_both_parts(_last4_lookup(side, bi), params) for side in NUMBER_SIDES[key]]
        else:
            parts = [stored_side_clause(side, bi, bi4, params) for side in NUMBER_SIDES[key]]
        return "(" + " OR ".join(parts) + ")"
    return None


# -- the stored query at rest: one token under the catalog key, bound to its hold ----------------
KIND = "query_holds"
#: filters that are no free text: the number filters (blind indexes), times, the call id (an id
#: every calls row keeps in clear; Asterisk's ``1767225600.42`` is a digit run, not a number)
NOT_FREE = (*NUMBER_SIDES, "start", "end", "call_id")


def free_fields_name_a_number(q: Mapping[str, Any]) -> bool:
    """Does a free field of ``q`` hold a number-like run (>= 5 digits, as the catalog indexes)?"""
    return bool(named_digits(*(str(v) for k, v in q.items() if k not in NOT_FREE)))


def sealed(numbers: NumberProtection | None, hold_id: str, q: Mapping[str, Any]) -> str:
    """What ``holds.value`` keeps of the query ``q`` (number filters already blind indexes): one
    token bound to ``hold_id``; without keys the JSON in clear when no free field names a number,
    else :class:`PolicyRefusal`."""
    text = json.dumps(dict(q), sort_keys=True)
    if numbers is None:
        if free_fields_name_a_number(q):
            raise PolicyRefusal("a query hold cannot name a phone number in agent, did or another free "
                                "field in a catalog without number protection: hold by --caller, or by "
                                "caller/callee/number in the query (stored as blind indexes)")
        return text
    return seal_text(numbers, hold_id, text)


def seal_text(numbers: NumberProtection, hold_id: str, text: str) -> str:
    """``text`` (a stored query, as JSON) as the token of hold ``hold_id`` (under the current key)."""
    return numbers.seal_text(KIND, hold_id, text)


def opened(numbers: NumberProtection | None, hold_id: str, stored: str) -> str:
    """The query JSON a stored value gives back (clear JSON, from before, as it is);
    :class:`CryptoError` for a token that does not open (no keys, another hold's token)."""
    if not is_token(stored):
        return stored
    if numbers is None:
        raise CryptoError(f"query hold {hold_id} is encrypted and this catalog has no number keys")
    return numbers.open_text(KIND, hold_id, stored)


def query_of(numbers: NumberProtection | None, hold_id: str, stored: str) -> dict[str, Any]:
    """The filters a query hold's stored value gives (:func:`opened`, then
    ``policy.parse_query``): :class:`CryptoError` for a token that does not open, ``ValueError``
    for a value that is no query.  What the hold covers, what ``hold list`` marks unreadable and
    what ``verify`` notes are decided here, alike."""
    return parse_query(opened(numbers, hold_id, stored))


def unreadable_because(numbers: NumberProtection | None, hold_id: str, stored: str) -> str:
    """Why a query hold's stored value gives no query ('' when it gives one)."""
    try:
        query_of(numbers, hold_id, stored)
    except (CryptoError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return ""
