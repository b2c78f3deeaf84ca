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
    """A stored row as a dict, its JSON columns decoded (PostgreSQL's ``rowid`` stand-in left out).

    The names are read once and zipped with the values: ``sqlite3.Row`` finds a value by name with
    a scan of its column names, which made a searched ``calls`` row (37 columns) cost ~24 us here."""
    out = row_dict(row)
    for key in JSON_COLUMNS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = decode_json(value)
    return out


def row_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A stored row as a dict of its columns as stored (PostgreSQL's ``rowid`` stand-in left out)."""
    out = dict(zip(row.keys(), row, strict=True))
    out.pop("rowid", None)  # PostgreSQL's stand-in for SQLite's implicit rowid: not part of a row
    return out


def decode_json(text: str) -> Any:
    """A JSON cell's value, or its text when it is not JSON (a broken cell must not hide its row);
    the empty object and list that most cells hold are made without the parser."""
    if text == "{}":
        return {}
    if text == "[]":
        return []
    try:
        return json.loads(text)
    except ValueError:
        return text
