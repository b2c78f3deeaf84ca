"""Pure lifecycle decisions missing from ``pbx_recorder.core.retention`` (no I/O, time passed in).

The core helper's ``retention`` owns retain_until, disposal/migration candidates and
capacity ranking; this module adds what the jobs need besides: class parsing from the
config, keyed subject hashes, the erasure deadline, and ``calls search``-style filters
for query holds.  Rows are plain mappings with the column names of ``catalog/schema.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pbx_recorder.catalog.protected_rows import named_digits
from pbx_recorder.core.retention import DAY, LIVE_STATES, ClassPolicy  # noqa: F401 - re-exported for the jobs

ERASURE_DEADLINE_DAYS = 15
DELETION_LOG_KEEP_DAYS = 366  # nothing prunes deletion_log earlier (nothing prunes it at all today)

RetentionClass = ClassPolicy  # name, days (<= 0: forever), cold_after_days (None: never), protected


def classes_from_config(classes: Mapping[str, Any]) -> dict[str, ClassPolicy]:
    """Accept config RetentionClass objects or plain dicts."""
    out = {}
    for name, c in classes.items():
        get = c.get if isinstance(c, Mapping) else lambda k, d=None, c=c: getattr(c, k, d)
        out[name] = ClassPolicy(
            name=name,
            days=int(get("days", 0) or 0),
            cold_after_days=get("cold_after_days"),
            protected=bool(get("protected", False)),
        )
    return out


def policy_label(rec: Mapping[str, Any], classes: Mapping[str, ClassPolicy]) -> str:
    name = str(rec.get("retention_class") or "")
    cls = classes.get(name)
    return f"{name}:{cls.days}d" if cls else f"{name or '?'}:unknown-class"


@dataclass(frozen=True, slots=True)
class Disposal:
    recording_id: str
    call_id: str
    action: str  # dispose | refuse
    reason: str
    policy: str  # retention class and its days


def normalize_number(number: str) -> str:
    text = "".join(ch for ch in str(number) if ch.isdigit() or ch == "+")
    return text[:1] + text[1:].replace("+", "")


def subject_hash(key: bytes, value: str) -> str:
    """Keyed hash (HMAC-SHA256) of a phone number or call id: never stored in clear."""
    return "hmac-sha256:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def number_hash(key: bytes, number: str) -> str:
    return subject_hash(key, normalize_number(number))


def erasure_deadline(received_at: float, days: int = ERASURE_DEADLINE_DAYS) -> float:
    return received_at + days * DAY


# Search filters, named as in ``calls search`` (catalog.CallFilters) plus region / retention_class.
QUERY_KEYS = (
    "start",
    "end",
    "status",
    "caller",
    "callee",
    "number",
    "call_id",
    "agent",
    "queue",
    "tag",
    "consent",
    "did",
    "direction",
    "region",
    "retention_class",
)
_EXACT = {
    "status": "status",
    "call_id": "call_id",
    "agent": "agent",
    "queue": "queue",
    "consent": "consent_decision",
    "did": "did",
    "direction": "direction",
    "region": "region",
    "retention_class": "retention_class",
}


def parse_query(text_or_map: str | Mapping[str, Any]) -> dict[str, Any]:
    q = json.loads(text_or_map) if isinstance(text_or_map, str) else dict(text_or_map)
    if not isinstance(q, dict):
        raise ValueError("a query is a JSON object of search filters")
    q = {k: v for k, v in q.items() if v not in (None, "")}
    unknown = sorted(set(q) - set(QUERY_KEYS))
    if unknown:
        raise ValueError(f"unknown query filter(s): {', '.join(unknown)} (known: {', '.join(QUERY_KEYS)})")
    if not q:
        raise ValueError("an empty query would hold every call")
    return q


def number_matches(stored: str, wanted: str) -> bool:
    """Full number, or the last 4 digits (as ``calls search`` accepts)."""
    s, w = normalize_number(stored), normalize_number(wanted)
    if not s or not w:
        return False
    if len(w.lstrip("+")) == 4:
        return s.endswith(w.lstrip("+"))
    return s == w


def query_matches(call: Mapping[str, Any], q: Mapping[str, Any]) -> bool:
    """Does a calls row match the filters?  All given filters must match."""
    caller, callee = str(call.get("caller_num") or ""), str(call.get("callee_num") or "")
    started = call.get("started_at")
    for k, v in q.items():
        if k == "caller" and not number_matches(caller, v):
            return False
        if k == "callee" and not number_matches(callee, v):
            return False
        if k == "number" and not (number_matches(caller, v) or number_matches(callee, v)):
            return False
        if k == "start" and (started is None or float(started) < float(v)):
            return False
        if k == "end" and (started is None or float(started) >= float(v)):
            return False
        if k == "tag" and v not in json.loads(call.get("tags") or "[]"):
            return False
        if k in _EXACT and str(call.get(_EXACT[k]) or "") != str(v):
            return False
    return True


# -- copies that arrive after an erasure (lifecycle.late_copies) -----------------------------
_NUMBER_RUNS = (re.compile(r"\+?\d[\d ()./-]{3,}\d"), re.compile(r"\+?\d{3,}"))


def number_variants(number: str) -> set[str]:
    """A number as erasure may have been asked for it: normalized, with and without the '+'."""
    norm = normalize_number(number)
    bare = norm.lstrip("+")
    return {norm, bare, "+" + bare} if bare else set()


def numbers_in(*values: Any) -> set[str]:
    """Every number-like run in ``values`` (fields, CDR text, channel names, JSON), in the forms
    :func:`number_variants` gives; what a late copy is matched against the tombstones by.  Every
    number the catalog indexes a call by (``catalog.protected_rows.named_digits``, what erasure and
    holds look up) is among them: a copy is never missed where the catalog's row would be found."""
    found: set[str] = set()
    for value in values:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str,
                                                                ensure_ascii=False)
        for pattern in _NUMBER_RUNS:
            for run in pattern.findall(text):
                found |= number_variants(run)
    for digits in named_digits(*values):
        found |= number_variants(digits)
    return found


@dataclass(frozen=True, slots=True)
class LateCopyVerdict:
    action: str  # keep | destroy | withhold
    request_id: str = ""
    erased_at: float | None = None


def late_copy_verdict(erasures: list[tuple[float, str, str]], started_at: float | None, *,
                      held: bool) -> LateCopyVerdict:
    """What to do with a copy (call row, live-call snapshot, spooled recording) of a subject that
    ``erasures`` (``(erased at, request id, kind)``, from the tombstones) name.

    A call that started before an erasure of its subject was live when the erasure ran: it is
    destroyed on arrival (withheld instead when a legal hold covers it).  One that started after
    every erasure is a new call (a new consent) and is kept.  An erasure by call id names that
    very call: it is never a new one.  An unknown start is treated as before the erasure."""
    for at, request_id, kind in erasures:  # latest first
        if kind == "call_id" or started_at is None or started_at < at:
            return LateCopyVerdict("withhold" if held else "destroy", request_id, at)
    return LateCopyVerdict("keep")
