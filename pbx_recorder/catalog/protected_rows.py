"""Which catalog values carry numbers, and how a row is stored without them in clear.

``calls``: ``caller_num``, ``caller_name`` (a caller id name is often the number), ``callee_num``,
``cdr`` (src, dst, clid, channel, dstchannel, lastdata, dnid ...) and ``consent`` (evidence) go
into one encrypted JSON token in ``calls.numbers``; the clear columns keep their empty defaults.
``caller_bi``/``caller_bi4`` and ``callee_bi``/``callee_bi4`` are the blind indexes (full number,
last 4 digits).  ``call_numbers`` holds the full-number index of every *other* number a call
names (CDR transfer targets, the dialed number, the signed manifest's numbers, a caller an earlier
version of the row had; since schema 13 not the row's own two, ``catalog.named_rows``): erasure by
number looks up all three.  Whole texts (a live-call snapshot, a recording's manifest) are one token each.

``did`` stays in clear: it is the operator's own published number (the line that was dialed),
not a subject's; query holds and searches filter on it.  Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher, digits_of, is_token
from pbx_recorder.catalog.schema_fresh_numbers import FRESH, SETTLED
from pbx_recorder.recording.sorted_json import SortedJson

CALL_FIELDS = ("caller_num", "caller_name", "callee_num", "cdr", "consent")
CLEAR_DEFAULTS: dict[str, Any] = {"caller_num": "", "caller_name": "", "callee_num": "", "cdr": {},
                                  "consent": {}}
MANIFEST_FIELDS = ("cdr", "consent", "callee_num")
MANIFEST_TOKEN = "protected_numbers"
#: what a catalog without number protection keeps of a signed manifest besides its copy (schema 11,
#: ``pbx_recorder.recording.manifest_copy``): the numbers erasure finds a call by
#: (``lifecycle.number_lookup.manifest_numbers``), sealed by the data step like older whole copies
CLEAR_MANIFEST_FIELDS = (*MANIFEST_FIELDS, "did")
#: encoders made once (``json.dumps`` with options makes one per call): the sealed texts, and the
#: text the number finder scans (non-ASCII kept as it is: an escape such as ``\u6237`` ends in
#: digits, which would be glued to a number written right after a CJK character).  The scanned
#: text is compact: a run never holds the space ``json`` writes after a ``,`` or ``:`` (a run starts
#: with a digit or ``+`` and holds neither), so it finds the runs the spaced text did
_SEALED_JSON = SortedJson(default=list)  # (``json``'s compact sorted text, made by orjson)
_SCANNED_JSON = SortedJson(default=str, ensure_ascii=False)
#: the JSON columns' cleared values as the text the catalog stores for them (encoded once, here)
_CLEAR_JSON = {"cdr": "{}", "consent": "{}"}
#: the clear columns of a call whose protected fields are in its token: their empty defaults
CLEAR_STORED: dict[str, Any] = {**CLEAR_DEFAULTS, **_CLEAR_JSON}
INDEX_COLUMNS = ("caller_bi", "caller_bi4", "callee_bi", "callee_bi4")
#: a number as people and PBXs write it: digits that ``-``, ``/``, ``.``, spaces and brackets may
#: split into groups (``+49 (151) 1234-5678``), or a plain run
_NUMBER_RUN = re.compile(r"\+?\d[\d ()./-]{3,}\d|\d{5,}")
#: the plain digit runs inside one: ``SIP/4915199999999-00000001``, ``cb 4915199999999 12345`` or
#: ``SIP/4915199999999/30`` is one run of the pattern above, and the number in it a run of these
_PLAIN_RUN = re.compile(r"\d{5,}")
MIN_NAMED_DIGITS = 5  # shorter runs (extensions, durations) are not indexed as numbers
#: CDR fields that hold times, durations and the PBX's own ids, never a subject's number (both
#: adapters' names: ami.normalize.CDR_FIELDS, esl.normalize): their digit runs ("2026-12-01 10",
#: "1764582000.42") are not indexed as numbers.  Every other field is scanned: src, dst, clid,
#: channel, dstchannel, lastdata, userfield, a SIP call id and anything a dialplan adds.
NOT_NUMBER_FIELDS = frozenset({"start", "answer", "end", "start_epoch", "answer_epoch", "end_epoch",
                               "duration", "billsec", "uniqueid", "linkedid"})


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def call_token_text(plain: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The text a call's token encrypts for its protected fields ``plain``, and those fields as
    the token opens (what the call seal covers).  Pure: ``NumberProtection.seal_call_opened`` and
    the seal made ahead of a write (``catalog.seal_ahead``) both make them here."""
    body = {f: plain.get(f, CLEAR_DEFAULTS[f]) for f in CALL_FIELDS}
    body["cdr"], body["consent"] = _json_value(body["cdr"]) or {}, _json_value(body["consent"]) or {}
    text = _SEALED_JSON.encode(body)
    opened = json.loads(text)
    return text, {f: opened.get(f, CLEAR_DEFAULTS[f]) for f in CALL_FIELDS}


