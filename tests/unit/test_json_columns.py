"""Reading a stored row back: JSON columns decoded, everything else as stored (``decode_row``)."""

from __future__ import annotations

import json
import sqlite3

from pbx_recorder.catalog.json_columns import JSON_COLUMNS, decode_json, decode_row
from pbx_recorder.catalog.pg_connection import Row as PgRow

COLUMNS = ("rowid", "call_id", "cdr", "consent", "tags", "uniqueids", "flags", "started_at", "note")
VALUES = (7, "c1", '{"src":"4915112345678","n":12345678901234567890123}', "{}", "[]",
          '["1733595520.0"]', "not json {", 1733595520.5, "{}")


def _sqlite_row() -> sqlite3.Row:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.execute(f"CREATE TABLE t ({', '.join(c for c in COLUMNS if c != 'rowid')})")
    conn.execute(f"INSERT INTO t (rowid, {', '.join(c for c in COLUMNS if c != 'rowid')}) "
                 f"VALUES ({', '.join('?' for _ in COLUMNS)})", VALUES)
    return conn.execute(f"SELECT {', '.join(COLUMNS)} FROM t").fetchone()


def _pg_row() -> PgRow:
    return PgRow(COLUMNS, {c: i for i, c in enumerate(COLUMNS)}, VALUES)


def _by_name(row: sqlite3.Row | PgRow) -> dict[str, object]:
    """The reference: each column by its name, the JSON ones through json.loads."""
    out: dict[str, object] = {}
    for key in row.keys():
        if key == "rowid":
            continue
        value = row[key]
        if key in JSON_COLUMNS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


def test_a_row_reads_as_its_columns_with_json_decoded_on_both_engines() -> None:
    for row in (_sqlite_row(), _pg_row()):
        out = decode_row(row)
        assert out == _by_name(row)
        assert "rowid" not in out
        assert out["cdr"]["n"] == 12345678901234567890123  # a big integer stays an integer
        assert out["flags"] == "not json {"  # a broken cell keeps its text, the row is not hidden
        assert out["note"] == "{}"  # not a JSON column: the text as stored
        assert out["tags"] == [] and out["consent"] == {}


def test_empty_containers_are_new_objects_each_time() -> None:
    row = _sqlite_row()
    first, second = decode_row(row), decode_row(row)
    first["tags"].append("vip")
    first["consent"]["granted"] = True
    assert second["tags"] == [] and second["consent"] == {}
    assert decode_json("[]") is not decode_json("[]")


def test_decode_json_matches_json_loads_or_keeps_the_text() -> None:
    for text in ("{}", "[]", "[1,2]", '{"a":null}', "NaN", "1e999", "", "{", '"x"', " {} "):
        try:
            expected: object = json.loads(text)
        except ValueError:
            expected = text
        got = decode_json(text)
        assert got == expected or (got != got and expected != expected)  # NaN is not equal to itself
