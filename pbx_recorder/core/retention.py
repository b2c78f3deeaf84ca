"""Retention decisions for the lifecycle, pure (time passed in).

Every function accepts recordings either as :class:`RecordingInfo` or as plain mappings
with the column names of the ``recordings`` table (``tags``/``flags`` may be JSON text).

Rules, in the order they win:
  * a legal hold (active ``Hold`` matching the recording, or the ``legal_hold`` flag) forbids
    deletion - never migration;
  * ``protected`` (recording or class) forbids deletion;
  * otherwise a recording whose retention has ended may be disposed of.  The end is never
    earlier than ``created_at`` + its class's days (an unknown class: :data:`MIN_RETENTION_DAYS`,
    the floor the configuration holds every class to unless it says ``allow_short``): an
    explicit ``retain_until`` can only extend it, so one edited column (``UPDATE recordings SET
    retain_until=1``) cannot make a recording due early.
Holds fail safe: a query hold that cannot be read, or names a field we do not know, holds
everything it could mean (over-holding is recoverable, deleting evidence is not).
Refusals are returned with a reason string, not raised.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DAY = 86400.0
LIVE_STATES = ("stored", "verified", "migrated")  # bytes sit on a tier
VALUABLE_TAGS = frozenset({"vip", "complaint", "dispute"})
#: the shortest retention a class may have without ``allow_short`` (``config.storage`` validates
#: classes against the same figure; ``test_retention_floor`` keeps the two equal)
MIN_RETENTION_DAYS = 180


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    recording_id: str
    call_id: str
    created_at: float  # when the recording started
    retention_class: str = ""
    retain_until: float | None = None
    tier: str = ""
    state: str = "stored"
    legal_hold: bool = False
    protected: bool = False
    tags: tuple[str, ...] = ()
    caller_hash: str = ""
    region: str = ""
    size: int = 0


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    scope: str  # call | caller | query
    value: str  # call id | caller hash | JSON query
    released_at: float | None = None


@dataclass(frozen=True, slots=True)
class ClassPolicy:
    name: str
    days: int  # <= 0: keep forever
    cold_after_days: int | None = None  # None: never migrate
    protected: bool = False


@dataclass(frozen=True, slots=True)
class Candidate:
    recording_id: str
    call_id: str
    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class MigrationCandidate:
    recording_id: str
    call_id: str
    from_tier: str
    reason: str


def _get(rec: Any, name: str, default: Any = None) -> Any:
    if isinstance(rec, Mapping):
        return rec.get(name, default)
    return getattr(rec, name, default)


def _tags(rec: Any) -> set[str]:
    raw = _get(rec, "tags", ())
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip().startswith("[") else raw.split(",")
        except ValueError:
            raw = []
    return {str(t).strip().lower() for t in (raw or ()) if str(t).strip()}


def retain_until(started_at: float, class_days: int | None, now: float) -> float | None:
    """End of retention; None = keep forever.  A missing start (0/None) counts from ``now``."""
    if class_days is None or class_days <= 0:
        return None
    base = started_at if started_at and started_at > 0 else now
    return float(base) + class_days * DAY


def _until(rec: Any, classes: Mapping[str, ClassPolicy] | None, now: float) -> float | None:
    """The effective end of retention (None: keep forever): the class's period from ``created_at``,
    which an explicit ``retain_until`` may extend but never shorten (it is a plain column; its one
    legitimate writer, ``set-class``, writes exactly that period of the new class)."""
    explicit = _get(rec, "retain_until")
    days = minimum_days(rec, classes, explicit is not None)
    if days is None:  # a class that keeps forever, or an unknown class and no explicit end
        return None
    floor = float(retain_until(float(_get(rec, "created_at", 0) or 0), days, now) or 0.0)
    return floor if explicit is None else max(float(explicit), floor)


def minimum_days(rec: Any, classes: Mapping[str, ClassPolicy] | None, explicit: bool = True) -> int | None:
    """The fewest days ``rec`` is kept (None: forever): its class's days (``config.storage`` has
    refused a class below :data:`MIN_RETENTION_DAYS` without ``allow_short``); a recording of an
    unknown class with an explicit end keeps that minimum (without one it is kept forever, as
    before)."""
    cls = (classes or {}).get(str(_get(rec, "retention_class", "") or ""))
    if cls is None:
        return MIN_RETENTION_DAYS if explicit else None
    return cls.days if cls.days > 0 else None


def effective_until(rec: Any, classes: Mapping[str, ClassPolicy] | None, now: float) -> float | None:
    """Public form of the end of retention the disposal decision uses (reports, tests)."""
    return _until(rec, classes, now)


def hold_reason(hold: Hold | Mapping[str, Any], rec: Any, now: float) -> str | None:
    """Why ``hold`` covers ``rec`` (None: it does not, or it was released)."""
    released = _get(hold, "released_at")
    if released is not None and float(released) <= now:
        return None
    hid, scope, value = _get(hold, "hold_id", "?"), _get(hold, "scope", ""), str(_get(hold, "value", ""))
    if scope == "call":
        return f"hold {hid} on call" if value == _get(rec, "call_id") else None
    if scope == "caller":
        return f"hold {hid} on caller" if value and value == _get(rec, "caller_hash") else None
    if scope != "query":
        return f"hold {hid} has unknown scope {str(scope)[:20]!r}: holds everything"
    try:
        query = json.loads(value) if value else {}
    except ValueError:
        return f"hold {hid}: unreadable query holds everything"
    if not isinstance(query, Mapping):
        return f"hold {hid}: unreadable query holds everything"
    return f"hold {hid} by query" if _query_matches(query, rec) else None


def _query_matches(query: Mapping[str, Any], rec: Any) -> bool:
    for key, want in query.items():
        if key in ("call_id", "caller_hash", "region", "retention_class", "tier"):
            if str(_get(rec, key, "")) != str(want):
                return False
        elif key == "tags":
            wanted = {str(t).lower() for t in (want if isinstance(want, list) else [want])}
            if not wanted & _tags(rec):
                return False
        elif key == "from":
            if float(_get(rec, "created_at", 0) or 0) < float(want):
                return False
        elif key == "to":
            if float(_get(rec, "created_at", 0) or 0) > float(want):
                return False
        # an unknown key cannot be evaluated: it does not narrow the hold (fail safe)
    return True


def held_by(rec: Any, holds: Iterable[Hold | Mapping[str, Any]], now: float) -> str | None:
    if _get(rec, "legal_hold"):
        return "legal hold flag set"
    for hold in holds:
        why = hold_reason(hold, rec, now)
        if why:
            return why
    return None


def disposal_candidates(recordings: Iterable[Any], holds: Iterable[Hold | Mapping[str, Any]], now: float,
                        classes: Mapping[str, ClassPolicy] | None = None) -> list[Candidate]:
    """Every recording whose retention has passed; ``allowed`` False (with the reason) when held/protected."""
    holds = list(holds)
    out: list[Candidate] = []
    for rec in recordings:
        if _get(rec, "state", "stored") not in LIVE_STATES:
            continue
        until = _until(rec, classes, now)
        if until is None or until > now:
            continue
        rid, cid = str(_get(rec, "recording_id")), str(_get(rec, "call_id"))
        cls = (classes or {}).get(str(_get(rec, "retention_class", "") or ""))
        held = held_by(rec, holds, now)
        if held:
            out.append(Candidate(rid, cid, False, f"legal hold: {held}"))
        elif _get(rec, "protected") or (cls is not None and cls.protected):
            out.append(Candidate(rid, cid, False, "protected"))
        else:
            out.append(Candidate(rid, cid, True, f"retention expired {int((now - until) // DAY)} day(s) ago"))
    return out


def migration_candidates(recordings: Iterable[Any], classes: Mapping[str, ClassPolicy], now: float,
                         holds: Iterable[Hold | Mapping[str, Any]] = ()) -> list[MigrationCandidate]:
    """Stored on the hot tier (state stored/verified) and older than the class's ``cold_after_days``.

    Held recordings migrate too (a hold forbids deletion, not moving); expired, unheld ones are
    left to disposal instead of being copied first.
    """
    holds = list(holds)
    out: list[MigrationCandidate] = []
    for rec in recordings:
        if _get(rec, "state") not in ("stored", "verified"):
            continue
        cls = classes.get(str(_get(rec, "retention_class", "") or ""))
        if cls is None or cls.cold_after_days is None:
            continue
        age_days = (now - float(_get(rec, "created_at", 0) or 0)) / DAY
        if age_days < cls.cold_after_days:
            continue
        held = held_by(rec, holds, now)
        until = _until(rec, classes, now)
        if until is not None and until <= now and not held:
            continue
        reason = f"{int(age_days)} day(s) old >= cold_after_days {cls.cold_after_days}"
        if held:
            reason += f" (held: migrates, never deleted; {held})"
        out.append(MigrationCandidate(str(_get(rec, "recording_id")), str(_get(rec, "call_id")),
                                      str(_get(rec, "tier", "")), reason))
    return out


def eviction_refusal(rec: Any, holds: Iterable[Hold | Mapping[str, Any]], now: float) -> str | None:
    """Why a recording must not be removed from its tier to free space (None: it may be)."""
    held = held_by(rec, holds, now)
    if held:
        return f"legal hold: {held}"
    if _get(rec, "protected"):
        return "protected"
    return None


def capacity_ranking(recordings: Iterable[Any], now: float | None = None) -> list[Any]:
    """The same recordings, lowest value first: unheld, unprotected, not VIP/complaint, oldest,
    then largest.  Held or protected ones come last (they may move, never be deleted)."""

    def key(rec: Any) -> tuple[int, int, float, int]:
        keep = 1 if (_get(rec, "legal_hold") or _get(rec, "protected")) else 0
        valuable = 1 if _tags(rec) & VALUABLE_TAGS else 0
        return keep, valuable, float(_get(rec, "created_at", 0) or 0), -int(_get(rec, "size", 0) or 0)

    return sorted(recordings, key=key)