@dataclass
class NumberProtection:
    cipher: NumberCipher
    index: BlindIndex

    # -- calls ---------------------------------------------------------------------
    def seal_call(self, call_id: str, plain: Mapping[str, Any]) -> dict[str, Any]:
        """The stored columns for a call whose protected fields are ``plain`` (all of CALL_FIELDS)."""
        return self.seal_call_opened(call_id, plain)[0]

    def seal_call_opened(self, call_id: str,
                         plain: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`seal_call`, and the protected fields as :meth:`open_call` will give them back
        (the encrypted text decoded: what the call seal covers, without decrypting it again)."""
        text, opened = call_token_text(plain)
        caller, callee = str(opened["caller_num"] or ""), str(opened["callee_num"] or "")
        return {
            **CLEAR_STORED,
            "numbers": self.cipher.encrypt(text, f"calls/{call_id}"),
            "caller_bi": self.index.full(caller), "caller_bi4": self.index.last4(caller),
            "callee_bi": self.index.full(callee), "callee_bi4": self.index.last4(callee),
        }, opened

    def open_call(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """``row`` with its protected fields back in clear (a row without a token is returned as is)."""
        out = dict(row)
        token = row.get("numbers")
        if is_token(token):
            body = json.loads(self.cipher.decrypt(str(token), f"calls/{row['call_id']}"))
            for f in CALL_FIELDS:
                out[f] = body.get(f, CLEAR_DEFAULTS[f])
            if isinstance(row.get("cdr"), str):  # a raw row (JSON columns as text): keep it raw
                out["cdr"] = json.dumps(out["cdr"], sort_keys=True, default=list)
                out["consent"] = json.dumps(out["consent"], sort_keys=True, default=list)
        return out

    def named_numbers(self, *values: Any) -> set[str]:
        """Full-number indexes of every number-like run (>= 5 digits) in ``values``."""
        return {self.index.full_of_digits(d) for d in named_digits(*values)}

    def named_index(self, *values: Any) -> dict[str, str]:
        """:meth:`named_numbers` with the number each index is of: digits -> full-number index."""
        return {d: self.index.full_of_digits(d) for d in named_digits(*values)}

    def row_digits(self, plain: Mapping[str, Any]) -> set[str]:
        """The numbers (digits) a call's opened fields name, as ``call_numbers`` indexes them."""
        return named_digits(plain.get("caller_num"), plain.get("callee_num"), plain.get("cdr"))

    # -- whole texts (live-call snapshots, manifests) -----------------------------
    def seal_text(self, kind: str, key: str, text: str) -> str:
        return self.cipher.encrypt(text, f"{kind}/{key}")

    def open_text(self, kind: str, key: str, stored: str) -> str:
        return self.cipher.decrypt(stored, f"{kind}/{key}") if is_token(stored) else stored

    # -- a recording's manifest: number-bearing fields in one token, the rest in clear ---------
    def seal_manifest(self, recording_id: str, manifest: Any) -> Any:
        """The catalog copy of a signed manifest: :data:`MANIFEST_FIELDS` moved into a token
        (:data:`MANIFEST_TOKEN`), the rest (files, processing, flags) readable without keys."""
        m = _json_value(manifest)
        if not isinstance(m, Mapping) or is_token(m.get(MANIFEST_TOKEN)):
            return manifest
        moved = {f: m[f] for f in MANIFEST_FIELDS if f in m}
        if not moved:
            return manifest
        rest = {k: v for k, v in m.items() if k not in moved}
        rest[MANIFEST_TOKEN] = self.cipher.encrypt(_SEALED_JSON.encode(moved),
                                                   f"manifest/{recording_id}")
        return rest

    def open_manifest(self, recording_id: str, stored: Any) -> Any:
        """The manifest as signed (a cell without a token is returned decoded, as is)."""
        m = _json_value(stored)
        if not isinstance(m, Mapping) or not is_token(m.get(MANIFEST_TOKEN)):
            return m
        out = {k: v for k, v in m.items() if k != MANIFEST_TOKEN}
        out.update(json.loads(self.cipher.decrypt(str(m[MANIFEST_TOKEN]), f"manifest/{recording_id}")))
        return out


def _scanned(value: Any) -> Any:
    """``value`` without the :data:`NOT_NUMBER_FIELDS` of a CDR (a mapping, or one as JSON text)."""
    if isinstance(value, str) and value.startswith("{"):
        value = _json_value(value)
    if isinstance(value, Mapping) and not NOT_NUMBER_FIELDS.isdisjoint(value):
        return {k: v for k, v in value.items() if k not in NOT_NUMBER_FIELDS}
    return value


def named_digits(*values: Any) -> set[str]:
    """The numbers (digits) ``values`` name, as ``call_numbers`` indexes them and erasure, holds and
    the late-copy guard look them up (texts, or JSON values; a CDR's time, duration and id fields
    are left out).

    Each number-like run (>= 5 digits) gives its digits, and so does each plain run of >= 5 digits
    inside it: a channel name's number (``SIP/<number>-00000001``), a dial string's (``SIP/<number>/30``)
    or a note's (``<number> 12345``) is found by itself, not only glued to what follows it.  Naming
    one number too many makes an erasure or a hold match more, never less; each number once."""
    runs: set[str] = set()  # each number's digits once, however often the values name it
    for value in values:
        if value is None or value == "":
            continue
        value = _scanned(value)
        text = value if isinstance(value, str) else _SCANNED_JSON.encode(value)
        for run in _NUMBER_RUN.findall(text):
            digits = digits_of(run)
            if len(digits) >= MIN_NAMED_DIGITS:
                runs.add(digits)
            if digits != run:  # (a plain run holds no other)
                runs.update(_PLAIN_RUN.findall(run))
    return runs


def is_last4(value: str) -> bool:
    """A search by exactly 4 digits is by the last 4 digits; anything else is a full number."""
    digits = "".join(ch for ch in value if ch.isdigit())
    return len(digits) == 4 and digits == value.strip().lstrip("+").replace(" ", "")


def side_clause(index: BlindIndex, side: str, value: str, params: list[Any], *,
                full: bool | None = None, part: str | None = None) -> str:
    """SQL over ``calls``: ``side`` (caller or callee) is ``value`` -- its last 4 digits, or the
    full number (``full``: always the full number, as erasure and holds look a number up; by
    default a value of exactly 4 digits is the last 4).  One range of the ``calls_<side>_number``
    index either way (schema 15): the last 4 digits' blind index, the full number's filtered inside
    it (it is the index's last column).  Since schema 25 a new call waits in the side's fresh index
    (``schema_fresh_numbers``): the lookup is two ranges, one of each (:func:`in_both_parts`), or
    the range of ``part`` (``SETTLED`` or ``FRESH``) alone for a caller that reads the parts apart.
    Each value one, or two while a blind-index key rotation runs (a row may be under either key)."""
    # (a number of fewer than 4 digits has the last-4 index '': the range of such calls)
    last4s = index.last4s(value)  # (once: both parts' lookups bind the same values)
    if not full and (full is not None or is_last4(value)):
        return in_both_parts(lambda p: equals_any(f"{side}_bi4", last4s, p), params, part)
    return stored_side_clause(side, index.fulls(value), last4s, params, part=part)


def stored_side_clause(side: str, fulls: Sequence[str], last4s: Sequence[str], params: list[Any], *,
                       part: str | None = None) -> str:
    """:func:`side_clause` for stored index values (a caller hold's ``value`` and ``value4``);
    without their last-4 values, a clause no index serves (every call is read)."""
    if not last4s:
        return equals_any(f"{side}_bi", fulls, params)

    def lookup(p: list[Any]) -> str:
        last4 = equals_any(f"{side}_bi4", last4s, p)  # (the parameters in the order of the text)
        return f"({last4} AND {equals_any(f'{side}_bi', fulls, p)})"
    return in_both_parts(lookup, params, part)


def in_both_parts(lookup: Callable[[list[Any]], str], params: list[Any], part: str | None = None) -> str:
    """A number index lookup (``lookup`` writes its text and its parameters) over the settled and
    the fresh calls: ``(fresh = 0 AND x) OR (fresh <> 0 AND x)``, each arm a range of its own
    partial index (SQLite and PostgreSQL use a partial index only where the query repeats its
    condition), together every row whatever its mark; ``part``: that arm alone."""
    if part is not None:
        if part not in (SETTLED, FRESH):
            raise ValueError(f"unknown part of the number indexes: {part!r}")
        return f"({part} AND {lookup(params)})"
    return f"(({SETTLED} AND {lookup(params)}) OR ({FRESH} AND {lookup(params)}))"


def equals_any(column: str, values: Iterable[str], params: list[Any]) -> str:
    """``column = ?`` for one value (the plan the indexes are tuned for), ``column IN (?, ?)`` for
    the two of a key rotation."""
    values = list(values)
    params.extend(values)
    if len(values) == 1:
        return f"{column} = ?"
    return f"{column} IN ({', '.join('?' * len(values))})"


def call_ids_clause(index: BlindIndex, number: str, params: list[Any],
                    columns: Iterable[str] = ("caller", "callee")) -> str:
    """SQL clause (over ``calls``) for calls whose caller or callee is ``number`` (full or last 4),
    each alternative an index range; for callers that stream calls in batches (erase, hold)."""
    return "(" + " OR ".join(side_clause(index, column, number, params) for column in columns) + ")"
