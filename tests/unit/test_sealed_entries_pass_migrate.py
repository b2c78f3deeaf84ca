"""README "Security", still open after session 36: the service's four-eyes check takes a bare,
unsealed call row for a sealed row replaced by an insider only when the ledger says the call was
sealed (``call_sealed``), and ``verify`` finds a sealed row deleted by hand only through that
entry; rows sealed before the ledger recorded seals had none, so for them both went unnoticed.
``catalog migrate`` now enters each such row whose seal verifies (``catalog.sealed_entries_pass``),
never one whose seal is broken.  Both engines."""

from __future__ import annotations

import json

import pytest
from tamper_support import NOW, indexing_deployment

from pbx_recorder.catalog import Catalog, sealed_entries_pass
from pbx_recorder.errors import IntegrityError
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.recording import ledger
from pbx_recorder.recording.call_seal import CallSealer, call_seal_problem, ledger_id, vanished_calls
from pbx_recorder.recording.signing import load_public_key

OLD = "n1_5.5"  # sealed by a version before the ledger recorded seals
NEW = "n1_6.6"  # sealed by this version: its entry is there
REPLACED = "sealed call row replaced by an unsealed one (the ledger recorded its seal)"


class SealerBeforeEntries(CallSealer):
    """The sealer of a version before ``call_sealed`` existed: seals, enters nothing."""

    def sealed(self, conn, call_id):  # type: ignore[no-untyped-def]
        return None


@pytest.fixture
def dep(tmp_path):
    d = indexing_deployment(tmp_path)
    old = Catalog(d.config.catalog.path, clock=lambda: NOW, numbers=d.catalog.numbers,
                  sealer=SealerBeforeEntries(d.sign_key, reveal=d.catalog.numbers.open_call))
    old.upsert_call({"call_id": OLD, "caller_num": "4915112345678", "callee_num": "4930123456",
                     "agent": "alice", "queue": "vip", "consent_decision": "granted", "status": "answered",
                     "started_at": NOW - 600, "ended_at": NOW - 500})
    old.close()
    d.call(NEW, caller="4917000000003")
    yield d
    d.close()


def _entries(d, call_id: str) -> list[tuple[str, object]]:
    conn = open_catalog(d.config.catalog.path)
    try:
        return [(str(e), json.loads(p) if p else None) for e, p in conn.execute(
            "SELECT event, payload FROM ledger WHERE recording_id = ? ORDER BY seq", (ledger_id(call_id),))]
    finally:
        conn.close()


def _problem(d, call_id: str) -> str:
    conn = open_catalog(d.config.catalog.path)
    try:
        return call_seal_problem(conn, call_id, load_public_key(d.sign_key), d.catalog.numbers)
    finally:
        conn.close()


def _stand_in(d, call_id: str) -> None:
    """An insider's swap: the sealed row replaced by a bare one (no rule, no tags, no seal)."""
    d.sql(f"DELETE FROM calls WHERE call_id = '{call_id}'",
          f"INSERT INTO calls (call_id) VALUES ('{call_id}')")


def test_before_the_step_a_stand_in_for_an_older_sealed_row_passes_unseen(dep):
    assert _entries(dep, OLD) == [] and _entries(dep, NEW) == [("call_sealed", {})]
    _stand_in(dep, OLD)
    _stand_in(dep, NEW)
    assert _problem(dep, OLD) == ""  # what the step is for
    assert _problem(dep, NEW) == REPLACED


def test_migrate_enters_older_sealed_rows_and_then_a_stand_in_or_a_deletion_is_caught(dep, capsys):
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0, out
    assert "entered 1 of 2 sealed calls in the ledger as sealed" in out
    assert _entries(dep, OLD) == [("call_sealed", {"by": "catalog migrate"})]
    assert _entries(dep, NEW) == [("call_sealed", {})]  # not entered twice
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out  # the ledger's chain takes the new entries
    _stand_in(dep, OLD)
    assert _problem(dep, OLD) == REPLACED
    dep.sql(f"DELETE FROM calls WHERE call_id = '{OLD}'")  # or the row deleted by hand
    conn = open_catalog(dep.config.catalog.path)
    try:
        assert vanished_calls(conn) == [OLD]
        assert not sealed_entries_pass.pending(conn)
        (audit,) = [json.loads(r[0]) for r in conn.execute(
            "SELECT detail FROM audit_log WHERE action = 'catalog.migrate' "
            "AND target = 'call-sealed-entries'")]
        assert audit == {"calls": 2, "recorded": 1, "broken": 0, "resurrected": 0, "changed": 0,
                         "done": True}
    finally:
        conn.close()
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code and OLD in out, out


