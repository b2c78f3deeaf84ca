"""Destruction records: kept three calendar years, once per (request, recording), known kinds only;
the CLI's ``erase`` writes them too (the same lifecycle code as the console)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pbx_recorder.lifecycle import destruction
from tests.unit.lifecycle_support import add_call, add_recording, make_env


def _at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


def test_keep_until_is_three_calendar_years_later() -> None:
    assert destruction.keep_until(_at(2026, 12, 2, 4, 0)) == _at(2029, 12, 2, 4, 0)
    assert destruction.keep_until(_at(2028, 2, 29, 12, 0)) == _at(2031, 2, 28, 12, 0)


def test_one_row_per_request_and_recording(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = make_env(tmp_path)
    kw = dict(kind="deletion", request_id="DR-1", requested_by="a", approved_by="b", recording_id="r1",
              call_id="c1", sha256="ab" * 32, now=_at(2026, 1, 1))
    assert destruction.record(env.conn, **kw) is True
    assert destruction.record(env.conn, **kw) is False
    rows = destruction.of_request(env.conn, "DR-1")
    assert len(rows) == 1 and rows[0]["keep_until"] == _at(2029, 1, 1)
    with pytest.raises(ValueError):
        destruction.record(env.conn, **{**kw, "kind": "whim"})


def test_erasure_writes_a_destruction_record_per_recording(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pbx_recorder.lifecycle.erasure import Eraser
    from pbx_recorder.lifecycle.holds import HoldManager

    env = make_env(tmp_path)
    add_call(env, "c1", caller="+15551230001")
    add_recording(env, "c1", "r1")
    holds = HoldManager(env.conn, env.tiers, hash_key=b"k" * 32)
    receipt = Eraser(env.conn, env.tiers, hash_key=b"k" * 32, holds=holds).erase(
        call_id="c1", actor="dpo", now=_at(2026, 3, 1))
    rows = destruction.of_request(env.conn, receipt["request_id"])
    assert [(r["kind"], r["recording_id"], r["requested_by"]) for r in rows] == [("erasure", "r1", "dpo")]
