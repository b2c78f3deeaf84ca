"""``verify`` and ``ledger verify`` over a real deployment: ``--since-last`` checks what changed
since the last clean pass and still catches a rewritten chain; ``--resume`` continues an
interrupted pass without losing what it found."""

from __future__ import annotations

import json
import re

import pytest
from tamper_support import NOW, Deployment

from pbx_recorder.errors import IntegrityError
from pbx_recorder.recording import ledger, verify_stream
from pbx_recorder.recording.verify import Verifier
from pbx_recorder.recording.verify_state import VerifyState
from pbx_recorder.recording.verify_stream import PassOptions
from storage.local import LocalTier


@pytest.fixture()
def dep(tmp_path):
    d = Deployment(tmp_path)
    for i in range(1, 5):
        d.call(f"n1_{i}.{i}", caller=f"49170000000{i:02d}")
        d.record(f"n1_{i}.{i}")
    yield d
    d.close()


def checked(out: str) -> int:
    found = re.search(r"checked (\d+) recordings", out)
    assert found, out
    return int(found.group(1))


def test_since_last_checks_only_new_and_ledger_named_recordings(dep, capsys):
    code, out = dep.cli(capsys, "verify")
    assert code == 0 and checked(out) == 4, out
    dep.call("n1_9.9")
    dep.record("n1_9.9")
    code, out = dep.cli(capsys, "verify", "--since-last")
    assert code == 0 and checked(out) == 1, out
    # a lifecycle change appends a ledger entry: that recording is checked again (and its row,
    # which no longer matches, is caught); untouched ones are not
    rid = "n1_2.2_call001"
    conn = ledger.connection_of(dep.catalog)
    ledger.append(conn, "migrated", rid, {"to": "hot", "key": "moved/first.wav"}, NOW)
    ledger.append(conn, "migrated", rid, {"to": "hot", "key": "moved/elsewhere.wav"}, NOW)
    code, out = dep.cli(capsys, "verify", "--since-last")
    assert code == IntegrityError.exit_code and checked(out) == 1, out  # two entries, checked once
    assert out.count(f"{rid}: row storage_key differs from the ledger") == 1, out
    # a pass that found something does not move the marks: the finding is reported again
    code, out = dep.cli(capsys, "verify", "--since-last")
    assert code == IntegrityError.exit_code and "row storage_key differs" in out, out


def test_since_last_catches_a_chain_rewritten_before_the_marks(dep, capsys):
    assert dep.cli(capsys, "verify")[0] == 0
    assert dep.cli(capsys, "ledger", "verify")[0] == 0
    conn = ledger.connection_of(dep.catalog)
    rows = conn.execute("SELECT seq, at, event, recording_id, payload FROM ledger ORDER BY seq").fetchall()
    prev = ledger.GENESIS
    conn.execute("BEGIN IMMEDIATE")
    for seq, at, event, rid, payload in rows:  # an old entry edited, every hash recomputed
        body = json.loads(payload)
        body["tier"] = "elsewhere" if seq == 1 else body.get("tier", "")
        digest = ledger.entry_hash(prev, seq, at, event, rid, body)
        conn.execute("UPDATE ledger SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                     (json.dumps(body, sort_keys=True, separators=(",", ":")), prev, digest, seq))
        prev = digest
    conn.execute("COMMIT")
    for args in (("verify", "--since-last"), ("ledger", "verify", "--since-last")):
        code, out = dep.cli(capsys, *args)
        assert code == IntegrityError.exit_code, (args, out)
        assert "last verified pass recomputed" in out or "chain rewritten" in out, (args, out)


def test_an_old_row_edited_in_place_needs_the_full_pass(dep, capsys):
    """What README "Whole-catalog operations at scale" says: an edit that leaves no ledger trace
    on a recording no later entry names is outside an incremental pass; the full pass finds it."""
    assert dep.cli(capsys, "verify")[0] == 0
    dep.sql("UPDATE recordings SET size = size + 1 WHERE recording_id = 'n1_1.1_call001'")
    assert dep.cli(capsys, "verify", "--since-last")[0] == 0
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code and "n1_1.1_call001: row size differs" in out, out


class FailingTier(LocalTier):
    """Answers ``stats`` stat calls, then the process 'dies' (an exception verify does not catch)."""

    def __init__(self, name, root, stats):
        super().__init__(name, root)
        self.left, self.calls = stats, 0

    def stat(self, key):
        self.calls += 1
        if self.left == 0:
            raise KeyboardInterrupt("operator pressed ^C")
        self.left -= 1
        return super().stat(key)


def test_resume_continues_an_interrupted_pass_and_keeps_its_findings(dep, monkeypatch):
    monkeypatch.setattr(verify_stream, "SAVE_EVERY_S", 0.0)
    dep.sql("UPDATE recordings SET size = size + 1 WHERE recording_id = 'n1_1.1_call001'")  # found first
    state = VerifyState(dep.root / "state.json")
    conn = ledger.connection_of(dep.catalog)
    first = FailingTier("hot", dep.tier.root, stats=6)  # 3 objects per recording: dies in the third
    with pytest.raises(KeyboardInterrupt):
        Verifier(conn, {"hot": first}).run(options=PassOptions(batch=1, jobs=1, state=state))
    assert state.running() is not None and state.running()["position"]["after"] > 0
    second = FailingTier("hot", dep.tier.root, stats=-1)
    options = PassOptions(batch=1, jobs=1, state=state, resume=True)
    report = Verifier(conn, {"hot": second}).run(options=options)
    assert report.checked == 4
    assert {m.recording_id for m in report.mismatches} == {"n1_1.1_call001"}  # found before the ^C
    assert any("row size differs from the ledger" in str(m) for m in report.mismatches)
    assert second.calls < 4 * 3  # the recordings done before the interruption were not checked again
    assert state.running() is None and state.last() is None  # a pass with a finding sets no marks


def test_a_state_file_that_cannot_be_written_does_not_stop_verify(dep, capsys):
    (dep.root / "not-a-dir").write_text("")
    state = VerifyState(dep.root / "not-a-dir" / "state.json")
    conn = ledger.connection_of(dep.catalog)
    report = Verifier(conn, {"hot": dep.tier}).run(options=PassOptions(state=state))
    assert report.ok and report.checked == 4
    assert "not written" in state.problem and state.last() is None


def test_progress_of_verify_and_ledger_verify_goes_to_stderr_on_request(dep, capsys):
    code, out = dep.cli(capsys, "verify", "--progress", "--jobs", "2", "--batch", "3")
    assert code == 0 and "verify: 4/4 100.0%" in out and "checked 4 recordings" in out, out
    code, out = dep.cli(capsys, "ledger", "verify", "--progress")
    assert code == 0 and "ledger verify: " in out, out
    code, out = dep.cli(capsys, "verify", "--recording", "n1_1.1_call001", "--since-last")
    assert code != 0 and "not --recording" in out, out
