"""A leftover of an erased call deleted by node B's daemon while the catalog cannot take its receipt
line (the write fails after the file is gone) is still named in the erasure's receipt: the line
waits beside B's spool (``_erasure_receipts.json``, no number in it) and the next orphan scan
writes it, with the time of the deletion, once.  The line is kept before the deletion: a crash
between the two loses nothing; a deletion that fails leaves no line claiming it."""

from __future__ import annotations

import json
import sqlite3

import pytest
from test_erasure_reaches_other_nodes_leftovers import ERASED, _quarantined, _receipt, nodes  # noqa: F401

from pbx_recorder.fault_recovery import FaultRecovery
from pbx_recorder.lifecycle.late_copies import LateCopyGuard
from pbx_recorder.lifecycle.receipt_backlog import FILE_NAME, ReceiptBacklog
from pbx_recorder.recording.spool import Spool


def _erased_leftover(a, b, spool_b, capsys, request_id: str):  # type: ignore[no-untyped-def]
    """Node B's quarantined leftover of the call node A's ``erase`` has just erased."""
    erased = _quarantined(b, spool_b, ERASED)
    code, out = a.cli(capsys, "erase", "--call-id", ERASED, "--request-id", request_id)
    assert code == 0, out
    return erased


async def test_a_receipt_line_the_catalog_refused_is_written_at_the_next_scan(
        nodes, capsys, monkeypatch) -> None:  # noqa: F811
    a, b, spool_b, recovery_b = nodes
    erased = _erased_leftover(a, b, spool_b, capsys, "ER-7")
    real = LateCopyGuard.leftover_deleted

    def catalog_away(*_a, **_k):  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(LateCopyGuard, "leftover_deleted", catalog_away)
    recovery_b.clock = lambda: 1_900_000_000.0  # when B deletes the file
    assert await recovery_b.recover_orphans() == 1
    assert not erased.exists()  # deleted first: the voice does not wait for the catalog
    assert "late_copies" not in _receipt(a, "ER-7")
    waiting = json.loads((b / "spool" / FILE_NAME).read_text())
    assert [(w["request_id"], w["call_id"], w["copy"], w["at"]) for w in waiting] == [
        ("ER-7", ERASED, "spool_quarantine", 1_900_000_000.0)]
    assert await recovery_b.recover_orphans() == 0  # still away: the line stays, once
    assert len(json.loads((b / "spool" / FILE_NAME).read_text())) == 1

    monkeypatch.setattr(LateCopyGuard, "leftover_deleted", real)
    recovery_b.clock = lambda: 1_900_000_600.0
    await recovery_b.recover_orphans()
    receipt = _receipt(a, "ER-7")
    assert [(c["call_id"], c["copy"], c["action"], c["at"]) for c in receipt["late_copies"]] == [
        (ERASED, "spool_quarantine", "destroyed", 1_900_000_000.0)]  # the deletion's time
    assert f"spool-quarantine:{ERASED}_call001" in receipt["copies"]["deleted"]
    assert not (b / "spool" / FILE_NAME).exists()
    await recovery_b.recover_orphans()
    assert len(_receipt(a, "ER-7")["late_copies"]) == 1  # not doubled


class Crash(BaseException):
    """The daemon killed between two steps (not an Exception: nothing in it catches this)."""


async def test_a_crash_between_the_deletion_and_the_receipt_loses_no_line(
        nodes, capsys, monkeypatch) -> None:  # noqa: F811
    a, b, spool_b, recovery_b = nodes
    erased = _erased_leftover(a, b, spool_b, capsys, "ER-8")

    def killed(self, line):  # type: ignore[no-untyped-def]
        raise Crash

    monkeypatch.setattr(FaultRecovery, "_deleted", killed)
    with pytest.raises(Crash):
        await recovery_b.recover_orphans()
    assert not erased.exists() and "late_copies" not in _receipt(a, "ER-8")
    monkeypatch.undo()
    restarted = FaultRecovery(recovery_b.app, lambda: 1_900_000_900.0)
    await restarted.recover_orphans()
    assert [(c["call_id"], c["copy"]) for c in _receipt(a, "ER-8")["late_copies"]] == [
        (ERASED, "spool_quarantine")]
    assert not (b / "spool" / FILE_NAME).exists()


async def test_a_deletion_that_fails_leaves_no_line_claiming_it(nodes, capsys, monkeypatch) -> None:  # noqa: F811
    a, b, spool_b, recovery_b = nodes
    erased = _erased_leftover(a, b, spool_b, capsys, "ER-9")

    def refused(self, item):  # type: ignore[no-untyped-def]
        raise PermissionError("read-only file system")

    monkeypatch.setattr(Spool, "drop_quarantined", refused)
    assert await recovery_b.recover_orphans() == 0
    assert erased.exists() and not (b / "spool" / FILE_NAME).exists()
    assert "late_copies" not in _receipt(a, "ER-9")
    monkeypatch.undo()
    assert await recovery_b.recover_orphans() == 1  # the next scan deletes it and names it
    assert not erased.exists() and len(_receipt(a, "ER-9")["late_copies"]) == 1


def test_an_unreadable_backlog_is_kept_aside_and_named(tmp_path, caplog) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"{not json")
    backlog = ReceiptBacklog(tmp_path)
    assert backlog.lines() == []
    (aside,) = tmp_path.glob(FILE_NAME + ".unreadable-*")
    assert aside.read_bytes() == b"{not json"
    assert any("ALERT" in r.getMessage() and "by hand" in r.getMessage() for r in caplog.records)
    line = {"request_id": "ER-1", "call_id": "n1_1.1", "recording_id": "n1_1.1_call001", "copy": "orphan",
            "at": 5.0}
    backlog.add(line)
    backlog.add({**line, "at": 6.0})  # the same leftover once
    assert backlog.lines() == [line]
    written: list[str] = []
    assert backlog.flush(lambda kept: written.append(kept["recording_id"])) == 1
    assert written == ["n1_1.1_call001"] and backlog.lines() == []


def test_a_line_not_understood_is_named(tmp_path, caplog) -> None:
    (tmp_path / FILE_NAME).write_text('[{"request_id": "ER-2", "call_id": 7}]')
    assert ReceiptBacklog(tmp_path).lines() == []
    assert any("ALERT" in r.getMessage() and "ER-2" in r.getMessage() for r in caplog.records)
