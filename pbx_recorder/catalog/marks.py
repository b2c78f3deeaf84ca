"""Marks on a call's timeline (table ``marks``, schema 8) and the rows derived from a recording
that go when the recording or its call goes (portable SQL: SQLite and PostgreSQL).

A mark is a label (<= 80 characters) and a note (<= 2000) at a position in one recording of a
call, by an author.  Text is stored as typed (no stripping of markup: it is escaped where it is
shown) but for a payment card number, redacted for good; it is shown with numbers masked
(:func:`shown`) but to its author or a reader who unmasks.  Who may read, add or delete marks is
the service's business (``pbx_recorder.service.api_marks``); this module validates and stores.

:func:`forget_recording` / :func:`forget_call` are called by every path that deletes a
recording or a call row (erasure, late copies, tombstones on restore, retention disposal), so
neither peaks, marks, a call's number-index rows, its sealed extra numbers nor what people wrote
about it (QA review comments, replay-request reasons: they may quote the caller) outlive what they
describe.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from pbx_recorder.core.masking import mask_text, redact_card_numbers, shown_text

MAX_LABEL = 80
MAX_NOTE = 2000
MAX_MARKS_PER_CALL = 1000
_FIELDS = ("id", "call_id", "recording_id", "position_s", "label", "note", "author", "created_at")
#: what stands in a free text about a call once the call is gone: who wrote what when stays (the
#: QA score, the four-eyes decision), the words do not (they may quote the caller's number)
ERASED_TEXT = "[removed with the call]"
_ERASED_COMMENTS = json.dumps([{"mark_id": None, "text": ERASED_TEXT}], separators=(",", ":"))


class MarkRefused(ValueError):
    """A mark that cannot be stored as given (the message says which field)."""


@dataclass(frozen=True, slots=True)
class NewMark:
    call_id: str
    recording_id: str
    position_s: float
    label: str
    note: str
    author: str


def validate(mark: NewMark, duration_s: float | None) -> None:
    if not isinstance(mark.label, str) or not mark.label.strip():
        raise MarkRefused("label: required")
    if len(mark.label) > MAX_LABEL:
        raise MarkRefused(f"label: at most {MAX_LABEL} characters")
    if not isinstance(mark.note, str) or len(mark.note) > MAX_NOTE:
        raise MarkRefused(f"note: at most {MAX_NOTE} characters")
    if "\x00" in mark.label or "\x00" in mark.note:
        raise MarkRefused("label/note: no NUL characters")
    pos = mark.position_s
    if isinstance(pos, bool) or not isinstance(pos, int | float) or not 0 <= pos < float("inf"):
        raise MarkRefused("position_s: a number of seconds >= 0")
    if duration_s is not None and pos > duration_s:
        raise MarkRefused(f"position_s: beyond the recording's end ({duration_s:.1f} s)")


def add(conn: sqlite3.Connection, mark: NewMark, now: float) -> int:
    """Store ``mark`` (validated by the caller), a card number in its text redacted for good
    (``core.masking.redact_card_numbers``); its id."""
    count = conn.execute("SELECT COUNT(*) FROM marks WHERE call_id = ?", (mark.call_id,)).fetchone()[0]
    if count >= MAX_MARKS_PER_CALL:
        raise MarkRefused(f"a call holds at most {MAX_MARKS_PER_CALL} marks")
    row = conn.execute(
        "INSERT INTO marks (call_id, recording_id, position_s, label, note, author, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (mark.call_id, mark.recording_id, float(mark.position_s), redact_card_numbers(mark.label),
         redact_card_numbers(mark.note), mark.author, now)).fetchone()
    return int(row[0])


def for_call(conn: sqlite3.Connection, call_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(f"SELECT {', '.join(_FIELDS)} FROM marks WHERE call_id = ? "
                        "ORDER BY position_s, id", (call_id,)).fetchall()
    return [dict(zip(_FIELDS, r, strict=True)) for r in rows]


def shown(rows: list[dict[str, Any]], reader: str, unmask: bool) -> list[dict[str, Any]]:
    """Marks as ``reader`` sees them: numbers in label and note masked like free text, unless
    ``unmask`` or the reader wrote the mark."""
    return [{**r, "label": shown_text(r["label"], unmask or r["author"] == reader),
             "note": shown_text(r["note"], unmask or r["author"] == reader)} for r in rows]


def get(conn: sqlite3.Connection, mark_id: int) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {', '.join(_FIELDS)} FROM marks WHERE id = ?", (mark_id,)).fetchone()
    return dict(zip(_FIELDS, row, strict=True)) if row else None


def delete(conn: sqlite3.Connection, mark_id: int) -> bool:
    return bool(conn.execute("DELETE FROM marks WHERE id = ?", (mark_id,)).rowcount)


def keyword_clause(keyword: str, params: list[Any], table: str = "calls") -> str:
    """WHERE term: the call has a mark whose label or note contains ``keyword`` (case-insensitive
    for ASCII; ``%``/``_`` in the keyword match themselves)."""
    escaped = keyword.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    params.extend([pattern, pattern])
    # an uncorrelated IN: the marks (few beside the calls) are read once, not once per call row
    return (f"{table}.call_id IN (SELECT mk.call_id FROM marks mk WHERE "
            "lower(mk.label) LIKE ? ESCAPE '\\' OR lower(mk.note) LIKE ? ESCAPE '\\')")


def forget_recording(conn: sqlite3.Connection, recording_id: str) -> None:
    """Rows derived from the recording's audio (its waveform peaks): with the recording they go."""
    conn.execute("DELETE FROM waveform_peaks WHERE recording_id = ?", (recording_id,))


def forget_call(conn: sqlite3.Connection, call_id: str) -> None:
    """The call's marks (operators' notes about the conversation), its number-index rows (a keyed
    hash of each number it named, linked to its id) and the sealed numbers they were made from
    (``catalog.extra_numbers``): with the call they go.  What people wrote about the call is
    replaced by :data:`ERASED_TEXT` (QA review comments, replay-request reasons: the score, who
    asked, who decided and when stay); a two-person deletion request that names the call, and the
    ``deletion_log`` rows that quote its reason, keep the reason with every number masked (it may
    cover other calls too)."""
    conn.execute("DELETE FROM marks WHERE call_id = ?", (call_id,))
    conn.execute("DELETE FROM call_numbers WHERE call_id = ?", (call_id,))
    conn.execute("DELETE FROM call_extra_numbers WHERE call_id = ?", (call_id,))
    conn.execute("UPDATE qa_reviews SET comments = ? WHERE call_id = ? AND comments <> '[]'",
                 (_ERASED_COMMENTS, call_id))
    conn.execute("UPDATE replay_grants SET reason = ? WHERE call_id = ? AND reason <> ''",
                 (ERASED_TEXT, call_id))
    _mask_column(conn, "deletion_log", "id", "policy", "call_id = ? AND reason = 'deletion'", [call_id])
    escaped = json.dumps(call_id).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    _mask_column(conn, "deletion_requests", "id", "reason", "scope LIKE ? ESCAPE '\\'", [f"%{escaped}%"])


def _mask_column(conn: sqlite3.Connection, table: str, key: str, column: str, where: str,
                 params: list[Any]) -> None:
    """``column`` of the rows of ``table`` that ``where`` selects, with every number masked."""
    rows = conn.execute(f"SELECT {key}, {column} FROM {table} WHERE {where}", params).fetchall()
    for row_key, text in rows:
        masked = mask_text(str(text or ""))
        if masked != (text or ""):
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (masked, row_key))