def test_done_once_and_a_forced_walk_enters_nothing_twice(dep, capsys):
    assert dep.cli(capsys, "catalog", "migrate")[0] == 0
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0 and "sealed calls in the ledger" not in out, out
    code, out = dep.cli(capsys, "catalog", "migrate", "--force")
    assert code == 0 and "entered 0 of 2 sealed calls" in out, out
    assert _entries(dep, OLD) == [("call_sealed", {"by": "catalog migrate"})]


def test_an_older_row_whose_seal_is_broken_gets_no_entry_and_keeps_the_step_open(dep, capsys):
    dep.sql(f"UPDATE calls SET agent = 'mallory' WHERE call_id = '{OLD}'")  # an insider's edit
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == IntegrityError.exit_code, out
    assert f"not entered: {OLD}: call metadata does not match its seal" in out
    assert _entries(dep, OLD) == []
    assert _problem(dep, OLD)  # the service asks for a grant for it anyway (broken seal)
    conn = open_catalog(dep.config.catalog.path)
    try:
        assert sealed_entries_pass.pending(conn)
    finally:
        conn.close()


def test_a_row_changed_between_the_check_and_the_write_is_left_for_the_next_run(dep):
    conn = open_catalog(dep.config.catalog.path)
    try:
        cur = conn.execute("SELECT * FROM calls WHERE call_id = ?", (OLD,))
        seen = dict(zip([c[0] for c in cur.description], cur.fetchone(), strict=True))
        report = sealed_entries_pass.Report()
        conn.execute("BEGIN IMMEDIATE")
        # its seal unchanged, another column edited since it was checked
        sealed_entries_pass._write(conn, {OLD: {**seen, "agent": "bob"}}, NOW, report)
        conn.execute("COMMIT")
        assert (report.recorded, report.changed) == (0, 1)
        assert _entries(dep, OLD) == []
    finally:
        conn.close()


def test_an_erased_calls_old_row_put_back_is_named_not_entered_and_verify_reports_it(dep, capsys):
    """The recorder writes ``call_sealed`` with every row it seals anew; a sealed row whose last
    entry is its removal is an erased call's old row put back by hand (here: removed with its
    ledger entry, as an erasure does, then inserted again as it was)."""
    conn = open_catalog(dep.config.catalog.path)
    try:
        cur = conn.execute("SELECT * FROM calls WHERE call_id = ?", (OLD,))
        names, values = [c[0] for c in cur.description], cur.fetchone()
        conn.execute("BEGIN IMMEDIATE")
        ledger.append(conn, "call_removed", ledger_id(OLD), {"call_id": OLD, "why": "erased"}, NOW)
        conn.execute("DELETE FROM calls WHERE call_id = ?", (OLD,))
        conn.execute("COMMIT")
    finally:
        conn.close()
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out
    marks = ",".join("?" * len(names))
    conn = open_catalog(dep.config.catalog.path)
    try:  # the insider puts the old sealed row back
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"INSERT INTO calls ({','.join(names)}) VALUES ({marks})", values)
        conn.execute("COMMIT")
    finally:
        conn.close()
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == IntegrityError.exit_code, out
    assert f"not entered: {OLD}: sealed row present after the ledger recorded its removal" in out
    assert _entries(dep, OLD) == [("call_removed", {"call_id": OLD, "why": "erased"})]
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code, out
    assert f"call {OLD}: sealed call row present after the ledger recorded its removal" in out


def test_sealing_older_rows_at_checkpoint_init_enters_them_in_the_ledger(dep, capsys):
    """``ledger checkpoint --init`` seals rows written before sealing existed: as the recorder
    seals a row, each gets its ``call_sealed`` entry (the migrate step may have run already)."""
    assert dep.cli(capsys, "catalog", "migrate")[0] == 0
    dep.sql("INSERT INTO calls (call_id, agent, status, started_at) VALUES ('n1_8.8', 'carol', 'answered', "
            f"{NOW - 30})")
    assert _entries(dep, "n1_8.8") == []
    code, out = dep.cli(capsys, "ledger", "checkpoint", "--init")
    assert "sealed 1 call row(s) written before sealing" in out, out
    assert _entries(dep, "n1_8.8") == [("call_sealed", {})]


def test_a_row_written_again_after_the_recorder_removed_it_is_told_apart(dep):
    conn = open_catalog(dep.config.catalog.path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        ledger.append(conn, "call_removed", ledger_id(NEW), {"call_id": NEW, "why": "test"}, NOW)
        conn.execute("COMMIT")
        assert sealed_entries_pass.last_entries(conn, [OLD, NEW, "n1_7.7"]) == {NEW: "call_removed"}
        conn.execute("BEGIN IMMEDIATE")
        ledger.append(conn, "call_sealed", ledger_id(NEW), None, NOW)
        conn.execute("COMMIT")
        assert sealed_entries_pass.last_entries(conn, [OLD, NEW]) == {NEW: "call_sealed"}
    finally:
        conn.close()
