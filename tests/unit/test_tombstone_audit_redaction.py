"""A restored catalog's audit rows lose an erased number however it was written there: alone,
glued to a channel's suffix or to another number, with or without its '+' (rows from before the
audit masked numbers; lifecycle/tombstones.py ``_redact_audit``)."""

from __future__ import annotations

import sqlite3

from pbx_recorder.lifecycle.policy import number_hash
from pbx_recorder.lifecycle.tombstones import Tombstones

KEY = b"k" * 32
NUMBER = "+4915199999999"


def _audit(texts: list[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE audit_log (id INTEGER PRIMARY KEY, target TEXT, detail TEXT)")
    conn.executemany("INSERT INTO audit_log (target, detail) VALUES ('', ?)", [(t,) for t in texts])
    return conn


def test_an_erased_number_is_redacted_however_it_was_written(tmp_path) -> None:
    texts = [f"call from {NUMBER}", "dstchannel SIP/4915199999999-00000001", "cb 4915199999999 12345",
             "Dial(SIP/4915199999999/30)"]
    conn = _audit(texts)
    Tombstones(tmp_path / "t.jsonl", KEY)._redact_audit(conn, {number_hash(KEY, NUMBER)})
    rows = [r[0] for r in conn.execute("SELECT detail FROM audit_log ORDER BY id")]
    assert all("4915199999999" not in row for row in rows), rows
    assert rows[1] == f"dstchannel SIP/{number_hash(KEY, NUMBER)}-00000001"
    assert rows[2].endswith(" 12345")  # the other number stays


def test_other_numbers_are_left_as_they_are(tmp_path) -> None:
    other = "dstchannel SIP/4915100000000-00000001"
    conn = _audit([other])
    Tombstones(tmp_path / "t.jsonl", KEY)._redact_audit(conn, {number_hash(KEY, NUMBER)})
    assert conn.execute("SELECT detail FROM audit_log").fetchone()[0] == other
