"""Pure lifecycle decisions the lifecycle jobs need (no I/O, time passed in).

Rows are plain mappings with the column names of ``catalog/schema.py``.  The core
helper's ``pbx_recorder.retention`` owns the general retention rules; what lives here
are the decisions specific to moving, disposing, holding and erasing recordings.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DAY = 86400.0
ERASURE_DEADLINE_DAYS = 15
DELETION_LOG_KEEP_DAYS = 366  # nothing prunes deletion_log earlier (nothing prunes it at all today)
LIVE_STATES = ("stored", "verified", "migrated")  # a recording whose bytes sit on a tier


@dataclass(frozen=True, slots=True)
class RetentionClass:
    name: str
    days: int  # <= 0: keep forever
    cold_after_days: int | None = None  # None: never migrate
    protected: bool = False


def classes_from_config(classes: Mapping[str, Any]) -> dict[str, RetentionClass]:
    """Accept config RetentionClass objects or plain dicts."""
    out = {}
    for name, c in classes.items():
        get = c.get if isinstance(c, Mapping) else lambda k, d=None, c=c: getattr(c, k, d)
        out[name] = RetentionClass(
            name=name,
            days=int(get("days", 0) or 0),
            cold_after_days=get("cold_after_days"),
            protected=bool(get("protected", False)),
        )
    return out


def retain_until(created_at: float, cls: RetentionClass | None) -> float | None:
    """Epoch seconds after which the recording may be disposed of; None = keep."""
    if cls is None or cls.days <= 0:
        return None
    return created_at + cls.days * DAY


def effective_retain_until(rec: Mapping[str, Any], cls: RetentionClass | None) -> float | None:
    if rec.get("retain_until") is not None:
        return float(rec["retain_until"])
    return retain_until(float(rec["created_at"]), cls)


def due_for_migration(rec: Mapping[str, Any], cls: RetentionClass | None, now: float) -> bool:
    if cls is None or cls.cold_after_days is None or rec.get("state") not in ("stored", "verified"):
        return False
    return float(rec["created_at"]) + cls.cold_after_days * DAY <= now


@dataclass(frozen=True, slots=True)
class Disposal:
    recording_id: str
    call_id: str
    action: str  # dispose | refuse | keep
    reason: str
    policy: str  # retention class and its days
    retain_until: float | None


def disposal_decision(
    rec: Mapping[str, Any], cls: RetentionClass | None, now: float, hold_reason: str | None
) -> Disposal:
    """Why a recording is (not) disposed of now.  Holds and protection win over expiry."""
    name = str(rec.get("retention_class") or "")
    policy = f"{name}:{cls.days}d" if cls else f"{name or '?'}:unknown-class"
    until = effective_retain_until(rec, cls)

    def d(action: str, reason: str) -> Disposal:
        return Disposal(str(rec["recording_id"]), str(rec["call_id"]), action, reason, policy, until)

    if rec.get("state") not in LIVE_STATES:
        return d("keep", f"state {rec.get('state')}")
    if until is None:
        return d("keep", "no expiry (unknown class or kept forever)")
    if until > now:
        return d("keep", "retention not reached")
    if hold_reason is not None:
        return d("refuse", f"legal hold: {hold_reason}")
    if rec.get("legal_hold"):
        return d("refuse", "legal hold flag set on the recording")
    if rec.get("protected") or (cls is not None and cls.protected):
        return d("refuse", f"protected (class {name})" if cls and cls.protected else "protected recording")
    return d("dispose", f"retention expired {int((now - until) // DAY)} day(s) ago")


def capacity_order(recs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Which hot recordings to move first under pressure: lowest value first.

    Unprotected before protected, then soonest expiry, then oldest, then largest.
    """

    def key(r: Mapping[str, Any]) -> tuple[int, float, float, int]:
        until = r.get("retain_until")
        return (
            1 if r.get("protected") else 0,
            float(until) if until is not None else float("inf"),
            float(r.get("created_at") or 0),
            -int(r.get("size") or 0),
        )

    return sorted(recs, key=key)


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
