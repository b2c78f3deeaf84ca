"""``ledger verify`` streamed: an interrupted pass resumes from its last saved position with the
problems it had found; ``--since-last`` recomputes only the entries after the last clean pass."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from catalog_fill import fill  # noqa: E402

from pbx_recorder.lifecycle.journal import open_catalog  # noqa: E402
from pbx_recorder.recording import ledger, ledger_pass  # noqa: E402
from pbx_recorder.recording.verify_state import VerifyState  # noqa: E402

NOW = 1_800_000_000.0


def test_an_interrupted_ledger_pass_resumes_with_its_findings(tmp_path, monkeypatch):
    conn = open_catalog(tmp_path / "cat.db")
    fill(conn, 3000, now=NOW)
    edit = "UPDATE ledger SET payload = replace(payload, ?, ?) WHERE seq = 500"
    conn.execute(edit, ('"size":1000', '"size":1001'))
    state = VerifyState(tmp_path / "state.json")
    monkeypatch.setattr(ledger_pass, "SAVE_EVERY_S", 0.0)
    real, calls = ledger.entry_hash, [0]

    def dying(*args):
        calls[0] += 1
        if calls[0] == 2500:
            raise KeyboardInterrupt("^C")
        return real(*args)

    monkeypatch.setattr(ledger, "entry_hash", dying)
    with pytest.raises(KeyboardInterrupt):
        ledger_pass.run_ledger_pass(conn, state)
    assert state.running()["seq"] == 2000  # saved every 1,000 entries here
    monkeypatch.setattr(ledger, "entry_hash", real)
    result = ledger_pass.run_ledger_pass(conn, state, resume=True)
    assert result.checked == 1000  # only what was left
    assert len(result.problems) == 1
    assert "ledger seq 500: row content does not match its hash" in result.problems[0]
    assert state.running() is None and state.last() is None  # a pass with a problem sets no marks

    conn.execute(edit, ('"size":1001', '"size":1000'))
    assert ledger_pass.run_ledger_pass(conn, state).problems == []
    fill(conn, 10, now=NOW, start=3000)
    result = ledger_pass.run_ledger_pass(conn, state, since_last=True)
    assert result.problems == [] and result.checked == 10
