"""What an export row holds (pure, no I/O): a fixed allow-list of columns, their cells, and the
neutralising of cells a spreadsheet would read as a formula.

A caller name is chosen by the caller (``=HYPERLINK(...)``, ``+cmd|' /C calc'!A0``, ``@SUM(...)``):
a text cell starting with ``= + - @``, a tab or a carriage return (also after leading blanks) gets
a leading apostrophe, in CSV and XLSX alike (OWASP "CSV injection").  Numbers stay numbers; only
text is ever touched.  Masking happens before this, through :func:`pbx_recorder.core.masking.present_call`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

#: the columns an export may carry, in this order (the search API's list fields)
FIELDS: tuple[str, ...] = ("call_id", "started_at", "answered_at", "ended_at", "duration", "billsec",
                           "direction", "caller_num", "callee_num", "caller_name", "agent", "queue",
                           "status", "tags", "consent_decision", "record_decision", "retention_class")
DEFAULT_FIELDS: tuple[str, ...] = ("call_id", "started_at", "duration", "caller_num", "callee_num",
                                   "agent", "queue", "status", "tags", "consent_decision")
TIME_FIELDS = frozenset({"started_at", "answered_at", "ended_at"})
NUMERIC_FIELDS = frozenset({"duration", "billsec"})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MAX_CELL = 1024  # longest text cell written (a hostile caller name stays a name)


def parse_fields(value: Any) -> tuple[str, ...]:
    """The columns asked for, in the order asked; ValueError names an unknown or repeated one."""
    if value is None:
        return DEFAULT_FIELDS
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("fields: a non-empty list of column names")
    seen: list[str] = []
    for name in value:
        if name not in FIELDS:
            raise ValueError(f"fields: unknown column {name[:40]!r} (one of {', '.join(FIELDS)})")
        if name in seen:
            raise ValueError(f"fields: {name} twice")
        seen.append(name)
    return tuple(seen)


def neutralise(text: str) -> str:
    """``text`` as a cell no spreadsheet evaluates: a leading apostrophe before a formula start."""
    return "'" + text if text.lstrip(" ").startswith(FORMULA_STARTS) else text


def _time(value: Any, tz: tzinfo | None) -> str:
    if value is None or value == "":
        return ""
    try:
        return datetime.fromtimestamp(float(value), tz).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def cell(name: str, value: Any, tz: tzinfo | None) -> str | int | float:
    """One cell: a time as ISO 8601 in ``tz``, a duration as a number, anything else as text."""
    if name in TIME_FIELDS:
        return _time(value, tz)
    if name in NUMERIC_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = "" if value is None else str(value)
    return neutralise(text[:MAX_CELL])


def cells(row: Mapping[str, Any], fields: Sequence[str], tz: tzinfo | None) -> list[str | int | float]:
    """The cells of one (already masked) call row."""
    return [cell(name, row.get(name), tz) for name in fields]


def header(fields: Iterable[str]) -> list[str]:
    return list(fields)
