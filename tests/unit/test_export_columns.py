"""The export's columns and cells (pure): allow-list, formula neutralising, times and numbers."""

from __future__ import annotations

from datetime import UTC

import pytest

from pbx_recorder.exports import columns
from pbx_recorder.exports.audio_job import entry_name


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@A1", "\t=1", "\r=1", "  =1", "=HYPERLINK(\"x\")"])
def test_a_formula_start_gets_an_apostrophe(text: str) -> None:
    assert columns.neutralise(text) == "'" + text
    assert columns.cell("queue", text, UTC) == "'" + text


@pytest.mark.parametrize("text", ["alice", "", "1+1", "a=b", "'quoted", "ｰ"])
def test_plain_text_is_kept(text: str) -> None:
    assert columns.neutralise(text) == text


def test_numbers_stay_numbers_and_times_read_as_iso() -> None:
    assert columns.cell("duration", -5, UTC) == -5  # a number is never a formula
    assert columns.cell("duration", "-5", UTC) == "'-5"  # text that looks like one is neutralised
    assert columns.cell("started_at", 0, UTC) == "1970-01-01T00:00:00+00:00"
    assert columns.cell("started_at", None, UTC) == ""
    assert columns.cell("tags", ["vip", "=x"], UTC) == "vip, =x"
    assert columns.cell("tags", ["=x", "vip"], UTC) == "'=x, vip"


def test_fields_come_from_the_allow_list_only() -> None:
    assert columns.parse_fields(None) == columns.DEFAULT_FIELDS
    assert columns.parse_fields(["agent", "call_id"]) == ("agent", "call_id")
    for bad in (["cdr"], ["seal"], [], "call_id", ["call_id", "call_id"], [1]):
        with pytest.raises(ValueError, match="fields"):
            columns.parse_fields(bad)


@pytest.mark.parametrize("call_id", ["../../etc/passwd", "..", "a/b\\c", "x..y", ".hidden"])
def test_audio_entry_names_carry_no_path(call_id: str) -> None:
    name = entry_name(call_id, 1_800_000_000.0, "wav", set())
    assert "/" not in name and "\\" not in name and ".." not in name and not name.startswith(".")
    assert name.endswith("_20270115T080000Z.wav")


def test_audio_entry_names_are_unique() -> None:
    taken: set[str] = set()
    names = [entry_name("c-1", 1_800_000_000.0, "wav", taken) for _ in range(3)]
    assert len(set(names)) == 3 and "manifest.json" not in names
