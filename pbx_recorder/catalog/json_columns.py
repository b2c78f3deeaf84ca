"""The catalog's JSON columns (``uniqueids``, ``consent``, ``tags``, ``cdr`` ...): written compact
with sorted keys, read back into Python values.  A cell that is not valid JSON is returned as its
text: a broken cell must not hide the row it is in."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pbx_recorder.recording.sorted_json import SortedJson

#: JSON without the blanks after separators (read back with json.loads): the columns here, and the
#: sealed texts of ``protected_rows`` and ``extra_numbers``
COMPACT = (",", ":")
#: the JSON columns' encoder, made once (``json.dumps`` with options makes one per call): its
#: text is ``json``'s (``sort_keys``, ``COMPACT``, ``default=list``), made by orjson where the same
COLUMN_JSON = SortedJson(default=list)
JSON_COLUMNS = {"uniqueids", "consent", "tags", "cdr", "flags", "manifest", "detail", "objects", "rule_tags"}


def encode_column(column: str, value: Any) -> Any:
    """``value`` as it is bound for ``column``: JSON text for a JSON column (unless already text)."""
    if column in JSON_COLUMNS and not isinstance(value, str):
        return COLUMN_JSON.encode(value)
    return value


def decode_row(row: sqlite3.Row) -> dict[str, Any]:
    """A stored row as a dict, its JSON columns decoded (PostgreSQL's ``rowid`` stand-in left out)."""
    out: dict[str, Any] = {}
    for key in row.keys():
        if key == "rowid":
            continue  # PostgreSQL's stand-in for SQLite's implicit rowid: not part of a row
        value = row[key]
        if key in JSON_COLUMNS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass  # keep the raw text: a broken JSON cell must not hide the row
        out[key] = value
    return out
